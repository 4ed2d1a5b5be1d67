"""Benchmark of the spectrogram network: ``python -m fmagenre.bench network``.

- ``extraction``: one file's extraction with and without log-mel patches (decoding included),
  one thread, the same generated MP3s, alternating the two; the issue's goal is at most +20%.
- ``training``: patches per second per training process with TorchDistributor on local[1]
  (1 process) and local[2] (2 processes), processes on the driver (``local_mode``) and in Spark
  barrier tasks, on a generated patches table.
- ``inference``: one thread, per generated track: the network's forward pass of its patches,
  and patches plus forward pass from the decoded samples; seconds per hour of audio per core
  and times real time (goal: at least 200x).
- ``accuracy``: a generated corpus (:mod:`fmagenre.synthetic.sample`, 40 tracks of each of its
  10 styles by default) extracted with patches, its label table's held-out test split, and test
  accuracy, kappa and macro F1 of the network, the MIR ensemble and the ensemble with the network
  as its fourth voter, side by side. Generated music says little about real music.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fmagenre.bench import SEARCH_SPACE, add_corpus_arguments, chosen_parts

PARTS = ("extraction", "training", "inference", "accuracy")


def _write_tracks(directory: Path, count: int, duration: float) -> list[Path]:
    """``count`` generated MP3s of ``duration`` s, styles and rates (16-48 kHz) in turn."""
    import numpy as np
    import soundfile as sf

    from fmagenre.synthetic.music import STYLES, render

    rates = (44100, 22050, 48000, 32000, 16000)
    paths = []
    for i in range(count):
        style, sr = list(STYLES)[i % len(STYLES)], rates[i % len(rates)]
        y = render(style, duration=duration, sr=sr, seed=i).astype(np.float32)
        path = directory / f"{i:06d}.mp3"
        channels = np.stack([y, np.roll(y, 441) * 0.8], axis=1) if i % 2 else y
        sf.write(path, channels, sr, format="MP3")
        paths.append(path)
    return paths


def bench_extraction(args: argparse.Namespace, tracks: list[Path]) -> None:
    from threadpoolctl import threadpool_limits

    from fmagenre.audio import numba_cache
    from fmagenre.audio.features import analyse
    from fmagenre.audio.patches import PatchSettings

    numba_cache.warm_up()
    settings = PatchSettings()
    plain, with_patches = [], []
    with threadpool_limits(1):
        for path in tracks:
            data = path.read_bytes()
            analyse(data, patches=settings)  # warm caches
            for _ in range(args.repeat):
                started = time.process_time()
                analyse(data)
                plain.append(time.process_time() - started)
                started = time.process_time()
                result = analyse(data, patches=settings)
                with_patches.append(time.process_time() - started)
                assert result.patches is not None, result.patch_error
    a, b = statistics.median(plain), statistics.median(with_patches)
    print(
        f"extraction: {len(tracks)} generated MP3s of {args.duration:g} s (16-48 kHz), one"
        f" thread, CPU seconds, medians of {args.repeat} alternating runs each"
    )
    print(f"  518 features              {a:7.3f} s per file")
    print(f"  518 features + patches    {b:7.3f} s per file   ({(b / a - 1) * 100:+.1f}%)")


def bench_inference(args: argparse.Namespace, tracks: list[Path], model_bytes: bytes) -> None:
    from threadpoolctl import threadpool_limits

    from fmagenre.audio import decode
    from fmagenre.audio.patches import log_mel_patches
    from fmagenre.network.model_dir import NetworkModel

    model = NetworkModel.from_bytes(model_bytes)
    forward, whole, audio_s = [], [], 0.0
    with threadpool_limits(1):
        for path in tracks:
            decoded = decode.decode(path.read_bytes())
            patches = log_mel_patches(decoded.y, decoded.sr, settings=model.settings)
            model.track_log_probs(patches)  # warm up
            for _ in range(args.repeat):
                started = time.perf_counter()
                model.track_log_probs(patches)
                forward.append(time.perf_counter() - started)
                started = time.perf_counter()
                model.track_log_probs(
                    log_mel_patches(decoded.y, decoded.sr, settings=model.settings)
                )
                whole.append(time.perf_counter() - started)
            audio_s += decoded.analysed_s
    per_track_s = audio_s / len(tracks)
    print(
        f"\ninference: {len(tracks)} tracks of {per_track_s:.0f} s, {model.settings.count}"
        f" patches each, one thread, medians of {args.repeat} runs"
    )
    for name, times in (("forward pass", forward), ("patches + forward pass", whole)):
        seconds = statistics.median(times)
        print(
            f"  {name:24s} {seconds * 1000:7.1f} ms per track: {seconds * 3600 / per_track_s:6.1f}"
            f" s per hour of audio per core, {per_track_s / seconds:6.0f}x real time"
        )
    print(
        "  (the cost per track is the same for longer tracks: 16 patches whatever the length;"
        " decoding is not included)"
    )


def bench_training(args: argparse.Namespace, root: Path) -> bytes:
    """Print the throughput of each layout; return the last model's bytes (for inference)."""
    from fmagenre.network.model_dir import NetworkModel
    from fmagenre.network.training import NetworkOptions, run
    from fmagenre.platform.session import build_session
    from fmagenre.synthetic.patch_tables import write_patch_tables

    patches, labels = write_patch_tables(
        root / "table", tracks=args.train_tracks, patches_per_track=16, files=4, seed=1
    )
    print(
        f"\ntraining: {args.train_tracks} generated tracks x 16 patches, {args.epochs} epochs,"
        " batch 64, patches per second per process (median over epochs)"
    )
    model_bytes = b""
    for master, processes in (("local[1]", 1), ("local[2]", 2)):
        spark = build_session(
            "fmagenre-bench-network",
            master=master,
            conf={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4"},
        )
        spark.sparkContext.setLogLevel("ERROR")
        for local_mode in (True, False):
            output = root / f"model-{processes}-{local_mode}"
            options = NetworkOptions(
                epochs=args.epochs,
                patience=args.epochs,
                num_processes=processes,
                local_mode=local_mode,
                seed=1,
            )
            started = time.perf_counter()
            metrics = run(
                spark, patches=patches, labels=labels, output=str(output), options=options
            )
            wall = time.perf_counter() - started
            rate = statistics.median(
                h["patches_per_second_per_process"] for h in metrics["training"]["history"]
            )
            where = "on the driver (local_mode)" if local_mode else "in barrier tasks"
            print(
                f"  {master} {processes} process(es) {where:26s} {rate:8.1f} patches/s per"
                f" process, {rate * processes:8.1f} in all; run {wall:.0f} s"
            )
            model_bytes = NetworkModel.load(spark, str(output)).to_bytes()
        spark.stop()
    return model_bytes


def _scores(metrics: dict, key: str) -> tuple[float, float, float]:
    test = metrics["test"][key]
    return test["accuracy"], test["kappa"], test["f1_macro"]


def bench_accuracy(args: argparse.Namespace, root: Path) -> None:
    from fmagenre.bench import generated_corpus
    from fmagenre.extraction.driver import run_extraction
    from fmagenre.labels.imputation import build_label_table
    from fmagenre.ml.training import read_options
    from fmagenre.ml.training import run as train_ensemble
    from fmagenre.network.inference import network_member
    from fmagenre.network.training import NetworkOptions
    from fmagenre.network.training import run as train_network
    from fmagenre.platform.config import ExtractConfig
    from fmagenre.tables.label_table import read_metadata, write_label_table

    sample, spark = generated_corpus(root / "corpus", args, app="fmagenre-bench-network")
    out = root / "out"
    timings = {}
    started = time.perf_counter()
    run_extraction(
        spark,
        inputs=[str(sample.audio_dir)],
        output=str(out / "features"),
        config=ExtractConfig(patches=True),
    )
    timings["extraction with patches"] = time.perf_counter() - started
    result = build_label_table(
        *read_metadata(spark, str(sample.metadata_dir)), test_fraction=args.test_fraction
    )
    write_label_table(spark, result.table, result.summary, str(out / "labels"))
    started = time.perf_counter()
    network = train_network(
        spark,
        patches=str(out / "features"),
        labels=str(out / "labels"),
        output=str(out / "network"),
        options=NetworkOptions(epochs=args.network_epochs, patience=5, seed=args.seed),
    )
    timings["network"] = time.perf_counter() - started
    space = root / "space.toml"
    space.write_text(SEARCH_SPACE)
    settings = {"candidates": args.candidates, "folds": 3, "seed": args.seed}
    started = time.perf_counter()
    both = train_ensemble(
        spark,
        features=str(out / "features"),
        labels=str(out / "labels"),
        output=str(out / "ensemble"),
        options=read_options(spark, **settings, search_space=str(space)),
        external=[network_member(spark, str(out / "network"))],
    )
    timings["MIR ensemble and the vote with the network"] = time.perf_counter() - started
    spark.stop()
    rows = [("network", _scores(network, "network"))]
    rows += [(f"MIR {name}", _scores(both, name)) for name in ("lr", "svc", "xgb")]
    rows += [("MIR ensemble", _scores(both, "ensemble_without_network"))]
    rows += [("MIR ensemble + network", _scores(both, "ensemble"))]
    print(
        f"  test split: {both['rows']['test_total']} tracks (MIR),"
        f" {network['test']['network']['rows']} with patches (network)"
    )
    print(f"  {'model':26s}{'accuracy':>10s}{'kappa':>9s}{'macro F1':>10s}")
    for name, (accuracy, kappa, f1) in rows:
        print(f"  {name:26s}{accuracy * 100:9.1f}%{kappa:9.4f}{f1:10.4f}")
    print(f"  vote: {json.dumps(both.get('vote', {}).get('scheme'))}")
    print("  time: " + ", ".join(f"{k} {s:.0f} s" for k, s in timings.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fmagenre.bench network",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma-separated parts (default: all)"
    )
    parser.add_argument("--files", type=int, default=6, help="generated MP3s for the speed parts")
    parser.add_argument("--duration", type=float, default=30.0, help="their seconds (30)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per file (3)")
    parser.add_argument("--train-tracks", type=int, default=200, help="training table (200)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per training layout (2)")
    add_corpus_arguments(parser)
    parser.add_argument("--network-epochs", type=int, default=20, help="(accuracy) epochs (20)")
    args = parser.parse_args(argv)
    parts = chosen_parts(parser, args.parts, PARTS)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-network-") as tmp:
        root = Path(tmp)
        tracks = []
        if "extraction" in parts or "inference" in parts:
            (root / "tracks").mkdir()
            tracks = _write_tracks(root / "tracks", args.files, args.duration)
        if "extraction" in parts:
            bench_extraction(args, tracks)
        model_bytes = b""
        if "training" in parts or "inference" in parts:
            model_bytes = bench_training(args, root)
        if "inference" in parts:
            bench_inference(args, tracks, model_bytes)
        if "accuracy" in parts:
            bench_accuracy(args, root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
