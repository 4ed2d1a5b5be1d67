"""Job inputs given as Hadoop URIs: ``file://`` paths with a space, read through Hadoop."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from fmagenre.platform.hadoop import read_bytes

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "data" / "fma_metadata"


def _job(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_uri_job", ROOT / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def spaced(tmp_path) -> Path:
    """A directory whose path holds a space."""
    directory = tmp_path / "dir with space"
    directory.mkdir()
    return directory


def test_read_bytes_in_pieces_and_missing_files(spark, spaced):
    data = bytes(range(256)) * 5
    (spaced / "blob.bin").write_bytes(data)
    assert read_bytes(spark, f"file://{spaced}/blob.bin", piece=100) == data
    assert read_bytes(spark, str(spaced / "blob.bin")) == data
    with pytest.raises(FileNotFoundError, match=r"nope\.bin: no such file"):
        read_bytes(spark, f"file://{spaced}/nope.bin")
    with pytest.raises(FileNotFoundError):
        read_bytes(spark, f"file://{spaced}")  # a directory


def test_prepare_labels_reads_metadata_from_a_file_uri(spark, spaced, capsys):
    shutil.copytree(FIXTURE, spaced / "fma_metadata")
    job = _job("prepare_labels")
    output = f"file://{spaced}/labels"
    assert job.main(["--metadata", f"file://{spaced}/fma_metadata", "--output", output]) == 0
    assert "tracks read: 7" in capsys.readouterr().out
    assert spark.read.parquet(output).count() == 6
    assert json.loads((spaced / "labels" / "_summary.json").read_text())["tracks_read"] == 7

    (spaced / "empty").mkdir()
    for metadata, message in (
        (f"file://{spaced}/empty", f"file://{spaced}/empty has no tracks.csv"),
        (f"file://{spaced}/nowhere", f"metadata directory file://{spaced}/nowhere does not exist"),
    ):
        assert job.main(["--metadata", metadata, "--output", f"{output}2"]) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"prepare_labels: {message}") and error.count("\n") == 1


def test_train_reads_columns_and_search_space_files_from_file_uris(spark, spaced, capsys):
    (spaced / "columns.txt").write_text("zcr_mean_01 # fine\nzcr_mean_02\n")
    (spaced / "space.toml").write_text("[xgb]\ndepth = 3\n")
    job = _job("train")
    base = ["--features", "unused", "--labels", "unused", "--output", str(spaced / "model")]
    columns = f"file://{spaced}/columns.txt"
    assert job.main([*base, "--columns-file", columns], spark=spark) == 2
    error = capsys.readouterr().err
    assert f"train: {columns}: 1 unknown feature column(s): 'zcr_mean_02'" in error
    space = f"file://{spaced}/space.toml"
    assert job.main([*base, "--search-space", space], spark=spark) == 2
    assert f"train: {space}: [xgb] has no parameter 'depth'" in capsys.readouterr().err
    assert job.main([*base, "--search-space", f"file://{spaced}/none.toml"], spark=spark) == 2
    assert "none.toml: cannot read the search space" in capsys.readouterr().err
