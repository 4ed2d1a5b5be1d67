"""The network at work: predictions in a pandas UDF (real Spark, real torch), the prediction and
timeline jobs with a network model directory, and the jobs without torch."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from job_loader import ROOT, load_job

torch = pytest.importorskip("torch")

from fmagenre.audio.names import network_names  # noqa: E402
from fmagenre.audio.patches import patches_from_bytes  # noqa: E402
from fmagenre.network.inference import (  # noqa: E402
    NetworkInputError,
    load_predictor,
    network_member,
)
from fmagenre.network.model_dir import NetworkModel  # noqa: E402
from fmagenre.network.training import NetworkOptions, run  # noqa: E402
from fmagenre.similarity.index import read_index  # noqa: E402
from fmagenre.synthetic.patch_tables import write_patch_tables  # noqa: E402

GENRES = ["Electronic", "Folk", "Hip-Hop", "Rock"]
#: Every test here needs a trained network (module fixtures) or a fresh interpreter.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def network(spark, tmp_path_factory):
    """A network trained for 3 epochs on 80 generated tracks (one local process)."""
    root = tmp_path_factory.mktemp("inference")
    patches, labels = write_patch_tables(root, tracks=80, seed=5)
    output = root / "model"
    options = NetworkOptions(
        epochs=3, num_processes=1, batch_size=16, validation_fraction=0.25, patience=3
    )
    run(spark, patches=patches, labels=labels, output=str(output), options=options)
    return {"root": root, "patches": patches, "labels": labels, "output": str(output)}


def _predict(spark, argv) -> tuple[int, str]:
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = load_job("predict").main(argv, spark=spark)
    return code, printed.getvalue()


def test_predictions_of_a_patch_table_are_the_models_own(spark, network, tmp_path):
    """The UDF's genre and scores of every row are those of NetworkModel on the same patches;
    rows without readable patches are error rows with their reason."""
    table = tmp_path / "table"
    rows = pq.read_table(network["patches"]).to_pylist()
    rows[0]["patches"] = b"\x01" * 100  # not a whole patch
    pq.write_table(pa.Table.from_pylist(rows), table.with_suffix(".parquet"))
    output = tmp_path / "predictions"
    code, printed = _predict(
        spark,
        [
            "--model",
            network["output"],
            "--input",
            str(table.with_suffix(".parquet")),
            "--output",
            str(output),
        ],
    )
    assert code == 0, printed
    got = {r["track_id"]: r for r in pq.read_table(output).to_pylist()}
    assert len(got) == len(rows)
    model = NetworkModel.load(spark, network["output"])
    correct = scored = 0
    labels = {r["track_id"]: r["genre_top"] for r in pq.read_table(network["labels"]).to_pylist()}
    for row in rows[1:]:
        out = got[row["track_id"]]
        if row["patches"] is None:
            assert out["status"] == "error" and out["genre"] is None
            assert out["error"].startswith("no patches for the network: too_short")
            continue
        expected = model.track_log_probs(
            patches_from_bytes(row["patches"], settings=model.settings)
        )
        assert out["status"] == "ok" and out["error"] is None
        assert out["genre"] == out["vote_network"] == GENRES[int(np.argmax(expected))]
        assert out["prediction"] == float(np.argmax(expected))
        scores = dict(out["scores_network"])
        assert list(scores) == GENRES
        expected_scores = np.exp(expected) / np.exp(expected).sum()
        np.testing.assert_allclose([scores[g] for g in GENRES], expected_scores, rtol=1e-5)
        assert math.isclose(sum(scores.values()), 1.0, rel_tol=1e-5)
        scored += 1
        correct += out["genre"] == labels[row["track_id"]]
    assert correct / scored > 0.5  # 4 genres: chance is 0.25
    bad = got[rows[0]["track_id"]]
    assert bad["status"] == "error" and "unreadable patches" in bad["error"]
    assert "predict: 83 rows (features input), 79 ok, 4 errors" in printed


def test_predicting_audio_cuts_the_network_s_patches(spark, network, sample_corpus, tmp_path):
    """Audio in, one row per file: good files get a genre of the network, bad ones their
    decoding error, a file shorter than a patch the patch error."""
    output = tmp_path / "audio_predictions"
    argv = ["--model", network["output"], "--input", str(sample_corpus.audio_dir)]
    code, printed = _predict(spark, [*argv, "--output", str(output)])
    assert code == 0, printed
    rows = pq.read_table(output).to_pylist()
    files = list(sample_corpus.audio_dir.rglob("*.mp3"))
    assert len(rows) == len(files) == len({r["path"] for r in rows})
    good = {str(t.path) for t in sample_corpus.tracks}
    for row in rows:
        local = row["path"].removeprefix("file:")
        if local in good:
            assert row["status"] == "ok" and row["genre"] in GENRES, row
            assert set(dict(row["scores_network"])) == set(GENRES)
        else:
            assert row["status"] != "ok" and row["genre"] is None and row["error"], row


def test_the_timeline_of_a_network_shows_its_windows(spark, network, sample_corpus, tmp_path):
    output = tmp_path / "timeline"
    argv = ["--model", network["output"], "--input", str(sample_corpus.audio_dir)]
    argv += ["--output", str(output), "--window", "3", "--hop", "1.5"]
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = load_job("segments").main(argv, spark=spark)
    assert code == 0, printed.getvalue()
    windows = pq.read_table(output / "windows").to_pylist()
    ok = [w for w in windows if w["window"] is not None and w["status"] == "ok"]
    short = [w for w in windows if w["window"] is not None and w["status"] != "ok"]
    # The sample's tiny file: its one window is shorter than a patch.
    assert short and all("too_short" in w["error"] and w["genre"] is None for w in short)
    assert ok and all(w["genre"] in GENRES and w["vote_network"] == w["genre"] for w in ok)
    assert all(set(dict(w["scores_network"])) == set(GENRES) for w in ok)
    report = json.loads((output / "report.json").read_text())
    assert report["voters"] == ["network"] and report["windows"] == len(ok) + len(short)
    page = sorted((output / "pages").glob("*.html"))
    assert len(page) > 1 and "network" in page[0].read_text() + page[-1].read_text()


def test_the_network_as_a_voter_scores_its_held_out_tracks(spark, network):
    member = network_member(spark, network["output"])
    with open(f"{network['output']}/network/network.json") as file:
        info = json.load(file)
    assert member.name == "network" and list(member.labels) == GENRES
    assert member.held_out == frozenset(info["validation"]["track_ids"]) and member.held_out
    rows = spark.read.parquet(network["patches"])
    scored = member.add_margins(rows).select("track_id", member.column).collect()
    model = NetworkModel.load(spark, network["output"])
    patches = {r["track_id"]: r["patches"] for r in pq.read_table(network["patches"]).to_pylist()}
    for row in scored:
        if patches[row.track_id] is None:
            assert row[member.column] is None
        else:
            expected = model.track_log_probs(
                patches_from_bytes(patches[row.track_id], settings=model.settings)
            )
            np.testing.assert_allclose(row[member.column], expected, rtol=1e-6, atol=1e-6)


def _similar(spark, *argv) -> tuple[int, str]:
    printed, err = io.StringIO(), io.StringIO()
    with redirect_stdout(printed), redirect_stderr(err):
        code = load_job("similar").main([str(arg) for arg in argv], spark=spark)
    return code, printed.getvalue() + err.getvalue()


@pytest.fixture(scope="module")
def network_index(spark, network, tmp_path_factory):
    """An index of the network's space over its patch table."""
    output = tmp_path_factory.mktemp("network_index") / "index"
    argv = ["--features", network["patches"], "--families", "network"]
    argv += ["--network", network["output"], "--labels", network["labels"], "--lists", "4"]
    code, printed = _similar(spark, *argv, "--output", output)
    assert code == 0, printed
    return str(output)


