"""``python -m fmagenre.bench spark --cluster`` on a tiny corpus: its figures, and no process of
its clusters left running."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_jobs import processes_under
from job_loader import ROOT

from fmagenre.platform import cluster as standalone
from fmagenre.platform.session import find_java_home

NUMBER = r"[-+]?\d+(?:\.\d+)?"
ROW = re.compile(rf"^  (\S.*?) +(\d+) +({NUMBER}) +({NUMBER}) +({NUMBER}) +({NUMBER})$")
NAMES = [
    "analyse loop, warm, 1 thread",
    "spark local[1]",
    "spark local[2]",
    "cluster 1 worker x 1 core",
    "cluster 2 workers x 1 core",
]


def _bench(*arguments: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    python = sys.executable
    env = {**os.environ, "JAVA_HOME": find_java_home(), "PYSPARK_PYTHON": python}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    command = [python, "-m", "fmagenre.bench", "spark", *arguments]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )


@pytest.mark.slow
def test_cluster_mode_prints_its_figures_and_stops_its_clusters(tmp_path):
    clusters = (tmp_path / "clusters").resolve()
    result = _bench(
        "--cluster",
        "--cluster-dir",
        str(clusters),
        "--seconds-per-core",
        "0.2",
        "--duration",
        "3",
        cwd=tmp_path,
        timeout=600,  # 3 minutes alone; twice that beside the other leg of make test on 2 cores
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    rows = {match[1]: match.groups()[1:] for match in map(ROW.match, lines) if match}
    assert list(rows) == NAMES
    files = int(re.search(r"^spark: (\d+) tracks", result.stdout, re.M)[1])
    assert files >= 3
    assert [int(rows[name][0]) for name in NAMES] == [1, 1, 2, 1, 2]
    assert all(float(rows[name][1]) > 0 for name in NAMES)
    for what in ("local\\[2\\] vs local\\[1\\]", "cluster 2 workers vs 1"):
        assert re.search(rf"^  scaling {what}: {NUMBER}x \(ideal 2", result.stdout, re.M)
    for name in NAMES[1:]:
        overhead = rf"^  overhead of {re.escape(name)} over the loop: {NUMBER}% \("
        assert re.search(overhead, result.stdout, re.M)
        went = re.search(
            rf"^  {re.escape(name)}: extraction job {NUMBER} s \((\d+) tasks, .* the rest"
            rf" {NUMBER} s(; executors up in {NUMBER} s, before it)?$",
            result.stdout,
            re.M,
        )
        assert went and int(went[1]) >= 1
        assert bool(went[2]) == name.startswith("cluster")
    for workers in (1, 2):
        recorded = standalone.load(clusters / f"workers-{workers}")
        assert len(recorded.pids) == 1 + workers
        assert not any(standalone._alive(pid) for pid in recorded.pids)
        # Its executors ran the job in the worker's folders, and have ended too.
        assert list((clusters / f"workers-{workers}").glob("work-*/app-*/*/stderr"))
    assert processes_under(clusters) == []


def test_master_must_be_a_standalone_master_that_answers(tmp_path):
    result = _bench("--master", "yarn", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].endswith("--master yarn: expected spark://HOST:PORT")
    url = f"spark://127.0.0.1:{standalone.free_port()}"
    result = _bench("--master", url, cwd=tmp_path)
    assert result.returncode == 2
    assert f"the Spark master at {url} does not answer" in result.stderr
    assert "sizing the corpus" not in result.stdout
