"""Benchmark of the Spark extraction job: ``python -m fmagenre.bench spark``.

On the same generated MP3s, sized so that each core gets ``--seconds-per-core`` of work:
:func:`fmagenre.audio.features.analyse` in a plain loop in this process (warm, one thread), then
:func:`fmagenre.extraction.driver.run_extraction` on ``local[1]`` and ``local[2]``, each in a new
session of a JVM warmed up once (the Python workers start, load numba's kernels and fork a
child per file, as in a real job). Prints wall time, tracks/s, x real time and the time spent
analysing side by side, the scaling from 1 to 2 cores and the job's overhead over the loop.

With ``--cluster``, also on standalone clusters that it starts on this machine
(:mod:`fmagenre.platform.cluster`), one of 1 worker and one of 2, each worker of 1 core: the
executors are JVMs of their own, started with each session, as on a real cluster. With
``--master spark://HOST:PORT``, also on that running cluster, with whatever executors it gives.
Each run also prints where its wall time went, from Spark's status store.

With ``--memory``, also the peak resident memory of a Python worker and of its analysing
child on one long track.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import soundfile as sf
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StructField, StructType

from fmagenre.errors import InputError
from fmagenre.extraction.driver import run_extraction
from fmagenre.extraction.driver import session_conf as extract_session_conf
from fmagenre.extraction.isolation import shutdown
from fmagenre.extraction.worker import RESULT_SCHEMA, analyse_frames, pin_threads
from fmagenre.platform import cluster
from fmagenre.platform.config import ExtractConfig
from fmagenre.platform.session import (
    build_session,
    check_master,
    is_local_master,
    master_addresses,
)
from fmagenre.synthetic.music import STYLES, render
from fmagenre.tables.feature_table import read_features

SESSION_CONF = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"}
#: Memory of each worker of the clusters ``--cluster`` starts, and of their executors' JVMs
#: (which must fit in it; the Python workers are outside both).
WORKER_MEMORY = "1g"
EXECUTOR_MEMORY = "768m"
#: Seconds a cluster session waits for its executors to register.
EXECUTORS_TIMEOUT_S = 90.0
#: With ``--master``, executors joining within this many seconds of the last one count.
SETTLE_S = 3.0
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
#: Description of the Spark job that extracts and writes a chunk (:func:`run_extraction`).
EXTRACTION_JOB = "extract features: chunk"


def write_tracks(
    directory: Path, *, count: int, low: float, high: float, sr: int, first: int = 0
) -> float:
    """Write ``count`` stereo MP3s of ``low`` to ``high`` seconds, numbered from ``first``;
    return their total seconds."""
    directory.mkdir(parents=True, exist_ok=True)
    styles = list(STYLES)
    total = 0.0
    for i, duration in enumerate(np.linspace(low, high, count), start=first):
        y = render(styles[i % len(styles)], duration=float(duration), sr=sr, seed=i)
        stereo = np.stack([y, np.roll(y, sr // 100) * 0.8], axis=1)
        sf.write(directory / f"{i + 2:06d}.mp3", stereo, sr, format="MP3")
        total += float(duration)
    return total


def _session(*, master: str, config: ExtractConfig, executor_memory: str = EXECUTOR_MEMORY):
    """A session of the extraction's settings on ``master``; on a cluster, executors of
    ``executor_memory``, and a driver on 127.0.0.1 when the master is there too."""
    conf = dict(SESSION_CONF)
    if not is_local_master(master):
        conf["spark.executor.memory"] = executor_memory
        if all(host in LOOPBACK for host, _ in master_addresses(master)):
            conf.update(
                {"spark.driver.host": cluster.HOST, "spark.driver.bindAddress": cluster.HOST}
            )
    name = master.replace("spark://", "").replace("[", "").replace("]", "")
    return build_session(
        f"fmagenre-bench-{name}", master=master, conf=extract_session_conf(conf, config)
    )


def _vm_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (VmHWM: peak resident, unlike ru_maxrss not
    inherited from the process the worker was forked from)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1])


def _with_memory(frames: Iterable[pd.DataFrame], config: ExtractConfig) -> Iterator[pd.DataFrame]:
    """:func:`analyse_frames` in a worker, adding its resident memory before, its peak, and
    the peak of the children that analysed the files."""
    before = _vm_kib("VmRSS")
    for frame in analyse_frames(frames, config):
        shutdown()  # the child's figures count once it has ended
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        yield frame.assign(rss_before_kib=before, peak_kib=_vm_kib("VmHWM"), child_kib=child)


def worker_peak_rss(track: Path, config: ExtractConfig) -> tuple[float, float, float]:
    """Resident MiB of a fresh Python worker before one track's extraction, its peak, and the
    peak of the child that analysed the track."""
    spark = _session(master="local[1]", config=config)
    try:
        names = ("rss_before_kib", "peak_kib", "child_kib")
        schema = StructType([*RESULT_SCHEMA.fields, *(StructField(n, LongType()) for n in names)])
        row = (
            spark.read.format("binaryFile")
            .load(str(track))
            .selectExpr(
                "path",
                "length AS file_size",
                "unix_micros(modificationTime) AS modified_us",
                "content",
            )
            .mapInPandas(partial(_with_memory, config=config), schema)
            .select("status", *names)
            .first()
        )
    finally:
        spark.stop()
    if row.status != "ok":
        raise RuntimeError(f"the memory track did not extract: {row.status}")
    return row.rss_before_kib / 1024, row.peak_kib / 1024, row.child_kib / 1024


def _corpus(directory: Path, args: argparse.Namespace, config: ExtractConfig) -> float:
    """Write tracks until the loop's work reaches ``seconds_per_core`` x 2; return the audio's
    seconds. The time per track is measured on the first ones, warm."""
    from fmagenre.audio.features import analyse

    probe = 3
    length = {"low": args.duration, "high": args.duration, "sr": args.sr}
    audio_s = write_tracks(directory, count=probe, **length)
    files = sorted(directory.glob("*.mp3"))
    analyse(files[0])  # compile (or load) numba's kernels, as a Spark worker does first
    start = time.perf_counter()
    for path in files:
        analyse(path.read_bytes(), max_duration=config.max_duration)
    per_track = (time.perf_counter() - start) / probe
    count = max(probe, math.ceil(2 * args.seconds_per_core / per_track))
    print(f"  {per_track:.2f} s per track: writing {count} tracks of {args.duration:.0f} s")
    more = directory / "more"
    audio_s += write_tracks(more, count=count - probe, first=probe, **length)
    for path in more.glob("*.mp3"):
        path.rename(directory / path.name)
    more.rmdir()
    return audio_s


class Target(NamedTuple):
    """Where the job runs: its row's name, the master URL for a ``with`` block (a cluster it
    starts lives as long as the block), and the executors to wait for (None: those that an
    existing cluster gives; local masters have none)."""

    name: str
    master: Callable[[], AbstractContextManager[str]]
    executors: int | None = None


class Run(NamedTuple):
    """One run of the job: :func:`run_extraction`'s wall time, the analysis' time summed over
    files, the cores and executors it had, the seconds its executors took to register (before
    the wall time), and its extraction jobs' wall time, tasks and time in tasks."""

    name: str
    wall: float
    busy: float
    cores: int
    executors: int
    up: float
    job: float
    tasks: int
    in_tasks: float