def _embeddings(model: NetworkModel, patch_table: str) -> dict[int, np.ndarray]:
    """Each track's mean last hidden layer, by NetworkModel itself (readable patches only)."""
    found = {}
    for row in pq.read_table(patch_table).to_pylist():
        if row["status"] != "ok" or row["patches"] is None:
            continue
        try:
            patches = patches_from_bytes(row["patches"], settings=model.settings)
        except ValueError:
            continue
        if len(patches):
            found[row["track_id"]] = model.track_embedding(patches)
    return found


def test_the_network_s_last_hidden_layer_is_a_similarity_space(
    spark, network, network_index, tmp_path
):
    """Each track's point is its mean patch embedding (NetworkModel's), standardised; exact
    neighbours are brute force's; --evaluate reports the space; without --network: one line."""
    model = NetworkModel.load(spark, network["output"])
    built = read_index(spark, network_index)
    assert built.space.columns == network_names(model.embedding_width) == network_names(256)
    embeddings = _embeddings(model, network["patches"])
    assert built.size == len(embeddings) and 60 < len(embeddings) < 83
    ids = sorted(embeddings)
    points, has = built.space.vectors(np.stack([embeddings[i] for i in ids]).astype(np.float64))
    assert has.all()
    queries = ids[:4]
    output = tmp_path / "exact"
    argv = ["--index", network_index, "--query-tracks", ",".join(map(str, queries))]
    code, printed = _similar(spark, *argv, "--exact", "--k", "5", "--output", output)
    assert code == 0, printed
    rows = pd.read_parquet(output)
    for query in queries:
        distances = np.linalg.norm(points - points[ids.index(query)], axis=1)
        order = [j for j in np.argsort(distances, kind="stable") if ids[j] != query][:5]
        got = rows[rows["query_track_id"] == query].sort_values("rank")
        assert got["track_id"].tolist() == [ids[j] for j in order]
        np.testing.assert_allclose(got["distance"], distances[order], rtol=1e-4)
    report = tmp_path / "report"
    argv = ["--evaluate", "--features", network["patches"], "--spaces", "network", "mir"]
    argv += ["--network", network["output"], "--labels", network["labels"]]
    code, printed = _similar(spark, *argv, "--output", report)
    assert code == 0, printed
    network_space, mir = json.loads((report / "report.json").read_text())["spaces"]
    assert network_space["space"] == "network" and network_space["dim"] == 256
    assert network_space["recall"] == 1.0  # every list probed: 4 lists, at least 24 probes
    assert "lacks" in mir["error"]  # a patch table holds no MIR column
    code, printed = _similar(
        spark, "--features", network["patches"], "--families", "mir,network", "--output",
        tmp_path / "none",
    )  # fmt: skip
    assert code == 2 and "the family network needs --network MODEL_DIR" in printed
    other = tmp_path / "other_patches"
    other.mkdir()
    table = pq.read_table(network["patches"])
    table = table.append_column("settings", pa.array(["v1;patches=n_mels64"] * len(table)))
    pq.write_table(table, other / "part-0.parquet")
    argv = ["--features", other, "--families", "network", "--network", network["output"]]
    code, printed = _similar(spark, *argv, "--output", tmp_path / "other_index")
    assert code == 2 and "(v1;patches=n_mels64) are not the network's" in printed


