"""A Spark standalone cluster on this machine, for tests and for trying a job on real executors.

``python -m fmagenre.platform.cluster start|stop|status|repair`` starts a master and N workers from
pyspark's own classes (``bin/spark-class``, no Spark download), each a JVM of its own bound to
127.0.0.1, with one directory holding everything: ``cluster.json`` (the URL, the ports and the
processes started), ``logs/`` and each worker's ``work-N/`` (its executors' working folders and
logs). ``stop`` ends the processes that ``start`` recorded, with their process groups (the
executors and their Python workers), and nothing else; ``repair`` starts again the workers
whose process has ended (a lost node, a ``kill -9``). A job then runs on it with
``--master spark://127.0.0.1:PORT`` (``status`` prints the URL)::

    python -m fmagenre.platform.cluster start --dir /tmp/fmagenre-cluster --workers 2
    spark-submit --master spark://127.0.0.1:PORT jobs/extract_features.py ...
    python -m fmagenre.platform.cluster stop --dir /tmp/fmagenre-cluster

Unlike local mode, each executor has its own JVM, working folder and Python workers: what a
job ships to its tasks must travel by Spark's own means, as on YARN.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fmagenre.errors import InputError
from fmagenre.platform.session import ensure_java

HOST = "127.0.0.1"
STATE = "cluster.json"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
#: Seconds ``start`` waits for every worker to register with the master.
START_TIMEOUT_S = 90.0


class ClusterError(InputError, RuntimeError):
    """A cluster that cannot start, or a directory that holds none; the message says why."""


@dataclass
class Cluster:
    """A started cluster, as ``cluster.json`` records it."""

    directory: str
    port: int
    webui_port: int
    workers: int
    cores: int
    memory: str
    #: Process ids of the master, then the workers (each leads its process group).
    pids: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"spark://{HOST}:{self.port}"

    @property
    def webui(self) -> str:
        return f"http://{HOST}:{self.webui_port}"


def spark_home() -> Path:
    """The Spark installation that pyspark ships (its ``bin/spark-class``)."""
    import pyspark

    return Path(pyspark.__file__).parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _port_taken(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def _state_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / STATE


def load(directory: str | os.PathLike) -> Cluster:
    """The cluster recorded in ``directory``.

    Raises
    ------
    ClusterError
        When the directory records none.
    """
    path = _state_path(directory)
    try:
        return Cluster(**json.loads(path.read_text()))
    except FileNotFoundError:
        raise ClusterError(f"{directory} holds no cluster ({STATE} is missing)") from None


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie child counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def master_state(cluster: Cluster, *, timeout: float = 5.0) -> dict | None:
    """The master's JSON status (``/json/``: its workers, their state), or None when it does
    not answer."""
    try:
        with urllib.request.urlopen(f"{cluster.webui}/json/", timeout=timeout) as reply:
            return json.load(reply)
    except (OSError, urllib.error.URLError, ValueError):
        return None


def alive_workers(cluster: Cluster) -> int:
    """Workers registered with the master and alive; 0 when the master does not answer."""
    state = master_state(cluster)
    if state is None:
        return 0
    return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")


def _launch(cluster: Cluster, name: str, arguments: list[str], env: dict[str, str]) -> int:
    log = Path(cluster.directory) / "logs" / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(spark_home() / "bin" / "spark-class"), *arguments],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cluster.directory,
            start_new_session=True,  # its own process group: stop ends its executors too
        )
    return process.pid


def _log_tail(directory: str, lines: int = 5) -> str:
    tails = []
    for log in sorted((Path(directory) / "logs").glob("*.log")):
        text = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        tails += [f"{log.name}: {line}" for line in text[-lines:]]
    return "\n".join(tails)


def start(
    directory: str | os.PathLike,
    *,
    workers: int = 2,
    cores: int = 1,
    memory: str = "1g",
    port: int = 0,
    webui_port: int = 0,
    timeout: float = START_TIMEOUT_S,
) -> Cluster:
    """Start a master and ``workers`` workers of ``cores`` cores and ``memory`` each.

    Parameters
    ----------
    directory : str or path-like
        Where the state, the logs and the workers' folders go; created if missing.
    workers, cores : int
        Workers, and the cores each offers to executors.
    memory : str
        Memory each worker offers to executors (``1g``, ``512m``).
    port, webui_port : int
        The master's port and its web UI's; 0 picks free ones.
    timeout : float
        Seconds to wait for every worker to register.

    Returns
    -------
    Cluster

    Raises
    ------
    ClusterError
        On bad settings, a port in use, a cluster already running in ``directory``, or one
        that did not come up in time (it is then stopped; the logs' last lines are in the
        message after its first line).
    fmagenre.platform.session.JavaNotFoundError
        Without Java 17 or 21.
    """
    if workers < 1 or cores < 1:
        raise ClusterError(f"a cluster needs at least 1 worker of 1 core, got {workers} x {cores}")
    if not memory or not memory[:-1].isdigit() or memory[-1].lower() not in "kmgt":
        raise ClusterError(f"worker memory must look like 512m or 2g, got {memory!r}")
    root = Path(directory).resolve()
    if _state_path(root).is_file() and any(_alive(pid) for pid in load(root).pids):
        raise ClusterError(f"a cluster already runs from {root}: stop it first")
    for wanted, what in ((port, "master port"), (webui_port, "web UI port")):
        if wanted and _port_taken(wanted):
            raise ClusterError(f"the {what} {wanted} is in use on {HOST}: pick another, or 0")
    java_home = ensure_java()
    (root / "logs").mkdir(parents=True, exist_ok=True)
    cluster = Cluster(
        directory=str(root),
        port=port or free_port(),
        webui_port=webui_port or free_port(),
        workers=workers,
        cores=cores,
        memory=memory,
    )
    env = _environment(cluster, java_home)
    ui = str(cluster.webui_port)
    cluster.pids.append(
        _launch(
            cluster,
            "master",
            [MASTER_CLASS, "--host", HOST, "--port", str(cluster.port), "--webui-port", ui],
            env,
        )
    )
    cluster.pids += [_launch_worker(cluster, index, env) for index in range(1, workers + 1)]
    _state_path(root).write_text(json.dumps(asdict(cluster), indent=2) + "\n")
    _wait_for_workers(cluster, timeout, stop_on_failure=True)
    return cluster


def _environment(cluster: Cluster, java_home: str) -> dict[str, str]:
    return {
        **os.environ,
        "JAVA_HOME": java_home,
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": HOST,
        "SPARK_LOG_DIR": str(Path(cluster.directory) / "logs"),
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
    }


def _launch_worker(cluster: Cluster, index: int, env: dict[str, str]) -> int:
    work = Path(cluster.directory) / f"work-{index}"
    work.mkdir(exist_ok=True)
    arguments = [WORKER_CLASS, "--host", HOST, "--cores", str(cluster.cores)]
    arguments += ["--memory", cluster.memory, "--work-dir", str(work), "--webui-port", "0"]
    return _launch(cluster, f"worker-{index}", [*arguments, cluster.url], env)


def _wait_for_workers(cluster: Cluster, timeout: float, *, stop_on_failure: bool) -> None:
    deadline = time.monotonic() + timeout
    while alive_workers(cluster) < cluster.workers:
        ended = [pid for pid in cluster.pids if not _alive(pid)]
        if ended or time.monotonic() > deadline:
            why = "a process ended" if ended else f"not every worker registered in {timeout:g} s"
            tail = _log_tail(cluster.directory)
            if stop_on_failure:
                stop(cluster.directory)
            raise ClusterError(f"the cluster in {cluster.directory} did not start: {why}\n{tail}")
        time.sleep(0.5)


def repair(directory: str | os.PathLike, *, timeout: float = START_TIMEOUT_S) -> list[int]:
    """Start again the workers of the cluster in ``directory`` whose process has ended (a
    lost node, a ``kill -9``), with their former settings and folders; return their indexes
    (1 is the first worker).

    Raises
    ------
    ClusterError
        When the directory holds no cluster, its master is not running, or the workers do
        not register in ``timeout`` seconds.
    """
    cluster = load(directory)
    if not _alive(cluster.pids[0]):
        raise ClusterError(f"the master of the cluster in {directory} is not running: start it")
    env = _environment(cluster, ensure_java())
    restarted = []
    for index, pid in enumerate(cluster.pids[1:], start=1):
        if not _alive(pid):
            cluster.pids[index] = _launch_worker(cluster, index, env)
            restarted.append(index)
    _state_path(directory).write_text(json.dumps(asdict(cluster), indent=2) + "\n")
    _wait_for_workers(cluster, timeout, stop_on_failure=False)
    return restarted


def stop(directory: str | os.PathLike, *, timeout: float = 20.0) -> list[int]:
    """End the processes ``start`` recorded in ``directory`` (each with its process group:
    executors and Python workers); return the ids of those that were still running.

    SIGTERM first (the master and workers end their executors), SIGKILL after ``timeout``.
    """
    cluster = load(directory)
    running = [pid for pid in cluster.pids if _alive(pid)]
    for pid in reversed(running):  # workers first
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in running) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    for pid in running:  # reap the children of this process (a test's)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
    return running


def status_line(cluster: Cluster) -> str:
    """One line: the URL, the web UI, workers alive of those started, processes running."""
    running = sum(_alive(pid) for pid in cluster.pids)
    return (
        f"{cluster.url} (web UI {cluster.webui}): {alive_workers(cluster)} of {cluster.workers}"
        f" workers alive ({cluster.cores} core(s), {cluster.memory} each), {running} of"
        f" {len(cluster.pids)} processes running; logs in {cluster.directory}/logs"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fmagenre.platform.cluster",
        description="A Spark standalone cluster on this machine (127.0.0.1 only): a master"
        " and workers started from pyspark's own classes, each a JVM of its own. Run a job on"
        " it with --master spark://127.0.0.1:PORT (start and status print it).",
        epilog="Exit status: 0 done; 2 something to change, said in one line (a port in use,"
        " no Java, no cluster in DIR); 1 any other failure.",
    )
    parser.add_argument(
        "action",
        choices=("start", "stop", "status", "repair"),
        help="repair starts again the workers whose process has ended",
    )
    parser.add_argument(
        "--dir",
        default="spark-cluster",
        help="the cluster's directory: state, logs, workers' folders (default %(default)s)",
    )
    parser.add_argument("--workers", type=int, default=2, help="workers (default %(default)s)")
    parser.add_argument("--cores", type=int, default=1, help="cores a worker (default 1)")
    parser.add_argument("--memory", default="1g", help="memory a worker (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="master port (default: a free one)")
    parser.add_argument(
        "--webui-port", type=int, default=0, help="master web UI port (default: a free one)"
    )
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            cluster = start(
                args.dir,
                workers=args.workers,
                cores=args.cores,
                memory=args.memory,
                port=args.port,
                webui_port=args.webui_port,
            )
            print(status_line(cluster))
        elif args.action == "stop":
            ended = stop(args.dir)
            print(f"stopped {len(ended)} process(es) of the cluster in {args.dir}")
        elif args.action == "repair":
            restarted = repair(args.dir)
            print(f"restarted worker(s) {restarted or 'none'}: {status_line(load(args.dir))}")
        else:
            print(status_line(load(args.dir)))
    except InputError as error:
        print(f"{parser.prog}: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
