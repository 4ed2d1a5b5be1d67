"""kill -9 of a real spark-submit extraction after its first published chunk, then a rerun."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from job_loader import load_job, local_submit

from fmagenre.tables.feature_table import MARKER, read_features

pytestmark = pytest.mark.slow

FILES = 8


def _markers(output: Path) -> list[Path]:
    return sorted(output.glob(f"_runs/*/chunk-*/{MARKER}"))


def _plain_paths(output: Path) -> list[str]:
    if not any(output.glob("part-*.parquet")):
        return []
    return pq.read_table(output, columns=["path"]).column("path").to_pylist()


def test_kill_9_after_a_published_chunk_then_rerun(spark, sample_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, track in enumerate(sample_corpus.tracks[:FILES]):
        shutil.copy(track.path, corpus / f"{200 + i:06d}.mp3")
    output = tmp_path / "features"
    command, env = local_submit(
        "extract_features",
        *("--input", str(corpus), "--output", str(output), "--chunk-files", "2"),
    )
    log = tmp_path / "killed.log"
    reads = []  # what a reader polling the folder saw while the job ran: never a file twice
    with log.open("w") as sink:
        process = subprocess.Popen(
            command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 300
        while not _markers(output) or len(reads) < 3:
            assert process.poll() is None, f"the job ended first:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no chunk published:\n{log.read_text()[-3000:]}"
            seen = _plain_paths(output)
            assert len(seen) == len(set(seen)), seen
            if _markers(output):
                reads.append(len(seen))
        os.killpg(process.pid, signal.SIGKILL)  # the driver JVM, its Python workers, all
        process.wait()

    published = [json.loads(marker.read_text()) for marker in _markers(output)]
    published_rows = sum(chunk["rows"] for chunk in published)
    assert 2 <= published_rows < FILES, "the kill came after the job's end"
    assert not list(output.glob("_runs/*/summary.json"))
    seen = _plain_paths(output)
    assert len(seen) == len(set(seen)) <= published_rows  # the view lags at worst, never doubles

    argv = ["--input", str(corpus), "--output", str(output)]
    rerun = load_job("extract_features").main(argv, spark=spark)
    assert rerun == 0
    (summary_file,) = output.glob("_runs/*/summary.json")
    summary = json.loads(summary_file.read_text())
    assert summary["skipped"] == published_rows  # nothing published is redone
    assert summary["processed"] == FILES - published_rows == summary["ok"]
    seen = _plain_paths(output)
    assert len(seen) == len(set(seen)) == FILES
    assert {Path(p).name for p in seen} == {p.name for p in corpus.iterdir()}
    assert read_features(spark, str(output)).count() == FILES
    print(
        f"kill -9 after {published_rows} published rows; rerun skipped {summary['skipped']},"
        f" processed {summary['processed']}; plain reader rows {len(seen)} for {FILES} files"
    )