def test_audio_and_pages_query_the_network_s_space(
    spark, network, network_index, sample_corpus, tmp_path
):
    """Audio queries are placed by the index's copy of the network: one row per bad file;
    the timeline's pages list each file's neighbours in that space."""
    output = tmp_path / "audio"
    argv = ["--index", network_index, "--query", sample_corpus.audio_dir, "--k", "3"]
    code, printed = _similar(spark, *argv, "--output", output)
    assert code == 0, printed
    rows = pd.read_parquet(output)
    files = list(sample_corpus.audio_dir.rglob("*.mp3"))
    assert rows["query"].nunique() == len(files)
    good = {str(t.path) for t in sample_corpus.tracks}
    for query, group in rows.groupby("query"):
        if query.removeprefix("file:") in good:
            assert group["rank"].tolist() == [1, 2, 3] and group["track_id"].notna().all()
        else:
            assert len(group) == 1 and group["status"].iloc[0] == "error", group
    timeline = tmp_path / "timeline"
    argv = ["--model", network["output"], "--input", sample_corpus.audio_dir]
    argv += ["--window", "3", "--hop", "1.5"]
    argv += ["--similar", network_index, "--similar-k", "3", "--output", timeline]
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = load_job("segments").main([str(a) for a in argv], spark=spark)
    assert code == 0, printed.getvalue()
    similar = pd.read_parquet(timeline / "similar")
    ok = similar[similar["status"] == "ok"]
    assert set(ok["query_path"].str.removeprefix("file:")) == good
    pages = [page.read_text() for page in (timeline / "pages").glob("*.html")]
    listed = [page for page in pages if 'data-rank="3"' in page]
    assert len(listed) == len(good) and all("Tracks like this one" in page for page in listed)


def test_a_network_needs_a_table_with_patches(spark, network, training_tables, tmp_path):
    with pytest.raises(NetworkInputError, match="extract the features with --patches"):
        load_predictor(spark, network["output"]).predictions(
            spark.read.parquet(training_tables.features)
        )
    with pytest.raises(NetworkInputError, match="holds no model: give the output directory of"):
        network_member(spark, str(training_tables.root / "missing"))


#: Makes ``import torch`` fail as it does where torch is not installed. The finder gives a
#: spec whose loading fails: pyspark's session start asks importlib.util.find_spec("torch"),
#: which must not raise (a finder raising in find_spec, as tests/test_network.py's does, breaks
#: it).
NO_TORCH = """
import sys
from importlib.machinery import ModuleSpec
class _Missing:
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r}", name=spec.name)
    def exec_module(self, module):
        pass
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            return ModuleSpec(name, _Missing())
sys.meta_path.insert(0, _NoTorch())
"""


