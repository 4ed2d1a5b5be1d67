"""Benchmarks: ``python -m fmagenre.bench COMMAND``: extract, spark, analysis, train, balance,
parity, cpu-drift, segments, network, musicnn, similar, watch.

Figures are printed, never asserted: machines are shared and noisy, so every ratio is
measured side by side in one run (alternating the implementations) and medians are reported.
Each command is a module of this package with its own ``--help``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from fmagenre.platform.threads import THREAD_VARS

COMMANDS = {
    "extract": ("extract", "fmagenre.audio.features vs the plain librosa recipe"),
    "spark": ("spark", "the Spark extraction job: scaling and overhead"),
    "analysis": ("analysis", "the algorithm x feature-set grid of the thesis"),
    "train": ("train", "search, ensemble and evaluation on a thesis-sized table"),
    "cpu-drift": ("cpu", "feature drift between this CPU and emulated AVX2"),
    "segments": ("segments", "genre timelines: windowed extraction speed, window models"),
    "parity": ("parity", "the Spark models against scikit-learn and xgboost, same split"),
    "balance": ("balance", "class weights and vote schemes: per-genre recall, ensemble"),
    "network": ("network", "the spectrogram network: patches' cost, training, inference, scores"),
    "musicnn": ("musicnn", "the musicnn family: its cost, and scores with and without it"),
    "similar": ("similar", "similarity search: index build, IVF against exact, recall@10"),
    "watch": ("watch", "the streaming job: latency at a steady rate, throughput against batch"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmagenre.bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, text) in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    module = importlib.import_module(f"fmagenre.bench.{COMMANDS[args.command][0]}")
    return module.main(rest)


if __name__ == "__main__":
    for _var in THREAD_VARS:
        os.environ.setdefault(_var, "1")
    sys.exit(main())
