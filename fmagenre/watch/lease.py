"""One watch per output: ``OUTPUT/_lease.json``, held by the watch writing there.

Two watches on one output would classify the same uploads twice (a second terminal, an EMR
step submitted twice). The watch that creates the lease file holds it and rewrites it every
``heartbeat_s`` seconds from a driver thread (long micro-batches included). Another watch that
finds it:

- held by a process of this host (same pid namespace) that still runs: refuses at once, in
  one line;
- held by one of this host that has ended (the restart after a ``kill -9``): takes it over;
- held from elsewhere (a retried driver on another node, a second cluster): watches it until
  its heartbeat moves (alive: refuses) or is ``stale_after_s`` old (gone: takes it over).

The holder checks the lease just before each commit's rename, and that its own last heartbeat
is younger than ``stale_after_s``: a watch that stalled and lost it commits no prediction.

The lease is created in one step on local disks (``O_EXCL``) and HDFS (an exclusive create);
on object stores (S3) a check then a write: two watches started within the same second can
both start there.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time

from pyspark import InheritableThread
from pyspark.sql import SparkSession

from fmagenre.platform.hadoop import create_new, hadoop_fs, path_exists, read_bytes, write_json
from fmagenre.watch.ledger import WatchSetupError, join

LEASE = "_lease.json"
HEARTBEAT_S = 10.0
STALE_AFTER_S = 60.0

log = logging.getLogger(__name__)


class LeaseError(WatchSetupError):
    """The output is another watch's, or this watch lost it to another."""


def _proc(pid: int | str) -> tuple[str, str] | None:
    """(state, start time in clock ticks) of a process from ``/proc``; None without."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return fields[0], fields[19]
    except (OSError, IndexError):
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _ended_here(found: dict) -> bool:
    """Whether the lease's process was one of this host and pid namespace that has ended
    (a zombie has; a new process under its pid is another one)."""
    if not _here(found):
        return False
    try:
        os.kill(found["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    now = _proc(found["pid"])
    return now is not None and (now[0] in ("Z", "X") or now[1] != found.get("process_start"))


def _here(found: dict) -> bool:
    """Whether the lease's process is one of this host and pid namespace."""
    return (found.get("host"), found.get("pid_namespace")) == (
        socket.gethostname(),
        _pid_namespace(),
    ) and isinstance(found.get("pid"), int)


def _holder(found: dict) -> str:
    if "pid" not in found:
        return "an unreadable lease"
    return f"process {found['pid']} on {found.get('host')}"


