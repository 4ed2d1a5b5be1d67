"""jobs/prepare_labels.py end to end: Parquet and _summary.json on the real metadata layout."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fmagenre.tables.label_table import summary_path

ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "jobs" / "prepare_labels.py"
FIXTURE = Path(__file__).parent / "data" / "fma_metadata"


@pytest.fixture(scope="module")
def job():
    spec = importlib.util.spec_from_file_location("prepare_labels_job", JOB)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(JOB), *args], capture_output=True, text=True, timeout=120
    )


def test_job_writes_table_and_summary(spark, job, tmp_path, capsys):
    output = tmp_path / "out" / "labels"
    args = ["--metadata", str(FIXTURE), "--output", str(output), "--seed", "2"]
    code = job.main([*args, "--test-fraction", "0.3"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "tracks read: 7" in printed and "_summary.json" in printed

    frame = spark.read.parquet(str(output))
    types = dict(frame.dtypes)
    assert types == {
        "track_id": "bigint",
        "genre_top": "string",
        "genre_top_id": "int",
        "genre_top_source": "string",
        "genres": "array<int>",
        "genres_all": "array<int>",
        "duration": "bigint",
        "bit_rate": "bigint",
        "set_split": "string",
        "set_subset": "string",
        "split": "string",
    }
    rows = {row["track_id"]: row for row in frame.collect()}
    # Hand count of the fixture: 7 tracks, 134 has no genre; 2, 3, 5 Hip-Hop and 10 Pop are
    # given, 30 imputed Rock, 20 a Pop/Folk tie.
    assert sorted(rows) == [2, 3, 5, 10, 20, 30]
    sources = [rows[t]["genre_top_source"] for t in (2, 3, 5, 10, 20, 30)]
    assert sources == [*["given"] * 4, "imputed_tie", "imputed"]
    assert rows[30]["genre_top"] == "Rock" and rows[30]["genre_top_id"] == 12
    assert rows[20]["genre_top"] in {"Pop", "Folk"}
    assert rows[20]["genres"] == [76, 103] and rows[20]["genres_all"] == [17, 10, 76, 103]
    assert rows[3]["set_split"] == "validation" and rows[3]["set_subset"] == "medium"
    assert rows[2]["duration"] == 168 and rows[2]["bit_rate"] == 256000
    assert {row["split"] for row in rows.values()} <= {"train", "test"}
    hip_hop_test = sum(rows[t]["split"] == "test" for t in (2, 3, 5))
    assert hip_hop_test == 1  # round(0.3 * 3)

    summary = json.loads((tmp_path / "out" / "labels" / "_summary.json").read_text())
    assert summary["tracks_read"] == 7
    assert summary["dropped"]["empty_genres_all"] == 1
    assert summary["sources"] == {"given": 4, "imputed": 1, "imputed_tie": 1}
    assert summary["split"]["test"] == sum(row["split"] == "test" for row in rows.values())
    assert summary["split"]["seed"] == 2 and summary["split"]["test_fraction"] == 0.3


def test_job_refuses_to_overwrite_without_flag(spark, job, tmp_path, capsys):
    output = str(tmp_path / "labels")
    args = ["--metadata", str(FIXTURE), "--output", output, "--official-split"]
    assert job.main(args) == 0
    capsys.readouterr()
    assert job.main(args) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "already exists" in error and "--overwrite" in error
    assert job.main([*args, "--overwrite"]) == 0
    rows = spark.read.parquet(output).select("track_id", "split").collect()
    # FMA's set.split of the fixture: 5 and 30 are test, 3 validation, the others training.
    test = {r["track_id"] for r in rows if r["split"] == "test"}
    assert test == {5, 30} and len(rows) == 6


def test_bad_metadata_is_one_line_and_exit_2(job, tmp_path, capsys):
    shutil.copy(FIXTURE / "genres.csv", tmp_path)
    (tmp_path / "tracks.csv").write_text("track_id,genre_top\n1,Rock\n")
    assert job.main(["--metadata", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "tracks.csv: header line 1" in error


@pytest.mark.slow
def test_cli_wrong_path_exits_2_without_traceback(tmp_path):
    result = _run_cli("--metadata", str(tmp_path / "missing"), "--output", str(tmp_path / "o"))
    assert result.returncode == 2
    # Spark's start-up lines come first: the metadata is read through Hadoop.
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("prepare_labels:")]
    assert "missing does not exist" in line
    assert "Traceback" not in result.stderr


def test_cli_help_explains_every_option():
    result = _run_cli("--help")
    assert result.returncode == 0
    options = "--metadata --output --seed --test-fraction --official-split --overwrite"
    for option in options.split():
        assert option in result.stdout


def test_cli_rejects_bad_fraction(tmp_path):
    result = _run_cli("--metadata", str(FIXTURE), "--output", "x", "--test-fraction", "1.5")
    assert result.returncode == 2 and "must be a number > 0 and < 1, got 1.5" in result.stderr


def test_summary_goes_inside_the_table_where_readers_skip_it():
    assert summary_path("out/labels") == "out/labels/_summary.json"
    assert summary_path("s3a://bucket/run/labels/") == "s3a://bucket/run/labels/_summary.json"
