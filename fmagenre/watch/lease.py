"""One watch per output: ``OUTPUT/_lease.json``, held by the watch writing there.

Two watches on one output would classify the same uploads twice (an EMR step retried while
the first still runs, a second terminal). The watch that creates the lease file holds it and
rewrites it every ``heartbeat_s`` seconds from a driver thread (a long micro-batch included);
another watch that finds it refuses to start, in one line, unless the holder is gone: its last
heartbeat is ``stale_after_s`` old, or it was a process of this host that has ended (the
restart after a ``kill -9`` takes over at once). The holder checks the lease before each
commit, so a watch that lost it (it stalled past ``stale_after_s`` and another took over)
stops before writing a row.

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

from pyspark.sql import SparkSession

from fmagenre.platform.hadoop import create_new, hadoop_fs, read_bytes, write_json
from fmagenre.watch.ledger import WatchSetupError, join

LEASE = "_lease.json"
HEARTBEAT_S = 10.0
STALE_AFTER_S = 60.0

log = logging.getLogger(__name__)


class LeaseError(WatchSetupError):
    """The output is another watch's, or this watch lost it to another."""


def _process_ended(pid: int) -> bool:
    """Whether process ``pid`` of this host has ended (a zombie has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


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
        self.started_at = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> dict:
        return {
            "token": self.token,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at_s": self.started_at,
            "heartbeat_s": time.time(),
        }

    def _read(self) -> dict | None:
        """The lease as stored; one being written reads as beating since its file's time."""
        try:
            data = read_bytes(self.spark, self.path)
        except FileNotFoundError:
            return None
        try:
            return json.loads(data)
        except ValueError:
            fs, path = hadoop_fs(self.spark, self.path)
            return {"heartbeat_s": fs.getFileStatus(path).getModificationTime() / 1000}

    def _held(self, found: dict, now: float) -> bool:
        if now - found["heartbeat_s"] >= self.stale_after_s:
            return False
        same_host = found.get("host") == socket.gethostname()
        return not (same_host and "pid" in found and _process_ended(found["pid"]))

    def acquire(self) -> None:
        """Create the lease and start the heartbeat, or take over that of an ended watch.

        Raises
        ------
        LeaseError
            When another watch holds it.
        """
        for _ in range(3):
            if create_new(self.spark, self.path, json.dumps(self._record())):
                self._thread = threading.Thread(
                    target=self._beat, name="fmagenre-watch-lease", daemon=True
                )
                self._thread.start()
                return
            found = self._read()
            if found is None:
                continue  # released meanwhile
            now = time.time()
            age = now - found["heartbeat_s"]
            if self._held(found, now):
                raise LeaseError(
                    f"{self.output} is written by another watch (process {found.get('pid')} on"
                    f" {found.get('host')}, heartbeat {age:.0f} s ago): stop it first (one"
                    f" watch per --output); a watch that died elsewhere frees it"
                    f" {self.stale_after_s - age:.0f} s from now"
                )
            log.warning(
                "taking over %s from a watch that has ended (process %s on %s, heartbeat"
                " %.0f s ago)",
                self.path,
                found.get("pid"),
                found.get("host"),
                age,
            )
            fs, path = hadoop_fs(self.spark, self.path)
            fs.delete(path, False)
        raise LeaseError(f"{self.path}: other watches keep taking it; start one watch only")

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                found = self._read()
                if found is None or found.get("token") != self.token:
                    return  # lost: check() says so before the next commit
                write_json(self.spark, self.path, self._record())
            except Exception as error:  # storage hiccup: the next beat tries again
                log.warning("lease heartbeat of %s failed: %s", self.path, error)

    def check(self) -> None:
        """Raise :class:`LeaseError` unless this watch still holds the lease."""
        found = self._read()
        if found is None or found.get("token") != self.token:
            holder = "nobody" if found is None else f"process {found.get('pid')} on"
            holder += "" if found is None else f" {found.get('host')}"
            raise LeaseError(
                f"this watch lost its lease of {self.output} (now held by {holder}) after"
                f" stalling over {self.stale_after_s:.0f} s: it stops; start it again when"
                " the other watch has stopped"
            )

    def release(self) -> None:
        """Stop the heartbeat and remove the lease, if still this watch's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        found = self._read()
        if found is not None and found.get("token") == self.token:
            fs, path = hadoop_fs(self.spark, self.path)
            fs.delete(path, False)
