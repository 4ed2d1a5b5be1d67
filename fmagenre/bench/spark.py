"""Benchmark of the Spark extraction job: ``python -m fmagenre.bench spark``.

On the same generated MP3s, sized so that each core gets ``--seconds-per-core`` of work:
:func:`fmagenre.audio.features.analyse` in a plain loop in this process (warm, one thread), then
:func:`fmagenre.extraction.driver.run_extraction` on ``local[1]`` and ``local[2]``, each in a new
session of a JVM warmed up once (the Python workers start, load numba's kernels and fork a
child per file, as in a real job). Prints wall time, tracks/s, x real time and the time spent
analysing side by side, the scaling from 1 to 2 cores and the job's overhead over the loop.
With ``--memory``, also the peak resident memory of a Python worker and of its analysing
child on one long track.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StructField, StructType

from fmagenre.extraction.driver import run_extraction
from fmagenre.extraction.driver import session_conf as extract_session_conf
from fmagenre.extraction.isolation import shutdown
from fmagenre.extraction.worker import RESULT_SCHEMA, analyse_frames, pin_threads
from fmagenre.platform.config import ExtractConfig
from fmagenre.platform.session import build_session
from fmagenre.synthetic.music import STYLES, render
from fmagenre.tables.feature_table import read_features

SESSION_CONF = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"}


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


def _session(cores: int, config: ExtractConfig):
    return build_session(
        f"fmagenre-bench-local{cores}",
        master=f"local[{cores}]",
        conf=extract_session_conf(SESSION_CONF, config),
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
    spark = _session(1, config)
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
        "--memory",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also measure a Python worker's peak memory on a track this long (e.g. 600)",
    )
    args = parser.parse_args(argv)
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
        rows = [("analyse loop, warm, 1 thread", loop, loop)]
        # The JVM outlives sessions: warm it up once, so that both core counts start equal.
        spark = _session(2, config)
        try:
            run_extraction(spark, inputs=[str(files[0])], output=f"{tmp}/warm", config=config)
        finally:
            spark.stop()
        walls = {}
        for cores in (1, 2):
            spark = _session(cores, config)
            spark.sparkContext.setLogLevel("WARN")
            try:
                output = f"{tmp}/out{cores}"
                summary = run_extraction(spark, inputs=[str(corpus)], output=output, config=config)
                if summary["ok"] != len(files):
                    raise RuntimeError(f"local[{cores}]: {summary['ok']} of {len(files)} ok")
                in_workers = read_features(spark, output).agg(F.sum("extract_s")).first()[0]
                rows.append((f"spark local[{cores}]", summary["wall_s"], in_workers))
                walls[cores] = summary["wall_s"]
            finally:
                spark.stop()

        print(f"\nspark: {len(files)} tracks, {audio_s:.0f} s of {args.sr} Hz stereo audio")
        print(f"  {'':32s} {'wall s':>7s} {'tracks/s':>9s} {'x real time':>12s} {'analyse s':>10s}")
        for name, wall, busy in rows:
            print(
                f"  {name:32s} {wall:7.1f} {len(files) / wall:9.2f} {audio_s / wall:12.1f}"
                f" {busy:10.1f}"
            )
        one, two = walls[1], walls[2]
        print(f"  scaling local[2] vs local[1]: {one / two:.2f}x (ideal 2, goal >= 1.8)")
        print(
            f"  overhead of local[1] over the loop: {100 * (one / loop - 1):+.1f}%"
            f" (+{one - loop:.1f} s; goal <= 10%)"
        )
        print(
            "  (analyse s: time spent analysing, summed over files, in the loop or the workers'"
            " forked children, fork included)"
        )
        load = os.getloadavg()[1]
        print(f"  load average over the last 5 min: {load:.1f} on {os.cpu_count()} CPUs")

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
