"""Training benchmark: the whole search and ensemble on a thesis-sized synthetic table.

``python -m fmagenre.bench train`` writes a 104,343 x 518 feature table with the thesis' 16
genres and their imbalance (:mod:`fmagenre.synthetic.feature_tables`; genre means apart enough to
be learnable, not separable) and its labels (93,222 train, 11,121 test), then times
:func:`fmagenre.ml.training.run` on it in Spark local mode: each model's random search, each
final fit, saving, evaluation. ``--rows`` and ``--candidates`` scale it down for a quick run.
Figures are printed, never asserted: shared machines are noisy, so the load average is
printed with them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time

from fmagenre.synthetic.feature_tables import (
    THESIS_GENRE_SHARES,
    THESIS_ROWS,
    write_synthetic_tables,
)

#: The goal: search and ensemble of the full table in an hour on 2 cores.
GOAL_S = 3600


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fmagenre.bench train",
        description="Time the training job (search of the 3 models, final fits, ensemble,"
        " evaluation) on a synthetic thesis-shaped table in Spark local mode.",
    )
    parser.add_argument(
        "--rows", type=int, default=THESIS_ROWS, help="tracks (default %(default)s)"
    )
    parser.add_argument("--candidates", type=int, default=10, help="default %(default)s")
    parser.add_argument("--folds", type=int, default=3, help="default %(default)s")
    parser.add_argument(
        "--search-rows",
        type=int,
        default=10_000,
        help="search sample, 0 for all (default %(default)s)",
    )
    parser.add_argument(
        "--separation",
        type=float,
        default=0.05,
        help="spread of the genre means in noise units (default %(default)s)",
    )
    parser.add_argument("--master", default="local[2]", help="default %(default)s")
    parser.add_argument("--driver-memory", default="6g", help="default %(default)s")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    from fmagenre.ml.report import console_summary
    from fmagenre.ml.training import TrainOptions, run
    from fmagenre.platform.session import build_session

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        started = time.perf_counter()
        features, labels = write_synthetic_tables(
            tmp,
            rows=args.rows,
            genre_shares=THESIS_GENRE_SHARES,
            separation=args.separation,
            seed=args.seed,
        )
        generated = time.perf_counter() - started
        spark = build_session(
            "fmagenre-bench-train",
            master=args.master,
            conf={
                "spark.ui.enabled": "false",
                "spark.driver.memory": args.driver_memory,
                "spark.sql.shuffle.partitions": "8",
            },
        )
        spark.sparkContext.setLogLevel("ERROR")
        load_before = _load()
        options = TrainOptions(
            candidates=args.candidates,
            folds=args.folds,
            search_rows=args.search_rows,
            seed=args.seed,
        )
        metrics = run(
            spark, features=features, labels=labels, output=f"{tmp}/model", options=options
        )
        spark.stop()
    timings = metrics["timings"]
    rows = metrics["rows"]
    print(
        f"bench train: {args.rows} rows x {metrics['features']['count']} features,"
        f" {len(metrics['labels'])} genres ({rows['train_total']} train, {rows['test_total']}"
        f" test, {rows['search']} in the search sample), {args.candidates} candidates x"
        f" {args.folds} folds, {args.master}, {os.cpu_count()} CPUs"
    )
    print(f"  table generated in {generated:.1f} s; load average {load_before} -> {_load()}")
    print("  stage                      wall s")
    for stage, seconds in timings.items():
        print(f"  {stage:<26} {seconds:8.1f}")
    for name, search in metrics["search"].items():
        fits = len(search["candidates"]) * args.folds
        print(
            f"  search {name}: {fits} fits, {search['seconds'] / fits:.1f} s per fit and"
            f" fold evaluation"
        )
    print(
        f"  total {timings['total'] / 60:.1f} min (goal for the full table, 10 candidates:"
        f" under {GOAL_S // 60} min)"
    )
    print(console_summary(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
