"""jobs/predict.py end to end: feature Parquet, a feature table and MP3s, with error rows."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from job_loader import load_job

from fmagenre.extraction.driver import run_extraction
from fmagenre.ml.classifiers import MODEL_NAMES
from fmagenre.platform.config import ExtractConfig

OUTPUT_COLUMNS = ["track_id", "path", "status", "error", "genre", "prediction"] + [
    f"{kind}_{name}" for kind in ("vote", "scores") for name in MODEL_NAMES
]
BAD = ("empty", "truncated", "not_audio", "silent")  # the sample's files that fail


@pytest.fixture(scope="module")
def job():
    return load_job("predict")


@pytest.fixture(scope="module")
def model_dir(trained_model):
    return str(trained_model.output)


def _predict(job, spark, *argv: str) -> str:
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert job.main(list(argv), spark=spark) == 0
    return printed.getvalue()


def test_predicts_feature_parquet(spark, job, training_tables, model_dir, tmp_path):
    features, genres = training_tables.features, training_tables.genres
    output = tmp_path / "predictions"
    printed = _predict(
        job, spark, "--model", model_dir, "--input", features, "--output", str(output)
    )
    assert printed.startswith("predict: 300 rows (features input), 300 ok, 0 errors")
    table = pq.read_table(output).to_pandas()
    assert list(table.columns) == OUTPUT_COLUMNS
    assert table["genre"].notna().all() and set(table["genre"]) <= set(genres)
    for name in MODEL_NAMES:
        assert set(table[f"vote_{name}"]) <= set(genres)
    # Each model's genre -> probability, but the SVC's: it gives margins only.
    assert table["scores_svc"].isna().all()
    for name in ("lr", "xgb"):
        for scores in table[f"scores_{name}"]:
            assert {genre for genre, _ in scores} == set(genres)
            assert sum(p for _, p in scores) == pytest.approx(1.0, abs=1e-6)
    truth = pq.read_table(training_tables.labels).to_pandas().set_index("track_id")["genre_top"]
    # Separable data (genre means 6 noise deviations apart), 80% of it seen: nearly all right.
    accuracy = (table.set_index("track_id")["genre"] == truth).mean()
    assert accuracy > 0.9


def test_mp3s_and_their_feature_table_get_the_same_predictions(
    spark, job, training_tables, model_dir, sample_corpus, tmp_path
):
    genres = training_tables.genres
    audio = str(sample_corpus.audio_dir)
    table = tmp_path / "features"
    run_extraction(spark, inputs=[audio], output=str(table), config=ExtractConfig(partitions=2))
    from_table, from_audio = tmp_path / "from_table", tmp_path / "from_audio"
    printed = _predict(
        job, spark, "--model", model_dir, "--input", str(table), "--output", str(from_table)
    )
    assert "(features input)" in printed
    printed = _predict(
        job, spark, "--model", model_dir, "--input", audio, "--output", str(from_audio)
    )
    files = len(sample_corpus.tracks) + len(sample_corpus.bad_files)
    assert printed.startswith(
        f"predict: {files} rows (audio input), {files - len(BAD)} ok, {len(BAD)} errors"
    )
    rows = {}
    for output in (from_table, from_audio):
        frame = pq.read_table(output).to_pandas().sort_values("path").reset_index(drop=True)
        assert list(frame.columns) == OUTPUT_COLUMNS and len(frame) == files
        rows[output.name] = frame
    audio_rows = rows["from_audio"]
    assert audio_rows.equals(rows["from_table"])
    by_file = {
        Path(path[len("file:") :]): row for path, row in audio_rows.set_index("path").iterrows()
    }
    for reason in BAD:
        row = by_file[sample_corpus.bad_files[reason]]
        assert row["status"] == "error" and reason in row["error"]
        assert row[["genre", "prediction", *(f"vote_{n}" for n in MODEL_NAMES)]].isna().all()
    for track in sample_corpus.tracks:
        row = by_file[track.path]
        assert row["status"] == "ok" and row["genre"] in genres
        assert row["track_id"] == track.track_id


def _fail(job, spark, capsys, *argv: str) -> str:
    assert job.main(list(argv), spark=spark) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("predict:")]
    assert len(lines) == 1
    return lines[0]


def test_bad_inputs(spark, job, capsys, training_tables, model_dir, tmp_path):
    root, features = training_tables.root, training_tables.features
    columns = training_tables.columns
    out = str(tmp_path / "out")
    line = _fail(job, spark, capsys, "--model", str(root), "--input", features, "--output", out)
    assert line == (
        f"predict: {root} holds no trained model ({root}/model is missing): train one with"
        " jobs/train.py"
    )
    missing = str(tmp_path / "nowhere")
    line = _fail(job, spark, capsys, "--model", model_dir, "--input", missing, "--output", out)
    assert line == f"predict: --input {missing} does not exist"
    narrow = tmp_path / "narrow"
    narrow.mkdir()
    pq.write_table(
        pq.read_table(features, columns=["track_id", *columns[:5]]), narrow / "p.parquet"
    )
    line = _fail(job, spark, capsys, "--model", model_dir, "--input", str(narrow), "--output", out)
    lacking = f"predict: the input lacks {len(columns) - 5} feature column(s) of the model:"
    assert line.startswith(f"{lacking} {columns[5]}, ")
    (tmp_path / "empty").mkdir()
    line = _fail(
        job,
        spark,
        capsys,
        "--model",
        model_dir,
        "--input",
        str(tmp_path / "empty"),
        "--output",
        out,
    )
    assert line == f"predict: no file matching *.mp3 under {tmp_path / 'empty'}"
    line = _fail(
        job, spark, capsys, "--model", model_dir, "--input", features, "--output", features
    )
    assert line == f"predict: {features} already exists: pass --overwrite to replace it"
    with pytest.raises(SystemExit) as exit_info:
        job.main(
            ["--model", model_dir, "--input", features, "--output", out, "--input-format", "csv"]
        )
    assert exit_info.value.code == 2