@contextlib.contextmanager
def own_cluster(directory: Path, *, workers: int) -> Iterator[str]:
    """A standalone cluster of ``workers`` workers of 1 core, started in ``directory`` for the
    ``with`` block and stopped at its end, whatever ends it; its URL."""
    try:
        yield cluster.start(directory, workers=workers, cores=1, memory=WORKER_MEMORY).url
    finally:
        if (directory / cluster.STATE).is_file():
            cluster.stop(directory)


def _executor_cores(spark) -> list[int]:
    """The cores of each executor registered with the driver (the driver itself aside)."""
    executors = spark.sparkContext._jsc.sc().statusStore().executorList(True)
    summaries = (executors.apply(i) for i in range(executors.size()))
    return [e.totalCores() for e in summaries if e.id() != "driver"]


def _wait_for_executors(spark, *, master: str, expected: int | None) -> tuple[float, list[int]]:
    """Seconds until ``expected`` executors had registered, or with None the first and any
    joining within :data:`SETTLE_S` of the last; their cores.

    Raises
    ------
    RuntimeError
        When too few have registered after :data:`EXECUTORS_TIMEOUT_S`.
    """
    started = time.perf_counter()
    cores, changed = [], started
    while True:
        now = time.perf_counter()
        found = _executor_cores(spark)
        if len(found) != len(cores):
            cores, changed = found, now
        settled = now - changed >= SETTLE_S if expected is None else len(cores) >= expected
        if cores and settled:
            return changed - started, cores
        if now - started > EXECUTORS_TIMEOUT_S:
            raise RuntimeError(
                f"{master}: {len(cores)} executor(s) of {expected or 'at least 1'} after"
                f" {EXECUTORS_TIMEOUT_S:g} s: do its workers have a free core and"
                f" {EXECUTOR_MEMORY} of memory each?"
            )
        time.sleep(0.2)


