"""The jobs through ``spark-submit`` on a standalone cluster of :mod:`fmagenre.platform.cluster`,
for the cluster tests: client mode, Spark event logs on, the executors' Python unpacked from the
venv-pack archive shipped with ``spark.archives`` (as ``conf/emr.toml``'s archive mode does) or
taken from a venv's path."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from job_loader import ROOT

from fmagenre.platform import cluster as standalone
from fmagenre.platform import emr
from fmagenre.platform.session import find_java_home

#: The executors' interpreter inside the unpacked archive (``#environment``).
ARCHIVE_PYTHON = "./environment/bin/python"


def pinned_archive(dist: Path) -> Path:
    """The venv-pack archive of this checkout (``emr package --archive``), its packages pinned
    to this venv's versions, for this machine's Python (``sys.base_prefix``)."""
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    constraints = dist / "constraints.txt"
    dist.mkdir(parents=True, exist_ok=True)
    constraints.write_text(frozen)
    built = emr.package(dist, archive=True, constraints=constraints, python_prefix=sys.base_prefix)
    return built[-1]


def job_config(path: Path, events: Path, extra: str = "") -> Path:
    """A job configuration for the cluster: event logs on, uncompressed in one file each."""
    events.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "[spark]\n"
        '"spark.ui.enabled" = false\n'
        '"spark.eventLog.enabled" = true\n'
        f'"spark.eventLog.dir" = "file:{events}"\n'
        '"spark.eventLog.compress" = false\n'
        '"spark.eventLog.rolling.enabled" = false\n'
        '"spark.executor.memory" = "768m"\n'
        '"spark.sql.shuffle.partitions" = 4\n'
        '"spark.default.parallelism" = 2\n' + extra
    )
    return path


@dataclass
class ClusterJobs:
    cluster: standalone.Cluster
    config: Path
    #: The venv-pack archive; None: the executors run this venv's Python.
    archive: Path | None

    def submit(self, script: Path, *arguments: str, conf: tuple[str, ...] = ()) -> list[str]:
        """The ``spark-submit`` command line of ``script`` on the cluster."""
        command = [str(Path(sys.executable).parent / "spark-submit"), "--master", self.cluster.url]
        settings = ["spark.driver.host=127.0.0.1", "spark.driver.bindAddress=127.0.0.1", *conf]
        if self.archive is not None:
            settings.append(f"spark.archives={self.archive}#environment")
        for setting in settings:
            command += ["--conf", setting]
        return [*command, str(script), *arguments]

    def command(self, job: str, *arguments: str, conf: tuple[str, ...] = ()) -> list[str]:
        job_file = ROOT / "jobs" / f"{job}.py"
        return self.submit(job_file, "--config", str(self.config), *arguments, conf=conf)

    def run_chain(self, steps: list[tuple[str, str, list[str]]], folder: Path) -> list[dict]:
        """Run ``(name, job, arguments)`` steps in one application (:mod:`cluster_chain_driver`);
        return each step's exit status, seconds and printed output."""
        steps_file = folder / f"steps-{len(list(folder.glob('steps-*.json')))}.json"
        steps_file.write_text(json.dumps(steps))
        driver = Path(__file__).resolve().parent / "cluster_chain_driver.py"
        command = self.submit(driver, str(steps_file), str(self.config))
        env = self.env()
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        assert result.returncode == 0, result.stderr[-4000:]
        return json.loads(Path(f"{steps_file}.result.json").read_text())

    def env(self) -> dict[str, str]:
        python = ARCHIVE_PYTHON if self.archive is not None else sys.executable
        return {
            **os.environ,
            "JAVA_HOME": find_java_home(),
            "PYSPARK_PYTHON": python,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
        }

    def run(
        self, job: str, *arguments: str, conf: tuple[str, ...] = (), timeout: float = 600
    ) -> subprocess.CompletedProcess:
        """Run ``jobs/JOB.py`` to its end; fail with the end of its stderr unless it exits 0."""
        result = subprocess.run(
            self.command(job, *arguments, conf=conf),
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
        )
        assert result.returncode == 0, f"{job}: exit {result.returncode}\n{result.stderr[-4000:]}"
        return result

    def start(self, job: str, *arguments: str, log: Path, conf: tuple[str, ...] = ()):
        """Start ``jobs/JOB.py`` in its own process group, stdout and stderr into ``log``."""
        with log.open("w") as out:
            return subprocess.Popen(
                self.command(job, *arguments, conf=conf),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env(),
                start_new_session=True,
            )


def event_logs(events: Path, app_name: str) -> list[list[dict]]:
    """The events of every application named ``app_name`` logged in ``events``."""
    found = []
    for path in sorted(events.iterdir()):
        if not path.is_file() or path.suffix == ".inprogress":
            continue
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        start = next(e for e in lines if e["Event"] == "SparkListenerApplicationStart")
        if start["App Name"] == app_name:
            found.append(lines)
    return found


def barrier_stage_executors(events: list[dict]) -> list[set[str]]:
    """For each barrier stage of an application, the executors its successful tasks ran on."""
    barrier = {
        e["Stage Info"]["Stage ID"]
        for e in events
        if e["Event"] == "SparkListenerStageSubmitted"
        and any(rdd.get("Barrier") for rdd in e["Stage Info"]["RDD Info"])
    }
    executors: dict[int, set[str]] = {stage: set() for stage in barrier}
    for e in events:
        if e["Event"] == "SparkListenerTaskEnd" and e["Stage ID"] in barrier:
            if e["Task End Reason"]["Reason"] == "Success":
                executors[e["Stage ID"]].add(e["Task Info"]["Executor ID"])
    return [executors[stage] for stage in sorted(executors)]


def processes_under(directory: Path) -> list[int]:
    """Processes whose working folder is under ``directory`` (executors work in theirs, and
    their Python workers in the same)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cwd = (entry / "cwd").resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if entry.name.isdigit() and cwd.is_relative_to(directory):
            found.append(int(entry.name))
    return found


def kill_worker(cluster: standalone.Cluster, index: int) -> list[int]:
    """``kill -9`` worker ``index`` (1 is the first) with everything it started: its process
    group (the worker JVM, its executors' JVMs, their Python workers) and any process working
    in its folder; return the process ids killed."""
    worker = cluster.pids[index]
    victims = sorted({worker, *processes_under(Path(cluster.directory) / f"work-{index}")})
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker, signal.SIGKILL)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return victims
