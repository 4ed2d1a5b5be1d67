"""The musicnn family in the extraction job's pass, and in training, comparison and
prediction: real Spark, real decoding of generated MP3s, the shipped network; no mocks."""

from __future__ import annotations

import io
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from job_loader import load_job
from pyspark.sql import functions as F

from fmagenre.audio import musicnn
from fmagenre.audio.decode import decode
from fmagenre.audio.feature_sets import FeatureSetError, family_columns
from fmagenre.audio.features import analyse
from fmagenre.audio.names import MUSICNN_TAGS, flat_names, musicnn_names
from fmagenre.platform.config import ExtractConfig
from fmagenre.synthetic.music import render
from fmagenre.synthetic.sample import _write_mp3
from fmagenre.tables.feature_table import read_features

pytestmark = pytest.mark.slow


def test_the_families_name_their_columns():
    assert len(musicnn_names()) == 450 and len(set(musicnn_names())) == 450
    assert musicnn_names()[:2] == ("musicnn_mean_001", "musicnn_mean_002")
    assert "musicnn_tag_hip_hop" in musicnn_names() and len(MUSICNN_TAGS) == 50
    assert family_columns(["musicnn"]) == musicnn_names()
    assert family_columns(["mir", "musicnn"]) == (*flat_names(), *musicnn_names())
    assert family_columns(["musicnn", "mfcc"])[-1] == musicnn_names()[-1]
    with pytest.raises(FeatureSetError, match=r"valid families: .*mir, musicnn"):
        family_columns(["musicn"])
    with pytest.raises(ValueError, match="families must be mir or mir,musicnn"):
        ExtractConfig(families="musicnn")


def test_analyse_gives_the_network_s_summary_of_the_decoded_track(sample_corpus):
    path = sample_corpus.tracks[0].path
    result = analyse(path.read_bytes(), musicnn=True)
    decoded = decode(path.read_bytes())
    expected = musicnn.summary(*musicnn.patch_outputs(decoded.y, decoded.sr)[1:])
    assert result.status == "ok" and result.musicnn_error is None
    np.testing.assert_array_equal(result.musicnn, expected)
    assert result.musicnn.shape == (450,) and np.isfinite(result.musicnn).all()
    # Without the family, nothing is computed.
    assert analyse(path.read_bytes()).musicnn is None


def _run(spark, corpus: Path, output: Path, *options: str) -> str:
    argv = ["--input", str(corpus), "--output", str(output), *options]
    with redirect_stdout(io.StringIO()) as printed:
        assert load_job("extract_features").main(argv, spark=spark) == 0
    return printed.getvalue()


@pytest.fixture(scope="module")
def extracted(spark, sample_corpus, tmp_path_factory):
    """Two sample tracks, a 2-second track and the 5 bad files (one a 0.3 s clip), extracted
    with musicnn."""
    root = tmp_path_factory.mktemp("musicnn")
    corpus = root / "corpus" / "000"
    corpus.mkdir(parents=True)
    sources = [sample_corpus.tracks[0].path, sample_corpus.tracks[3].path]
    sources += list(sample_corpus.bad_files.values())
    for i, source in enumerate(sources):
        shutil.copy(source, corpus / f"{300 + i:06d}.mp3")
    _write_mp3(corpus / "000399.mp3", render("Rock", duration=2.0, sr=22050, seed=3), 22050, 1)
    output = root / "features"
    printed = _run(spark, root / "corpus", output, "--families", "mir,musicnn")
    rows = {Path(r.path).name: r.asDict() for r in read_features(spark, str(output)).collect()}
    return {"printed": printed, "rows": rows, "output": output, "corpus": root / "corpus"}


def test_every_ok_track_longer_than_a_patch_has_the_family(extracted):
    rows = extracted["rows"]
    assert len(rows) == 8
    for name in ("000300.mp3", "000301.mp3"):
        row = rows[name]
        values = np.array([row[c] for c in musicnn_names()], dtype=np.float32)
        assert row["status"] == "ok" and row["musicnn_error"] is None
        assert np.isfinite(values).all()
        assert ((values[400:] >= 0) & (values[400:] <= 1)).all()  # tag means: sigmoid outputs
        assert (values[200:400] >= 0).all()  # standard deviations
        assert "musicnn=msd_musicnn-0.1.0" in row["settings"]
    # The 2-second track and the sample's 0.3 s clip: MIR features, no musicnn patch.
    short = [r for r in rows.values() if r["status"] == "ok" and r[musicnn_names()[0]] is None]
    assert sorted(Path(r["path"]).name for r in short)[-1] == "000399.mp3" and len(short) == 2
    assert all(r["musicnn_error"].startswith("too_short: ") for r in short)
    bad = [row for row in rows.values() if row["status"] == "error"]
    assert len(bad) == 4
    for row in bad:
        assert row["musicnn_error"] == row["error"] and row[musicnn_names()[-1]] is None
    assert "with musicnn          2" in extracted["printed"]


def test_comparison_and_training_take_the_family_set(spark, extracted, tmp_path):
    """compare_models defines the musicnn sets on such a table, and train refuses a table
    without musicnn values in one line."""
    from fmagenre.ml.training_data import labelled_data
    from fmagenre.tables.inputs import InputTableError, has_musicnn

    table = read_features(spark, str(extracted["output"]))
    assert has_musicnn(table)
    assert not has_musicnn(table.drop(*musicnn_names()))
    labels = spark.createDataFrame(
        [(300, "Rock", "train"), (301, "Rock", "test")],
        "track_id long, genre_top string, split string",
    )
    without = table.withColumn(musicnn_names()[0], F.lit(None).cast("float"))
    with pytest.raises(InputTableError, match="no ok row holds musicnn values"):
        labelled_data(without, labels, columns=musicnn_names(), class_weights="none", folds=2)


def test_the_comparison_s_musicnn_sets_need_the_family(spark, extracted, tmp_path):
    from contextlib import redirect_stderr

    from fmagenre.audio.feature_sets import build_feature_sets

    sets = build_feature_sets(musicnn=True)
    assert sets["musicnn"].columns == musicnn_names()
    assert sets["mir+musicnn"].columns == (*flat_names(), *musicnn_names())
    assert "musicnn" not in build_feature_sets()
    plain = tmp_path / "plain"
    read_features(spark, str(extracted["output"])).drop(*musicnn_names()).write.parquet(str(plain))
    argv = ["--features", str(plain), "--labels", str(tmp_path / "labels")]
    argv += ["--output", str(tmp_path / "compare"), "--feature-sets", "mfcc,musicnn"]
    with redirect_stderr(io.StringIO()) as said:
        assert load_job("compare_models").main(argv, spark=spark) == 2
    assert said.getvalue().count("\n") == 1
    assert "holds no musicnn values: extract them with" in said.getvalue()