def _extraction_jobs(spark) -> tuple[float, int, float]:
    """Wall seconds of the Spark jobs that extracted the chunks, their tasks, and the seconds
    spent in those tasks (executor run time, summed), from the session's status store."""
    context = spark.sparkContext._jsc.sc()
    context.listenerBus().waitUntilEmpty()
    store = context.statusStore()
    jobs = store.jobsList(None)
    wall, tasks, in_tasks = 0.0, 0, 0.0
    for job in (jobs.apply(i) for i in range(jobs.size())):
        description = job.description()
        if not (description.isDefined() and description.get().startswith(EXTRACTION_JOB)):
            continue
        wall += (job.completionTime().get().getTime() - job.submissionTime().get().getTime()) / 1e3
        stages = job.stageIds()
        for stage in (store.lastStageAttempt(stages.apply(j)) for j in range(stages.size())):
            tasks += stage.numCompleteTasks()
            in_tasks += stage.executorRunTime() / 1e3
    return wall, tasks, in_tasks


def _run(
    target: Target, master: str, *, corpus: Path, output: str, config: ExtractConfig, files: int
) -> Run:
    """The extraction of ``corpus`` into ``output`` in a new session on ``master``, once its
    executors have registered."""
    spark = _session(master=master, config=config)
    try:
        spark.sparkContext.setLogLevel("WARN")
        if is_local_master(master):
            up, cores = 0.0, [spark.sparkContext.defaultParallelism]
        else:
            up, cores = _wait_for_executors(spark, master=master, expected=target.executors)
        summary = run_extraction(spark, inputs=[str(corpus)], output=output, config=config)
        if summary["ok"] != files:
            raise RuntimeError(f"{target.name}: {summary['ok']} of {files} ok")
        busy = read_features(spark, output).agg(F.sum("extract_s")).first()[0]
        job, tasks, in_tasks = _extraction_jobs(spark)
    finally:
        spark.stop()
    executors = 0 if is_local_master(master) else len(cores)
    return Run(
        target.name, summary["wall_s"], busy, sum(cores), executors, up, job, tasks, in_tasks
    )


def _targets(args: argparse.Namespace, clusters: Path) -> list[Target]:
    targets = [
        Target(f"spark local[{n}]", partial(contextlib.nullcontext, f"local[{n}]")) for n in (1, 2)
    ]
    if args.cluster:
        for workers in (1, 2):
            name = f"cluster {workers} worker{'s' * (workers > 1)} x 1 core"
            start = partial(own_cluster, clusters / f"workers-{workers}", workers=workers)
            targets.append(Target(name, start, workers))
    if args.master:
        targets.append(
            Target(f"cluster {args.master}", partial(contextlib.nullcontext, args.master))
        )
    return targets


