"""The whole chain on generated MP3s: extract -> labels -> train -> evaluate -> predict.

Three synthetic styles, six tracks each, plus the sample's five bad files, go through the
four jobs as a user runs them. The styles differ in timbre, rhythm and harmony, so that
the 518 features separate them: from 4-5 training tracks per genre, the ensemble must get
at least 5 of the 6 held-out tracks (chance, always the largest genre, gets 2). One miss is
allowed because one of the test-split candidates is the 0.3 s clip, labelled Rock as the
bad files are but rendered as Pop.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
from job_loader import load_job

from fmagenre.synthetic.sample import generate_sample

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
STYLES = ["Rock", "Classical", "Hip-Hop"]
SEARCH_SMALL = ROOT / "conf" / "search_small.toml"


def _main(job, argv: list[str], **kwargs) -> str:
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert job.main(argv, **kwargs) == 0
    return printed.getvalue()


@pytest.fixture(scope="module")
def chain(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    sample = generate_sample(
        root / "sample", tracks_per_genre=6, min_duration=4.0, max_duration=6.0, genres=STYLES
    )
    out = root / "out"
    features, labels, model, predictions = (str(out / n) for n in ("f", "l", "m", "p"))
    _main(
        load_job("extract_features"),
        ["--input", str(sample.audio_dir), "--output", features],
        spark=spark,
    )
    _main(
        load_job("prepare_labels"),
        ["--metadata", str(sample.metadata_dir), "--output", labels, "--test-fraction", "0.34"],
    )
    small = ["--candidates", "1", "--folds", "2", "--search-space", str(SEARCH_SMALL)]
    trained = _main(
        load_job("train"),
        ["--features", features, "--labels", labels, "--output", model, *small],
        spark=spark,
    )
    predicted = _main(
        load_job("predict"),
        ["--model", model, "--input", str(sample.audio_dir), "--output", predictions],
        spark=spark,
    )
    return SimpleNamespace(
        sample=sample,
        labels=labels,
        model=Path(model),
        trained=trained,
        predicted=predicted,
        metrics=json.loads((Path(model) / "metrics.json").read_text()),
        predictions=pq.read_table(predictions).to_pandas(),
    )


def test_training_on_extracted_features(chain):
    metrics = chain.metrics
    assert metrics["labels"] == sorted(STYLES)
    assert metrics["features"]["count"] == 518
    assert metrics["rows"]["test_total"] == 6
    assert metrics["test"]["ensemble"]["accuracy"] >= 5 / 6
    assert metrics["test"]["ensemble"]["kappa"] >= 0.7
    for name in ("report.md", "confusion_ensemble.png", "model/metadata"):
        assert (chain.model / name).exists(), name
    assert f"report: {chain.model}/report.md" in chain.trained


def test_prediction_of_every_file(chain):
    table = chain.predictions
    sample = chain.sample
    files = [str(t.path) for t in sample.tracks] + [str(p) for p in sample.bad_files.values()]
    assert sorted(path.removeprefix("file:") for path in table["path"]) == sorted(files)
    errors = table[table["status"] != "ok"]
    assert sorted(errors["error"].str.split(":").str[0]) == [
        "empty",
        "not_audio",
        "silent",
        "truncated",
    ]
    assert errors["genre"].isna().all() and errors["vote_lr"].isna().all()
    ok = table[table["status"] == "ok"]
    assert ok["genre"].notna().all() and set(ok["genre"]) <= set(STYLES)
    # The model's own test tracks, predicted from the MP3s, get the genres it was scored on.
    labels = pq.read_table(chain.labels).to_pandas()
    test = labels[labels["split"] == "test"].merge(ok, on="track_id")
    hits = (test["genre_top"] == test["genre"]).sum()
    assert hits / len(test) == pytest.approx(chain.metrics["test"]["ensemble"]["accuracy"])
    assert f"predict: {len(files)} rows (audio input), {len(ok)} ok, 4 errors" in chain.predicted
