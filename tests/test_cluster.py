"""A real Spark standalone cluster (master and two workers, each a JVM of its own) on 127.0.0.1,
and a job through ``spark-submit`` on its executors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from job_loader import ROOT

from fmagenre.platform import cluster as standalone
from fmagenre.platform.session import find_java_home

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cluster")
    started = standalone.start(directory, workers=2, cores=1, memory="1g")
    yield started
    standalone.stop(directory)


def test_start_records_a_master_and_two_workers_on_loopback(two_workers):
    assert two_workers.url.startswith("spark://127.0.0.1:")
    assert standalone.alive_workers(two_workers) == 2
    state = standalone.master_state(two_workers)
    assert state["status"] == "ALIVE"
    assert {worker["host"] for worker in state["workers"]} == {"127.0.0.1"}
    assert json.loads((Path(two_workers.directory) / "cluster.json").read_text())["pids"] == (
        two_workers.pids
    )
    line = standalone.status_line(standalone.load(two_workers.directory))
    assert line.startswith(f"{two_workers.url} ") and "2 of 2 workers alive" in line


def test_a_job_runs_on_both_executors(two_workers, sample_corpus, tmp_path):
    python = sys.executable
    env = {**os.environ, "JAVA_HOME": find_java_home(), "PYSPARK_PYTHON": python}
    env["PYSPARK_DRIVER_PYTHON"] = python
    output = tmp_path / "features"
    command = [str(Path(python).parent / "spark-submit"), "--master", two_workers.url]
    for setting in (
        "spark.ui.enabled=false",
        "spark.driver.host=127.0.0.1",
        "spark.driver.bindAddress=127.0.0.1",
        "spark.executor.memory=768m",
        "spark.task.maxFailures=1",
    ):
        command += ["--conf", setting]
    command += [str(ROOT / "jobs" / "extract_features.py"), "--partitions", "4"]
    command += ["--input", str(sample_corpus.audio_dir), "--output", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = pq.read_table(output, columns=["path", "status"]).to_pylist()
    files = [p for p in sample_corpus.audio_dir.rglob("*.mp3")]
    assert sorted(Path(r["path"].removeprefix("file:")).name for r in rows) == sorted(
        f.name for f in files
    )
    # Each worker ran an executor of the application, in its own working folder.
    for index in (1, 2):
        assert list((Path(two_workers.directory) / f"work-{index}").glob("app-*/*/stderr"))


def test_bad_settings_and_a_taken_port_are_one_line(two_workers, tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = standalone.main(["start", "--dir", str(tmp_path / "c"), "--port", str(port)])
    assert code == 2
    error = capsys.readouterr().err
    assert error == (
        f"python -m fmagenre.platform.cluster: the master port {port} is in use on 127.0.0.1:"
        " pick another, or 0\n"
    )
    assert standalone.main(["start", "--dir", two_workers.directory]) == 2
    assert "a cluster already runs from" in capsys.readouterr().err
    assert standalone.main(["start", "--dir", str(tmp_path / "c"), "--memory", "lots"]) == 2
    assert "worker memory must look like 512m or 2g" in capsys.readouterr().err
    assert standalone.main(["status", "--dir", str(tmp_path / "none")]) == 2
    assert "holds no cluster" in capsys.readouterr().err


def test_stop_ends_the_processes_it_started_and_no_other(tmp_path):
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        started = standalone.start(tmp_path / "c", workers=1, memory="512m")
        ended = standalone.stop(tmp_path / "c")
        assert sorted(ended) == sorted(started.pids)
        assert not any(standalone._alive(pid) for pid in started.pids)
        assert bystander.poll() is None
        assert standalone.stop(tmp_path / "c") == []  # nothing left to end
    finally:
        bystander.kill()
        bystander.wait()
