"""Benchmark of genre timelines: ``python -m fmagenre.bench segments``.

Speed, single-threaded, without Spark: windowed extraction (:func:`fmagenre.audio.features.
extract_windows`) against whole-track extraction of the same decoded audio, alternating the two
on each track; windows per second per core.

Accuracy, with Spark in local mode, on a generated corpus (:mod:`fmagenre.synthetic.sample`,
larger than ``make run``'s): features and labels as the jobs make them, then two models, one
trained on whole-track features (``jobs/train.py``) and one on the windows of the training
tracks (``jobs/train.py --windows``); each makes the timeline of the test tracks, scored
against their genres: each window, the majority of windows, the whole-track prediction.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fmagenre.bench import SEARCH_SPACE
from fmagenre.platform.threads import thread_env


def bench_speed(args: argparse.Namespace) -> None:
    import numpy as np
    from threadpoolctl import threadpool_limits

    from fmagenre.audio import numba_cache
    from fmagenre.audio.features import extract, extract_windows
    from fmagenre.synthetic.music import STYLES, render

    numba_cache.warm_up()
    whole_s, windowed_s, windows = [], [], 0
    audio_s = 0.0
    with threadpool_limits(1):
        for i, style in enumerate(list(STYLES)[: args.speed_tracks]):
            y = render(style, duration=args.duration, sr=args.sr, seed=i).astype(np.float32)
            extract(y[: args.sr], args.sr)  # warm caches
            for _ in range(args.repeat):
                started = time.perf_counter()
                extract(y, args.sr)
                whole_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                result = extract_windows(y, args.sr, window=args.window, hop=args.hop)
                windowed_s.append(time.perf_counter() - started)
            windows += len(result.start_s)
            audio_s += args.duration
    whole, windowed = statistics.median(whole_s), statistics.median(windowed_s)
    per_track = windows / args.speed_tracks
    print(
        f"speed: {args.speed_tracks} tracks of {args.duration:g} s at {args.sr} Hz, windows of"
        f" {args.window:g} s every {args.hop:g} s ({per_track:g} per track), one thread,"
        f" medians of {args.repeat} alternating runs"
    )
    print(f"  whole track      {whole:7.3f} s per track  ({args.duration / whole:6.1f}x real time)")
    print(
        f"  windows          {windowed:7.3f} s per track  ({per_track / windowed:6.1f} windows/s"
        f" per core, {windowed / per_track * 1000:.0f} ms per window)"
    )
    print(
        f"  windowed / whole {windowed / whole:7.2f}x  (audio analysed per window / per track:"
        f" {per_track * args.window / args.duration:.2f}x)"
    )


def bench_accuracy(args: argparse.Namespace) -> None:
    from fmagenre.bench import generated_corpus
    from fmagenre.extraction.driver import run_extraction
    from fmagenre.labels.imputation import build_label_table
    from fmagenre.ml.training import read_options, run
    from fmagenre.platform.config import ExtractConfig
    from fmagenre.tables.label_table import read_metadata, write_label_table
    from fmagenre.timeline import segments

    with tempfile.TemporaryDirectory(prefix="bench-segments-") as tmp:
        sample, spark = generated_corpus(Path(tmp) / "corpus", args, app="fmagenre-bench-segments")
        config = ExtractConfig()
        audio = str(sample.audio_dir)
        out = f"{tmp}/out"
        run_extraction(spark, inputs=[audio], output=f"{out}/features", config=config)
        result = build_label_table(
            *read_metadata(spark, str(sample.metadata_dir)), test_fraction=args.test_fraction
        )
        write_label_table(spark, result.table, result.summary, f"{out}/labels")
        labels = f"{out}/labels"
        space = Path(tmp) / "space.toml"
        space.write_text(SEARCH_SPACE)
        settings = {
            "candidates": args.candidates,
            "folds": 3,
            "seed": args.seed,
            "search_space": str(space),
        }
        timings = {}
        started = time.perf_counter()
        run(
            spark,
            features=f"{out}/features",
            labels=labels,
            output=f"{out}/track_model",
            options=read_options(spark, **settings),
        )
        timings["train on tracks"] = time.perf_counter() - started
        window_options = {"window": args.window, "hop": args.hop}
        started = time.perf_counter()
        segments.run(
            spark,
            model_dir=None,
            inputs=[audio],
            output=f"{out}/windows",
            options=segments.SegmentOptions(**window_options, keep_features=True),
            extract=config,
        )
        timings["window features"] = time.perf_counter() - started
        started = time.perf_counter()
        run(
            spark,
            features=f"{out}/windows/windows",
            labels=labels,
            output=f"{out}/window_model",
            options=read_options(spark, **settings, windows=True),
        )
        timings["train on windows"] = time.perf_counter() - started
        scores = {}
        for name in ("track_model", "window_model"):
            started = time.perf_counter()
            summary = segments.run(
                spark,
                model_dir=f"{out}/{name}",
                inputs=[audio],
                output=f"{out}/timeline_{name}",
                options=segments.SegmentOptions(
                    **window_options, labels=labels, split="test", max_pages=0
                ),
                extract=config,
            )
            timings[f"timeline, {name}"] = time.perf_counter() - started
            scores[name] = summary["scores"]
        spark.stop()
    test = scores["track_model"]
    print(
        f"  test split: {test['tracks']} tracks, {test['windows']} windows of {args.window:g} s"
        f" every {args.hop:g} s"
    )
    print(
        f"  {'model':<14} {'window acc':>10} {'majority acc':>13} {'whole-track acc':>16}"
        f" {'majority = whole':>17}"
    )
    for name, score in scores.items():
        print(
            f"  {name:<14} {100 * score['window_accuracy']:9.1f}% "
            f"{100 * score['majority_accuracy']:12.1f}% {100 * score['track_accuracy']:15.1f}%"
            f" {100 * score['agreement']:16.1f}%"
        )
    print("  seconds: " + ", ".join(f"{stage} {s:.0f}" for stage, s in timings.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmagenre.bench segments", description=__doc__)
    parser.add_argument("--window", type=float, default=10.0, help="window seconds")
    parser.add_argument("--hop", type=float, default=5.0, help="hop seconds")
    parser.add_argument("--duration", type=float, default=60.0, help="speed: track seconds")
    parser.add_argument("--sr", type=int, default=22050, help="speed: sample rate")
    parser.add_argument("--speed-tracks", type=int, default=3, help="speed: tracks (styles)")
    parser.add_argument("--repeat", type=int, default=3, help="speed: alternating runs")
    parser.add_argument(
        "--tracks-per-genre",
        type=int,
        default=16,
        help="accuracy: tracks per generated genre (10 genres); 0 skips the accuracy part",
    )
    parser.add_argument("--min-duration", type=float, default=20.0, help="accuracy: seconds")
    parser.add_argument("--max-duration", type=float, default=40.0, help="accuracy: seconds")
    parser.add_argument(
        "--test-fraction", type=float, default=0.25, help="accuracy: share of test tracks"
    )
    parser.add_argument("--candidates", type=int, default=2, help="accuracy: search candidates")
    parser.add_argument("--master", default="local[2]", help="accuracy: Spark master")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    os.environ.update(thread_env(1))
    bench_speed(args)
    if args.tracks_per_genre:
        bench_accuracy(args)
    return 0
