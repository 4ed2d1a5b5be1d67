"""A job whose ``spark://`` master does not answer stops at once: one line, exit 2.

Nothing listens on the port (a free one, taken and let go), under ``python`` and under
``spark-submit``, whose launcher passes the master to the job in its Spark settings.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from job_loader import ROOT

from fmagenre.errors import InputError
from fmagenre.platform.session import check_master, find_java_home, plan_session

pytestmark = pytest.mark.slow

METADATA = ROOT / "tests" / "data" / "fma_metadata"
SPARK_SUBMIT = str(Path(sys.executable).parent / "spark-submit")


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(command: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    python = sys.executable
    env = {**os.environ, "JAVA_HOME": find_java_home(), "PYSPARK_PYTHON": python}
    env["PYSPARK_DRIVER_PYTHON"] = python
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=90)
    return result, time.monotonic() - started


def _expected(master: str) -> str:
    return (
        f"prepare_labels: the Spark master at {master} does not answer (Connection refused):"
        " start it (python -m fmagenre.platform.cluster start --dir DIR prints its URL) or"
        " check --master"
    )


def test_python_job_exits_2_with_one_line(closed_port, tmp_path):
    master = f"spark://127.0.0.1:{closed_port}"
    job = [sys.executable, str(ROOT / "jobs" / "prepare_labels.py"), "--master", master]
    result, elapsed = _run([*job, "--metadata", str(METADATA), "--output", "out"], tmp_path)
    assert (result.returncode, result.stderr) == (2, _expected(master) + "\n")
    assert elapsed < 30
    assert not (tmp_path / "out").exists()


def test_spark_submit_job_exits_2_with_one_line(closed_port, tmp_path):
    master = f"spark://127.0.0.1:{closed_port}"
    command = [SPARK_SUBMIT, "--master", master, str(ROOT / "jobs" / "prepare_labels.py")]
    result, elapsed = _run([*command, "--metadata", str(METADATA), "--output", "out"], tmp_path)
    assert result.returncode == 2
    # spark-submit's PythonRunner copies the driver's stdout and stderr to its stdout; its
    # JVM logs a few lines of its own on stderr (log4j, the host name) before the job runs.
    assert result.stdout == _expected(master) + "\n"
    assert "Traceback" not in result.stderr and master not in result.stderr
    assert elapsed < 30


def test_check_master_passes_other_masters_and_a_listening_one(closed_port):
    for master in ("local[2]", "yarn", "k8s://https://10.0.0.1:6443"):
        check_master(master)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        # A standby master that is down does not matter while another one answers.
        check_master(f"spark://127.0.0.1:{closed_port},127.0.0.1:{port}")
    with pytest.raises(InputError, match="expected spark://HOST:PORT"):
        check_master("spark://127.0.0.1")


def test_the_master_checked_is_the_one_the_session_gets():
    file_master = {"spark.master": "spark://10.0.0.1:7077"}
    assert plan_session().master == "local[*]"
    assert plan_session(master="local[2]").master == "local[2]"
    assert plan_session(master="local[2]", conf=file_master).master == "spark://10.0.0.1:7077"
    overrides = {"spark.master": "yarn"}
    assert plan_session(conf=file_master, overrides=overrides).master == "yarn"