def _report(runs: list[Run], *, loop: float, files: int, audio_s: float, args) -> None:
    print(f"\nspark: {files} tracks, {audio_s:.0f} s of {args.sr} Hz stereo audio")
    print(
        f"  {'':32s} {'cores':>5s} {'wall s':>7s} {'tracks/s':>9s} {'x real time':>12s}"
        f" {'analyse s':>10s}"
    )
    rows = [("analyse loop, warm, 1 thread", 1, loop, loop)]
    rows += [(run.name, run.cores, run.wall, run.busy) for run in runs]
    for name, cores, wall, busy in rows:
        print(
            f"  {name:32s} {cores:5d} {wall:7.1f} {files / wall:9.2f} {audio_s / wall:12.1f}"
            f" {busy:10.1f}"
        )
    walls = {run.name: run.wall for run in runs}
    pairs = [("local[2] vs local[1]", "spark local[2]", "spark local[1]")]
    if args.cluster:
        pairs.append(
            ("cluster 2 workers vs 1", "cluster 2 workers x 1 core", "cluster 1 worker x 1 core")
        )
    for what, two, one in pairs:
        print(f"  scaling {what}: {walls[one] / walls[two]:.2f}x (ideal 2, goal >= 1.8)")
    for run in runs:
        extra = run.wall * run.cores - loop
        print(
            f"  overhead of {run.name} over the loop: {100 * extra / loop:+.1f}%"
            f" ({extra:+.1f} s x core; goal <= 10%)"
        )
    if args.master:
        run = runs[-1]
        print(
            f"  {args.master}: {run.executors} executor(s), {run.cores} core(s); the scaling from"
            " 1 to 2 workers needs --cluster"
        )
    print(
        "  (analyse s: time spent analysing, summed over files, in the loop or the workers'"
        " forked children, fork included; overhead: wall s x cores against the loop's time)"
    )
    print("where the wall time went:")
    for run in runs:
        idle = run.cores * run.job - run.in_tasks
        up = f"; executors up in {run.up:.1f} s, before it" if run.executors else ""
        print(
            f"  {run.name}: extraction job {run.job:.1f} s ({run.tasks} tasks, {run.in_tasks:.1f}"
            f" s in them, {run.busy:.1f} s analysing; cores idle {idle:.1f} s x core),"
            f" the rest {run.wall - run.job:.1f} s{up}"
        )
    load = os.getloadavg()[1]
    print(f"  load average over the last 5 min: {load:.1f} on {os.cpu_count()} CPUs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmagenre.bench spark", description=__doc__)
    parser.add_argument(
        "--seconds-per-core",
        type=float,
        default=60.0,
        help="analysis work per core of local[2], sizing the corpus (default %(default)s)",
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per track")
    parser.add_argument("--sr", type=int, default=44100, help="sample rate")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="also on standalone clusters of 1 and of 2 workers of 1 core, started here and"
        " stopped after",
    )
    parser.add_argument(
        "--master",
        metavar="spark://HOST:PORT",
        help="also on this running standalone cluster, with the executors it gives; its"
        " workers must see this machine's disk, where the corpus is",
    )
    parser.add_argument(
        "--cluster-dir",
        type=Path,
        help="where --cluster's clusters keep their state and logs, left after the run"
        " (default: a temporary folder)",
    )
    parser.add_argument(
        "--memory",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also measure a Python worker's peak memory on a track this long (e.g. 600)",
    )
    args = parser.parse_args(argv)
    if args.master:
        try:
            if not master_addresses(args.master):
                parser.error(f"--master {args.master}: expected spark://HOST:PORT")
            check_master(args.master)
        except InputError as error:
            parser.error(str(error))
    config = ExtractConfig()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        pin_threads(1)
        from fmagenre.audio.features import analyse

        print("sizing the corpus")
        audio_s = _corpus(corpus, args, config)
        files = sorted(corpus.glob("*.mp3"))
        start = time.perf_counter()
        for path in files:
            analyse(path.read_bytes(), max_duration=config.max_duration)
        loop = time.perf_counter() - start
        # The driver's JVM outlives sessions: warm it up once, so that every run starts equal.
        spark = _session(master="local[2]", config=config)
        try:
            run_extraction(spark, inputs=[str(files[0])], output=f"{tmp}/warm", config=config)
        finally:
            spark.stop()
        runs = []
        for index, target in enumerate(_targets(args, args.cluster_dir or Path(tmp) / "clusters")):
            with target.master() as master:
                output = f"{tmp}/out{index}"
                runs.append(
                    _run(
                        target,
                        master,
                        corpus=corpus,
                        output=output,
                        config=config,
                        files=len(files),
                    )
                )
        _report(runs, loop=loop, files=len(files), audio_s=audio_s, args=args)

        if args.memory > 0:
            memory_dir = Path(tmp) / "memory"
            print(f"\nwriting a {args.memory:.0f} s track for the memory measurement")
            write_tracks(memory_dir, count=1, low=args.memory, high=args.memory, sr=args.sr)
            before, peak, child = worker_peak_rss(memory_dir / "000002.mp3", config)
            print(
                f"Python worker extracting {args.memory:.0f} s at {args.sr} Hz stereo:"
                f" {before:.0f} MiB resident before, {peak:.0f} MiB peak;"
                f" the analysing child {child:.0f} MiB peak (pages shared with the worker"
                " included)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