def test_without_torch_predict_imports_and_a_network_says_what_to_install(network, tmp_path):
    code = NO_TORCH + (
        f"sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        "from job_loader import load_job\n"
        "job = load_job('predict')\n"
        f"argv = ['--model', {network['output']!r}, '--input', {network['patches']!r},"
        f" '--output', {str(tmp_path / 'out')!r}]\n"
        "sys.exit(job.main(argv))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        'predict: the spectrogram network needs PyTorch: pip install "fmagenre[dl]"'
    )
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def voter(spark, tmp_path_factory, training_tables):
    """A feature table of 160 generated tracks whose rows also hold patches of their genre, a
    network trained on it (a third of its training tracks held out for validation), and the
    ensemble trained with the network as its fourth voter (jobs/train.py --with-network)."""
    from fmagenre.audio.feature_sets import family_columns
    from fmagenre.audio.patches import PatchSettings, patches_to_bytes
    from fmagenre.synthetic.feature_tables import write_synthetic_tables
    from fmagenre.synthetic.patch_tables import genre_patches

    root = tmp_path_factory.mktemp("voter")
    features, labels = write_synthetic_tables(
        root,
        rows=160,
        genre_shares=dict.fromkeys(GENRES, 0.25),
        columns=family_columns(["zcr", "rmse"]),
        separation=0.4,
        test_fraction=0.25,
        seed=4,
    )
    genre_of = {r["track_id"]: r["genre_top"] for r in pq.read_table(labels).to_pylist()}
    rng = np.random.default_rng(4)
    for part in sorted(p for p in (root / "features").glob("*.parquet")):
        table = pq.read_table(part)
        blobs = [
            patches_to_bytes(genre_patches(GENRES.index(genre_of[t]), 4, rng, PatchSettings()))
            for t in table["track_id"].to_pylist()
        ]
        pq.write_table(table.append_column("patches", pa.array(blobs, pa.binary())), part)
    network_dir = root / "network"
    options = NetworkOptions(
        epochs=3, num_processes=1, batch_size=16, validation_fraction=0.34, patience=3
    )
    run(spark, patches=features, labels=labels, output=str(network_dir), options=options)
    model_dir = root / "model"
    argv = ["--features", features, "--labels", labels, "--output", str(model_dir)]
    argv += ["--families", "zcr,rmse", "--search-space", training_tables.space]
    argv += ["--candidates", "2", "--folds", "2", "--with-network", str(network_dir)]
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = load_job("train").main(argv, spark=spark)
    assert code == 0, printed.getvalue()
    return {
        "features": features,
        "network": str(network_dir),
        "model": str(model_dir),
        "printed": printed.getvalue(),
        "metrics": json.loads((model_dir / "metrics.json").read_text()),
    }


def test_the_ensemble_with_the_network_reports_every_member(voter):
    metrics = voter["metrics"]
    assert set(metrics["test"]) == {
        "lr",
        "svc",
        "xgb",
        "network",
        "ensemble",
        "ensemble_without_network",
    }
    assert metrics["external"]["network"]["vote_rows"] >= 30  # the vote is fitted, not equal
    assert not metrics["vote"]["fallback"]
    assert len(metrics["vote"]["weights"]) == 4
    assert "ensemble_without_network" in voter["printed"]
    info = Path(voter["model"]) / "members" / "network" / "network" / "network.json"
    assert json.loads(info.read_text())["genres"] == GENRES


def test_the_ensemble_with_the_network_predicts_with_its_copy(spark, voter, tmp_path):
    """predict.py on the ensemble's directory: four voters; the network's vote is the network's
    own prediction, from the copy saved with the ensemble."""
    assert load_predictor(spark, voter["model"]).model_names == ["lr", "svc", "xgb", "network"]
    both, alone = tmp_path / "both", tmp_path / "alone"
    for model, output in ((voter["model"], both), (voter["network"], alone)):
        argv = ["--model", model, "--input", voter["features"], "--output", str(output)]
        code, printed = _predict(spark, argv)
        assert code == 0, printed
    network = {r["track_id"]: r for r in pq.read_table(alone).to_pylist()}
    rows = pq.read_table(both).to_pylist()
    assert len(rows) == len(network) == 160
    for row in rows:
        assert row["vote_network"] == network[row["track_id"]]["genre"]
        assert dict(row["scores_network"]) == pytest.approx(
            dict(network[row["track_id"]]["scores_network"]), rel=1e-5
        )
        assert row["genre"] in GENRES and row["vote_lr"] in GENRES
    accuracy = voter["metrics"]["test"]["ensemble"]["accuracy"]
    assert accuracy > 0.5  # 4 genres: chance is 0.25
