"""Benchmark of the musicnn feature family: ``python -m fmagenre.bench musicnn``.

- ``cost``: one file's extraction with the 518 features alone and with the musicnn family too
  (decoding included), one thread, the same generated MP3s (16-48 kHz, mono and stereo),
  alternating the two; CPU seconds per file and the family's extra cost per minute of audio
  (the issue's goal: at most 1.5 s of one core per minute).
- ``accuracy``: a generated corpus (:mod:`fmagenre.synthetic.sample`, 40 tracks of each of its
  10 styles by default) extracted with the family, its label table's held-out test split, and
  the ensemble trained (``jobs/train.py``'s library call, same search and seed) on the MIR
  features alone, on musicnn alone and on both: test accuracy, kappa and macro F1 of each
  model, side by side, and the extraction's cost per hour of audio. Generated music says little
  about real music: the network was trained on real recordings, which these are not.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fmagenre.bench import SEARCH_SPACE, add_corpus_arguments, chosen_parts

PARTS = ("cost", "accuracy")
FAMILY_SETS = ("mir", "musicnn", "mir,musicnn")


def musicnn_cost(tracks: list[Path], *, repeat: int) -> dict[str, float]:
    """Median CPU seconds per file of the 518 features alone and with musicnn, one thread,
    and the seconds of audio per file."""
    from threadpoolctl import threadpool_limits

    from fmagenre.audio import numba_cache
    from fmagenre.audio.features import analyse

    numba_cache.warm_up()
    plain, both, audio = [], [], []
    with threadpool_limits(1):
        for path in tracks:
            data = path.read_bytes()
            audio.append(analyse(data, musicnn=True).analysed_s)  # warms the weights up
            for _ in range(repeat):
                started = time.process_time()
                analyse(data)
                plain.append(time.process_time() - started)
                started = time.process_time()
                result = analyse(data, musicnn=True)
                both.append(time.process_time() - started)
                assert result.musicnn is not None, result.musicnn_error
    return {
        "mir_s": statistics.median(plain),
        "both_s": statistics.median(both),
        "audio_s": statistics.median(audio),
    }


def print_cost(cost: dict[str, float], *, files: int, repeat: int) -> None:
    a, b, minutes = cost["mir_s"], cost["both_s"], cost["audio_s"] / 60
    print(
        f"musicnn cost: {files} generated MP3s of {cost['audio_s']:.0f} s (16-48 kHz), one"
        f" thread, CPU seconds per file, medians of {repeat} alternating runs each"
    )
    print(f"  518 features              {a:7.3f} s   ({a / minutes:5.2f} s per minute of audio)")
    print(
        f"  518 features + musicnn    {b:7.3f} s   ({b / minutes:5.2f} s per minute of audio,"
        f" {(b / a - 1) * 100:+.1f}%)"
    )
    print(
        f"  the musicnn family alone  {b - a:7.3f} s   ({(b - a) / minutes:5.2f} s per minute"
        " of audio; goal <= 1.5)"
    )


def bench_accuracy(args: argparse.Namespace, root: Path) -> None:
    from fmagenre.bench import generated_corpus
    from fmagenre.extraction.driver import run_extraction
    from fmagenre.labels.imputation import build_label_table
    from fmagenre.ml.training import read_options
    from fmagenre.ml.training import run as train_ensemble
    from fmagenre.platform.config import ExtractConfig
    from fmagenre.tables.label_table import read_metadata, write_label_table

    sample, spark = generated_corpus(root / "corpus", args, app="fmagenre-bench-musicnn")
    out = root / "out"
    extracted = {}
    for families in ("mir", "mir,musicnn"):
        started = time.perf_counter()
        summary = run_extraction(
            spark,
            inputs=[str(sample.audio_dir)],
            output=str(out / f"features-{families}"),
            config=ExtractConfig(families=families),
        )
        extracted[families] = (time.perf_counter() - started, summary["analysed_s"])
    result = build_label_table(
        *read_metadata(spark, str(sample.metadata_dir)), test_fraction=args.test_fraction
    )
    write_label_table(spark, result.table, result.summary, str(out / "labels"))
    space = root / "space.toml"
    space.write_text(SEARCH_SPACE)
    scores, times = {}, {}
    for families in FAMILY_SETS:
        settings = {"candidates": args.candidates, "folds": 3, "seed": args.seed}
        started = time.perf_counter()
        scores[families] = train_ensemble(
            spark,
            features=str(out / "features-mir,musicnn"),
            labels=str(out / "labels"),
            output=str(out / f"model-{families}"),
            options=read_options(
                spark, families=families.split(","), search_space=str(space), **settings
            ),
        )
        times[families] = time.perf_counter() - started
    spark.stop()
    metrics = scores["mir"]
    print(
        f"  test split: {metrics['rows']['test_total']} tracks, training"
        f" {metrics['rows']['train_total']}; same tracks, search and seed for each feature set"
    )
    print(f"  {'features':14s}{'model':10s}{'accuracy':>10s}{'kappa':>9s}{'macro F1':>10s}")
    for families, metrics in scores.items():
        for name in ("lr", "svc", "xgb", "ensemble"):
            test = metrics["test"][name]
            print(
                f"  {families:14s}{name:10s}{test['accuracy'] * 100:9.1f}%{test['kappa']:9.4f}"
                f"{test['f1_macro']:10.4f}"
            )
    print("  training: " + ", ".join(f"{k} {s:.0f} s" for k, s in times.items()))
    for families, (wall, audio_s) in extracted.items():
        print(
            f"  extraction on {args.master} ({families}): {wall:.0f} s for {audio_s / 60:.1f}"
            f" min of audio, {wall / audio_s * 3600:.0f} s per hour of audio"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fmagenre.bench musicnn",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma-separated parts (default: all)"
    )
    parser.add_argument("--files", type=int, default=5, help="(cost) generated MP3s (5)")
    parser.add_argument("--duration", type=float, default=30.0, help="(cost) their seconds (30)")
    parser.add_argument("--repeat", type=int, default=3, help="(cost) runs per file (3)")
    add_corpus_arguments(parser)
    args = parser.parse_args(argv)
    parts = chosen_parts(parser, args.parts, PARTS)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-musicnn-") as tmp:
        root = Path(tmp)
        if "cost" in parts:
            from fmagenre.bench.network import _write_tracks

            (root / "tracks").mkdir()
            tracks = _write_tracks(root / "tracks", args.files, args.duration)
            cost = musicnn_cost(tracks, repeat=args.repeat)
            print_cost(cost, files=args.files, repeat=args.repeat)
        if "accuracy" in parts:
            bench_accuracy(args, root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