class Lease:
    """The lease of ``output`` for this process (:meth:`acquire`, :meth:`check`,
    :meth:`release`).

    Parameters
    ----------
    spark : SparkSession
    output : str
        The watch's output folder.
    heartbeat_s, stale_after_s : float
        How often the holder rewrites the lease; how old its last heartbeat is when another
        watch may take it over.
    """

    def __init__(
        self,
        spark: SparkSession,
        output: str,
        *,
        heartbeat_s: float = HEARTBEAT_S,
        stale_after_s: float = STALE_AFTER_S,
    ):
        if not 0 < heartbeat_s < stale_after_s:
            raise ValueError(
                f"heartbeat_s must be above 0 and under stale_after_s, got {heartbeat_s} and"
                f" {stale_after_s}"
            )
        self.spark = spark
        self.output = output
        self.path = join(output, LEASE)
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.token = secrets.token_hex(8)
        #: Who holds it, as recorded: this host and process.
        self.host = socket.gethostname()
        self._process = {
            "pid": os.getpid(),
            "pid_namespace": _pid_namespace(),
            "process_start": (_proc("self") or (None, None))[1],
            "started_at_s": time.time(),
        }
        self._beaten = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> dict:
        return {
            "token": self.token,
            "host": self.host,
            **self._process,
            "heartbeat_s": time.time(),
        }

    def _read(self) -> dict | None:
        """The lease as stored (None: no lease); one being written, or unreadable, reads as
        beating since its file's time."""
        try:
            found = json.loads(read_bytes(self.spark, self.path))
        except FileNotFoundError:
            return None
        except ValueError:
            found = {}
        except Exception:  # removed between the check and the read
            if not path_exists(self.spark, self.path):
                return None
            raise
        if not isinstance(found, dict) or not isinstance(found.get("heartbeat_s"), int | float):
            fs, path = hadoop_fs(self.spark, self.path)
            try:
                found = {"heartbeat_s": fs.getFileStatus(path).getModificationTime() / 1000}
            except Exception:
                return None
        return found

    def _beating(self, found: dict) -> bool | None:
        """Watch a lease of another host until its heartbeat moves (True) or is stale
        (False); None when it was released or taken meanwhile."""
        beat = found["heartbeat_s"]
        wait_s = self.stale_after_s - (time.time() - beat)
        if wait_s <= 0:
            return False
        log.warning(
            "%s is held by %s, heartbeat %.0f s ago: waiting up to %.0f s to see whether it"
            " still beats",
            self.path,
            _holder(found),
            time.time() - beat,
            wait_s,
        )
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            now = self._read()
            if now is None or now.get("token") != found.get("token"):
                return None
            if now["heartbeat_s"] != beat:
                return True
        return False

    def acquire(self) -> None:
        """Create the lease and start the heartbeat, or take over that of a gone watch.

        Raises
        ------
        LeaseError
            When another watch holds it.
        """
        for _ in range(3):
            if create_new(self.spark, self.path, json.dumps(self._record())):
                self._beaten = time.time()
                self._thread = InheritableThread(
                    target=self._beat, name="fmagenre-watch-lease", daemon=True
                )
                self._thread.start()
                return
            found = self._read()
            if found is None:
                continue  # released meanwhile
            if _ended_here(found):
                why = "has ended"
            else:
                beating = True if _here(found) else self._beating(found)
                if beating is None:
                    continue
                if beating:
                    age = time.time() - found["heartbeat_s"]
                    raise LeaseError(
                        f"{self.output} is written by another watch ({_holder(found)},"
                        f" heartbeat {age:.0f} s ago): stop it first (one watch per --output)"
                    )
                why = f"sent no heartbeat for {self.stale_after_s:.0f} s"
            log.warning("taking over %s from %s, which %s", self.path, _holder(found), why)
            # Deleting races another watch doing the same: the exclusive create picks one, and
            # each checks its lease before it commits.
            fs, path = hadoop_fs(self.spark, self.path)
            fs.delete(path, False)
        raise LeaseError(f"{self.path}: other watches keep taking it; start one watch only")

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                found = self._read()
                if found is None or found.get("token") != self.token or self._stop.is_set():
                    return  # lost: check() says so before the next commit
                write_json(self.spark, self.path, self._record())
                self._beaten = time.time()
            except Exception as error:  # storage hiccup: the next beat tries again
                log.warning("lease heartbeat of %s failed: %s", self.path, error)

    def check(self) -> None:
        """Raise :class:`LeaseError` unless this watch still holds the lease, renewed within
        ``stale_after_s``."""
        silent = time.time() - self._beaten
        if silent >= self.stale_after_s:
            raise LeaseError(
                f"this watch could not renew its lease of {self.output} for {silent:.0f} s"
                " (another watch may take it over): it stops; start it again"
            )
        found = self._read()
        if found is None or found.get("token") != self.token:
            holder = "nobody holds it now" if found is None else f"{_holder(found)} holds it"
            raise LeaseError(
                f"this watch lost its lease of {self.output} ({holder}): it stops; start one"
                " watch per --output again"
            )

    def release(self) -> None:
        """Stop the heartbeat and remove the lease if still this watch's; best effort (a
        failure is logged: the lease then goes stale)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.heartbeat_s)
            self._thread = None
        try:
            found = self._read()
            if found is not None and found.get("token") == self.token:
                fs, path = hadoop_fs(self.spark, self.path)
                fs.delete(path, False)
        except Exception as error:
            log.warning("could not remove the lease %s: %s", self.path, error)
