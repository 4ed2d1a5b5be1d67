"""A real Spark standalone cluster (master and two workers, each a JVM of its own) on 127.0.0.1.
Jobs through ``spark-submit`` on its executors: ``test_cluster_lost_worker.py`` and
``test_cluster_chain.py``."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from fmagenre.platform import cluster as standalone

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
