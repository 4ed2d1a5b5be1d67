"""A time limit on a Spark barrier stage's wait for task slots, when a cluster loses executors.

XGBoost's workers (``jobs/train.py --xgb-workers``) and the network's processes outside local
mode (``jobs/train_cnn.py --num-processes``) run as barrier stages: all their tasks start at
once, on as many free task slots. Spark checks the slots when a barrier job is submitted,
retrying ``spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures`` times (40) every
``...interval`` (15 s), then fails the job. A barrier stage whose job was submitted before an
executor was lost (behind a shuffle that the executors left must redo, say) has no such limit:
it waits for the slots for good, and a job on a cluster that does not replace its executors
(a standalone worker gone, a node that autoscaling took away) never ends.

:func:`slots_guard` gives that wait the same limit: while its block runs, a driver thread reads
the cluster's task slots (Spark's own count for barrier stages) every few seconds; after
``maxFailures x interval`` with fewer than the stage needs, it cancels the application's
jobs, and the block raises :class:`BarrierSlotsError`, which the jobs' runner reports in one
line with exit status 3 (:func:`fmagenre.platform.jobs.cluster_failure`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from pyspark.sql import SparkSession

#: Seconds between two looks at the cluster's task slots.
POLL_S = 2.0


class BarrierSlotsError(RuntimeError):
    """The cluster had fewer task slots than a barrier stage needs, for longer than allowed."""


def task_slots(spark: SparkSession) -> int:
    """Tasks of the default resource profile that the registered executors can run at once
    (what Spark compares with a barrier stage's tasks)."""
    context = spark.sparkContext._jsc.sc()
    profile = context.resourceProfileManager().defaultResourceProfile()
    return int(context.maxNumConcurrentTasks(profile))


def slots_wait_s(spark: SparkSession) -> float:
    """Spark's limit on a barrier job's wait for slots at submission, in seconds:
    ``spark.scheduler.barrier.maxConcurrentTasksCheck.interval x .maxFailures``."""
    conf = spark.sparkContext._jsc.sc().conf()
    key = "spark.scheduler.barrier.maxConcurrentTasksCheck"
    return conf.getTimeAsSeconds(f"{key}.interval", "15s") * conf.getInt(f"{key}.maxFailures", 40)


@contextlib.contextmanager
def slots_guard(
    spark: SparkSession, *, needed: int, what: str, wait_s: float | None = None
) -> Iterator[None]:
    """Cancel the application's jobs when the cluster has had fewer than ``needed`` task
    slots for :func:`slots_wait_s` while the block runs, and raise :class:`BarrierSlotsError`.

    Parameters
    ----------
    spark : SparkSession
    needed : int
        Tasks of the block's barrier stages; 1 or fewer: no guard.
    what : str
        The option that sets ``needed``, for the message (``--xgb-workers 4``).
    wait_s : float or None
        The limit in seconds; None: :func:`slots_wait_s`.
    """
    if needed <= 1:
        yield
        return
    limit = slots_wait_s(spark) if wait_s is None else wait_s
    stopped = threading.Event()
    short: dict[str, int] = {}

    def watch() -> None:
        since = None
        while not stopped.wait(POLL_S):
            slots = task_slots(spark)
            if slots >= needed:
                since = None
                continue
            since = since if since is not None else time.monotonic()
            if time.monotonic() - since >= limit:
                short["slots"] = slots
                spark.sparkContext.cancelAllJobs()
                return

    watcher = threading.Thread(target=watch, name="fmagenre-barrier-slots", daemon=True)
    watcher.start()
    failure = None
    try:
        yield
    except Exception as error:
        failure = error
    finally:
        stopped.set()
        watcher.join()
    if short:
        raise BarrierSlotsError(
            f"[fmagenre] a barrier stage needs {needed} task slots at once ({what}) and the"
            f" cluster has had {short['slots']} for {limit:g} s"
        ) from failure
    if failure is not None:
        raise failure
