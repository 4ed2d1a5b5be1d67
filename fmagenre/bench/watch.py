"""Benchmark of the watch job: ``python -m fmagenre.bench watch``.

On a generated corpus (:mod:`fmagenre.synthetic.sample`, bad files included) and an ensemble
trained on it (or ``--model``), in Spark local mode:

- throughput: the batch route (``jobs/extract_features.py`` then ``jobs/predict.py`` on its
  table) against ``jobs/watch.py --once`` on the same files, alternating, fresh outputs each
  time, the model loaded once for both;
- latency: a running watch (the job's default ``--interval`` and ``--min-age``) while the
  corpus' files land one by one at a steady rate, half the watch's measured throughput (each
  written under a hidden name and renamed); latency is from a file's modification time to
  the moment its batch's predictions file is committed (that file's modification time).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fmagenre.bench import SEARCH_SPACE, add_corpus_arguments
from fmagenre.platform.threads import thread_env


def _train(spark, sample, out: str, args) -> str:
    from fmagenre.extraction.driver import run_extraction
    from fmagenre.labels.imputation import build_label_table
    from fmagenre.ml.training import read_options, run
    from fmagenre.platform.config import ExtractConfig
    from fmagenre.tables.label_table import read_metadata, write_label_table

    run_extraction(
        spark, inputs=[str(sample.audio_dir)], output=f"{out}/features", config=ExtractConfig()
    )
    result = build_label_table(*read_metadata(spark, str(sample.metadata_dir)), test_fraction=0.25)
    write_label_table(spark, result.table, result.summary, f"{out}/labels")
    space = Path(out) / "space.toml"
    space.write_text(SEARCH_SPACE)
    options = read_options(
        spark, candidates=args.candidates, folds=2, seed=args.seed, search_space=str(space)
    )
    run(
        spark,
        features=f"{out}/features",
        labels=f"{out}/labels",
        output=f"{out}/model",
        options=options,
    )
    return f"{out}/model"


def _batch_route(spark, predictor, model: str, landing: str, out: str) -> float:
    from fmagenre.extraction.driver import run_extraction
    from fmagenre.ml import prediction
    from fmagenre.platform.config import ExtractConfig

    started = time.perf_counter()
    extract = ExtractConfig().with_musicnn(predictor.musicnn)
    if predictor.patch_settings is not None:
        count = predictor.patch_settings.count
        extract = dataclasses.replace(extract, patches=True, patch_count=count)
    run_extraction(spark, inputs=[landing], output=f"{out}/features", config=extract)
    prediction.run(
        spark,
        model_dir=model,
        input=f"{out}/features",
        output=f"{out}/predictions",
        extract=extract,
        scorer=predictor,
    )
    return time.perf_counter() - started


def _watch_once(spark, predictor, model: str, landing: str, out: str, max_files: int) -> float:
    from fmagenre.watch.stream import WatchOptions, run_watch

    started = time.perf_counter()
    run_watch(
        spark,
        model_dir=model,
        input=landing,
        output=f"{out}/watch",
        checkpoint=f"{out}/checkpoint",
        options=WatchOptions(max_files=max_files, min_age_s=0),
        once=True,
        predictor=predictor,
    )
    return time.perf_counter() - started


def _latency(spark, predictor, model: str, files: list[Path], out: Path, rate: float, args):
    """Visible latencies (s) of ``files`` landing at ``rate`` files/s in a running watch."""
    import pyarrow.parquet as pq

    from fmagenre.platform.config import ExtractConfig
    from fmagenre.watch.ledger import PREDICTIONS
    from fmagenre.watch.stream import Watch, WatchOptions

    landing = out / "landing"
    landing.mkdir(parents=True)
    watch = Watch(
        spark,
        predictor,
        model_dir=model,
        input=str(landing),
        output=str(out / "watch"),
        checkpoint=str(out / "checkpoint"),
        extract=ExtractConfig(),
        options=WatchOptions(
            max_files=args.max_files, interval_s=args.interval, min_age_s=args.min_age
        ),
    )
    landed, query = {}, None
    try:
        query = watch.start()
        started = time.monotonic()
        for i, source in enumerate(files):
            time.sleep(max(0.0, started + i / rate - time.monotonic()))
            name = f"{i:06d}.mp3"
            shutil.copy(source, landing / f".{name}.part")
            os.replace(landing / f".{name}.part", landing / name)
            landed[name] = (landing / name).stat().st_mtime
        deadline = time.monotonic() + 600
        while len(watch.done) < len(files) and time.monotonic() < deadline:
            if not query.isActive:
                raise RuntimeError(f"the watch stopped: {query.exception()}")
            time.sleep(0.5)
    finally:
        try:
            if query is not None:
                watch.stop(query)
        finally:
            watch.close()
    latencies = []
    for batch in sorted((out / "watch" / PREDICTIONS).glob("*.parquet")):
        committed = batch.stat().st_mtime
        for path in pq.read_table(batch, columns=["path"]).column("path").to_pylist():
            latencies.append(committed - landed[Path(path).name])
    return sorted(latencies), len(files), watch.totals["batches"]


def _quantile(values, q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def bench_watch(args: argparse.Namespace) -> None:
    from fmagenre.bench import generated_corpus
    from fmagenre.network.inference import load_predictor

    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        sample, spark = generated_corpus(Path(tmp) / "corpus", args, app="fmagenre-bench-watch")
        started = time.perf_counter()
        model = args.model or _train(spark, sample, f"{tmp}/train", args)
        predictor = load_predictor(spark, model)
        files = sorted(sample.audio_dir.rglob("*.mp3"))
        landing = str(sample.audio_dir)
        print(
            f"model {'given' if args.model else 'trained'} ({predictor.kind}:"
            f" {', '.join(predictor.model_names)}) in {time.perf_counter() - started:.0f} s;"
            f" {len(files)} files, {args.master}, --max-files {args.max_files}",
            flush=True,
        )
        times = {"batch": [], "watch": []}
        for round_ in range(args.rounds):
            order = ("batch", "watch") if round_ % 2 == 0 else ("watch", "batch")
            for route in order:
                out = f"{tmp}/{route}-{round_}"
                if route == "batch":
                    seconds = _batch_route(spark, predictor, model, landing, out)
                else:
                    seconds = _watch_once(spark, predictor, model, landing, out, args.max_files)
                times[route].append(seconds)
                print(f"  round {round_ + 1}: {route} {seconds:.1f} s", flush=True)
        batch_s, watch_s = min(times["batch"]), min(times["watch"])
        print(f"\nthroughput, {len(files)} files at once (best of {args.rounds}):")
        print(f"  {'route':<34} {'s':>6} {'files/s':>8}")
        for name, seconds in (
            ("batch (extract_features + predict)", batch_s),
            ("watch --once", watch_s),
        ):
            print(f"  {name:<34} {seconds:6.1f} {len(files) / seconds:8.2f}")
        print(f"  watch / batch throughput: {batch_s / watch_s:.2f} (goal >= 0.80)")

        rate = args.load * len(files) / watch_s
        print(
            f"\nlatency: {len(files)} files landing at {rate:.2f} files/s ({args.load:g} x the"
            f" watch's throughput), --interval {args.interval:g} --min-age {args.min_age:g}",
            flush=True,
        )
        latencies, count, batches = _latency(
            spark, predictor, model, files, Path(tmp) / "latency", rate, args
        )
        print(
            f"  {len(latencies)} of {count} classified in {batches} micro-batches;"
            f" upload to committed prediction: median {statistics.median(latencies):.1f} s,"
            f" p95 {_quantile(latencies, 0.95):.1f} s, max {latencies[-1]:.1f} s (goal: median"
            " < 30 s)"
        )
        spark.stop()


def main(argv: list[str] | None = None) -> int:
    from fmagenre.watch.stream import WatchOptions

    defaults = WatchOptions()
    parser = argparse.ArgumentParser(prog="python -m fmagenre.bench watch", description=__doc__)
    add_corpus_arguments(parser)
    parser.set_defaults(tracks_per_genre=4, min_duration=25.0, max_duration=30.0)
    parser.add_argument("--model", help="a model directory to use instead of training one")
    parser.add_argument("--rounds", type=int, default=2, help="throughput: alternating rounds")
    parser.add_argument("--max-files", type=int, default=defaults.max_files)
    parser.add_argument("--interval", type=float, default=defaults.interval_s)
    parser.add_argument("--min-age", type=float, default=defaults.min_age_s)
    parser.add_argument(
        "--load", type=float, default=0.5, help="latency: arrival rate / watch throughput"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    os.environ.update(thread_env(1))
    bench_watch(args)
    return 0
