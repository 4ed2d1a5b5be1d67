"""Benchmark of the Spark extraction job: ``python -m fmagenre.bench spark``.

On the same generated MP3s: :func:`fmagenre.features.analyse` in a plain loop in this process
(warm, one thread), then :func:`fmagenre.extract.run_extraction` on ``local[1]`` and
``local[2]``, twice each in a new session (once the JVM is warm): the first run pays the
Python workers' start-up and numba compilation, as a real job does, the second reuses the
workers. Prints wall time, tracks/s, x real time and the time spent in ``analyse`` side by
side, the scaling from 1 to 2 cores and the job's overhead over the loop. With ``--memory``,
also the peak resident memory of a Python worker extracting one long track.
"""

from __future__ import annotations

import argparse
import os
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

from fmagenre.config import ExtractConfig
from fmagenre.extract import RESULT_SCHEMA, analyse_frames, pin_threads, run_extraction
from fmagenre.extract import session_conf as extract_session_conf
from fmagenre.feature_table import read_features
from fmagenre.spark import build_session
from fmagenre.synth import STYLES, render

#: Each core count runs twice in its session: the first run starts the Python workers, which
#: import librosa and compile its numba kernels; the second reuses them.
RUNS = ("first run", "second run")
SESSION_CONF = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"}


def write_tracks(directory: Path, *, count: int, low: float, high: float, sr: int) -> float:
    """Write ``count`` stereo MP3s of ``low`` to ``high`` seconds; return their total seconds."""
    directory.mkdir(parents=True, exist_ok=True)
    styles = list(STYLES)
    total = 0.0
    for i, duration in enumerate(np.linspace(low, high, count)):
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


def _with_memory(frames: Iterable[pd.DataFrame], **settings) -> Iterator[pd.DataFrame]:
    """:func:`analyse_frames` in a worker, adding its resident memory before and at peak."""
    before = _vm_kib("VmRSS")
    for frame in analyse_frames(frames, **settings):
        yield frame.assign(rss_before_kib=before, peak_kib=_vm_kib("VmHWM"))


def worker_peak_rss(track: Path, config: ExtractConfig) -> tuple[float, float]:
    """(resident MiB of a fresh Python worker before, peak MiB during) one track's extraction."""
    spark = _session(1, config)
    try:
        worker = partial(
            _with_memory,
            max_duration=config.max_duration,
            fma_compat=config.fma_compat,
            threads=config.threads,
            max_file_mb=config.max_file_mb,
        )
        schema = StructType(
            [
                *RESULT_SCHEMA.fields,
                *(StructField(n, LongType()) for n in ("rss_before_kib", "peak_kib")),
            ]
        )
        row = (
            spark.read.format("binaryFile")
            .load(str(track))
            .selectExpr("path", "length AS file_size", "content")
            .mapInPandas(worker, schema)
            .select("status", "rss_before_kib", "peak_kib")
            .first()
        )
    finally:
        spark.stop()
    if row.status != "ok":
        raise RuntimeError(f"the memory track did not extract: {row.status}")
    return row.rss_before_kib / 1024, row.peak_kib / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmagenre.bench spark", description=__doc__)
    parser.add_argument("--files", type=int, default=8, help="tracks (default %(default)s)")
    parser.add_argument("--min-duration", type=float, default=30.0, help="seconds")
    parser.add_argument("--max-duration", type=float, default=60.0, help="seconds")
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
        print(f"writing {args.files} tracks of {args.min_duration:.0f}-{args.max_duration:.0f} s")
        audio_s = write_tracks(
            corpus, count=args.files, low=args.min_duration, high=args.max_duration, sr=args.sr
        )
        files = sorted(corpus.glob("*.mp3"))

        pin_threads(1)
        from fmagenre.features import analyse

        analyse(files[0])  # compile numba kernels, as a Spark worker does on its first file
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
                for run in RUNS:
                    summary = run_extraction(
                        spark,
                        inputs=[str(corpus)],
                        output=f"{tmp}/out{cores}",
                        config=config,
                        overwrite=True,
                    )
                    if summary["ok"] != len(files):
                        raise RuntimeError(f"local[{cores}]: {summary['ok']} of {len(files)} ok")
                    table = read_features(spark, f"{tmp}/out{cores}")
                    in_workers = table.agg(F.sum("extract_s")).first()[0]
                    rows.append((f"spark local[{cores}], {run}", summary["wall_s"], in_workers))
                    walls[cores, run] = summary["wall_s"]
            finally:
                spark.stop()

        print(f"\nspark: {len(files)} tracks, {audio_s:.0f} s of {args.sr} Hz stereo audio")
        print(f"  {'':32s} {'wall s':>7s} {'tracks/s':>9s} {'x real time':>12s} {'analyse s':>10s}")
        for name, wall, busy in rows:
            print(
                f"  {name:32s} {wall:7.1f} {len(files) / wall:9.2f} {audio_s / wall:12.1f}"
                f" {busy:10.1f}"
            )
        for run in RUNS:
            one, two = walls[1, run], walls[2, run]
            print(
                f"  {run}: scaling local[2] vs local[1] {one / two:.2f}x (ideal 2);"
                f" local[1] overhead over the loop +{one - loop:.1f} s ({one / loop:.1f}x)"
            )
        print("  (analyse s: time spent in analyse, summed over files, in the loop or the workers)")
        load = os.getloadavg()[1]
        print(f"  load average over the last 5 min: {load:.1f} on {os.cpu_count()} CPUs")

        if args.memory > 0:
            memory_dir = Path(tmp) / "memory"
            print(f"\nwriting a {args.memory:.0f} s track for the memory measurement")
            write_tracks(memory_dir, count=1, low=args.memory, high=args.memory, sr=args.sr)
            before, peak = worker_peak_rss(memory_dir / "000002.mp3", config)
            print(
                f"Python worker extracting {args.memory:.0f} s at {args.sr} Hz stereo:"
                f" {before:.0f} MiB resident before, {peak:.0f} MiB peak"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
