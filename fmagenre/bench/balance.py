"""Class imbalance and vote schemes: the training job with each class weighting, one table.

``python -m fmagenre.bench balance`` writes a thesis-shaped synthetic table (the 16 genres and
their imbalance, 21% down to 0.4%; :mod:`fmagenre.synthetic.feature_tables`) and runs
:func:`fmagenre.ml.training.run` on it once per class weighting (``none``, ``balanced``,
``sqrt``) in one local SparkSession, with ``--vote auto`` and ``--class-bias`` (the job's
default, ``f1``). Every vote scheme is scored on the test split from the same fitted models
(the job does so), so one run shows, for each weighting: the models and each scheme
(accuracy, kappa, macro F1, genres at 0% recall, cross-validated kappa), per-genre recall,
and the issue's two goals against the unweighted hard vote (fmagenre 0.1's ensemble).
``--metrics FILE`` keeps the runs' metrics; ``--from-metrics FILE`` prints them again.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from fmagenre.bench import training_session
from fmagenre.ml.voting import CLASS_BIASES
from fmagenre.synthetic.feature_tables import THESIS_GENRE_SHARES, write_synthetic_tables

WEIGHTS = ("none", "balanced", "sqrt")
#: The baseline: the unweighted run's hard vote.
BASELINE = ("none", "hard")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fmagenre.bench balance",
        description="Per-genre recall and vote schemes of the training job with class weights"
        " none, balanced and sqrt, on a thesis-shaped synthetic table in Spark local mode.",
    )
    parser.add_argument("--rows", type=int, default=30_000, help="tracks (default %(default)s)")
    parser.add_argument("--candidates", type=int, default=2, help="default %(default)s")
    parser.add_argument("--folds", type=int, default=3, help="default %(default)s")
    parser.add_argument(
        "--search-rows", type=int, default=10_000, help="search sample (default %(default)s)"
    )
    parser.add_argument(
        "--weights",
        default=",".join(WEIGHTS),
        help="class weightings to run, comma-separated (default %(default)s)",
    )
    parser.add_argument(
        "--separation",
        type=float,
        default=0.05,
        help="spread of the genre means in noise units (default %(default)s)",
    )
    parser.add_argument(
        "--class-bias",
        choices=CLASS_BIASES,
        default="f1",
        help="the job's --class-bias: which biased soft vote --vote auto may pick (default"
        " %(default)s); every scheme is scored either way",
    )
    parser.add_argument("--master", default="local[2]", help="default %(default)s")
    parser.add_argument("--driver-memory", default="6g", help="default %(default)s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--metrics", metavar="FILE", help="also write each run's metrics to FILE (JSON)"
    )
    parser.add_argument(
        "--from-metrics",
        metavar="FILE",
        help="print the tables of the runs saved by --metrics FILE instead of running",
    )
    return parser.parse_args(argv)


def _scores(test: dict, cv: float | None) -> list[str]:
    from fmagenre.ml.report import zero_recall

    zero = zero_recall(test)
    return [
        f"{100 * test['accuracy']:.1f}%",
        f"{test['kappa']:.3f}",
        f"{test['f1_macro']:.3f}",
        "-" if cv is None else f"{cv:.3f}",
        f"{len(zero)}" + (f" ({', '.join(zero)})" if 0 < len(zero) <= 3 else ""),
    ]


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  " + "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))


def report(runs: dict[str, dict]) -> None:
    """Print the tables and the goals of ``runs`` (metrics by class weighting)."""
    from fmagenre.ml.report import zero_recall

    first = next(iter(runs.values()))
    models = list(first["search"])
    header = ["weights", "model / vote", "accuracy", "kappa", "macro F1", "CV kappa", "0% recall"]
    rows, results = [], {}
    for weights, metrics in runs.items():
        vote = metrics["vote"]
        for model in models:
            search = metrics["search"][model]
            cv = search["candidates"][search["best"]]["score"]
            results[(weights, model)] = metrics["test"][model]
            rows.append([weights, model, *_scores(metrics["test"][model], cv)])
        for key, test in vote["test"].items():
            results[(weights, key)] = test
            mark = " *" if key == vote["scheme"] else ""
            rows.append([weights, f"{key}{mark}", *_scores(test, vote["cv_kappa"].get(key))])
    print("Test scores (* the scheme --vote auto chose by CV kappa):")
    _print_table(header, rows)

    schemes = [key for key in ("hard", "soft_bias", "soft_f1") if key in first["vote"]["test"]]
    columns = [(w, key) for w in runs for key in schemes]
    print("\nRecall per genre (test), ensemble by class weights and vote:")
    genre_rows = []
    for genre in first["labels"]:
        recalls = [results[column]["per_class"][genre]["recall"] for column in columns]
        support = first["test"][models[0]]["per_class"][genre]["support"]
        genre_rows.append([genre[:14], str(support), *(f"{100 * r:.1f}%" for r in recalls)])
    _print_table(["genre", "test", *(f"{w[:4]} {k}" for w, k in columns)], genre_rows)

    base = results.get(BASELINE)
    print(
        "\nGoals: imbalance (no genre at 0% recall, macro F1 above and accuracy within 3 points"
        " of none hard); ensemble (test kappa above each member's):"
    )
    goal_rows = []
    for weights, metrics in runs.items():
        member = max(models, key=lambda m: metrics["test"][m]["kappa"])
        best_member = metrics["test"][member]["kappa"]
        for key, test in metrics["vote"]["test"].items():
            imbalance = "-"
            if base is not None:
                met = (
                    not zero_recall(test)
                    and test["f1_macro"] > base["f1_macro"]
                    and test["accuracy"] >= base["accuracy"] - 0.03
                )
                imbalance = "met" if met else "not met"
            above = test["kappa"] > best_member
            goal_rows.append(
                [
                    weights,
                    key,
                    imbalance,
                    f"{'met' if above else 'not met'} ({test['kappa']:.3f} vs {member}"
                    f" {best_member:.3f})",
                ]
            )
    _print_table(["weights", "vote", "imbalance", "ensemble"], goal_rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_metrics:
        report(json.loads(Path(args.from_metrics).read_text()))
        return 0
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    from fmagenre.ml.report import metrics_json
    from fmagenre.ml.training import TrainOptions, run

    weightings = [w.strip() for w in args.weights.split(",") if w.strip()]
    runs, seconds = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-balance-") as tmp:
        features, labels = write_synthetic_tables(
            tmp,
            rows=args.rows,
            genre_shares=THESIS_GENRE_SHARES,
            separation=args.separation,
            seed=args.seed,
        )
        spark = training_session(
            "fmagenre-bench-balance", master=args.master, driver_memory=args.driver_memory
        )
        load_before = " ".join(f"{v:.1f}" for v in os.getloadavg())
        for weights in weightings:
            started = time.perf_counter()
            options = TrainOptions(
                candidates=args.candidates,
                folds=args.folds,
                search_rows=args.search_rows,
                seed=args.seed,
                class_weights=weights,
                vote="auto",
                class_bias=args.class_bias,
            )
            runs[weights] = run(
                spark,
                features=features,
                labels=labels,
                output=f"{tmp}/model_{weights}",
                options=options,
            )
            seconds[weights] = time.perf_counter() - started
        spark.stop()
    if args.metrics:
        Path(args.metrics).write_text(metrics_json(runs))
    rows = runs[weightings[0]]["rows"]
    print(
        f"bench balance: {args.rows} rows ({rows['train_total']} train, {rows['test_total']}"
        f" test, {rows['search']} in the search sample), {len(runs[weightings[0]]['labels'])}"
        f" genres, {args.candidates} candidates x {args.folds} folds, {args.master},"
        f" {os.cpu_count()} CPUs; load average {load_before} ->"
        f" {' '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )
    print(
        "  minutes per run: "
        + ", ".join(
            f"{w} {s / 60:.1f} (vote choice {runs[w]['timings']['choose vote']:.1f} s)"
            for w, s in seconds.items()
        )
    )
    report(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
