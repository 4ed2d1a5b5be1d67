"""Feature selection job: PCA variance, permutation importance and MIR family combinations.

python jobs/select_features.py --features out/features --labels out/labels --output out/select
"""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import SparkSession

from fmagenre.analysis.algorithms import ALGORITHMS
from fmagenre.analysis.cells import DEFAULT_CELL_TIMEOUT
from fmagenre.analysis.options import add_input_arguments
from fmagenre.analysis.selection import (
    DEFAULT_SAMPLE_ROWS,
    DEFAULT_THRESHOLD,
    FILES,
    VARIANCE_TARGETS,
    run,
)
from fmagenre.audio.feature_sets import FAMILIES
from fmagenre.platform.config import Config
from fmagenre.platform.jobs import (
    comma_list,
    cores,
    fraction,
    int_range,
    job_parser,
    non_negative_float,
    positive_float,
    positive_int,
    run_job,
    share,
)


def make_parser() -> argparse.ArgumentParser:
    parser = job_parser(
        "select_features",
        "On the training tracks: (a) PCA of the standardized features, with the components"
        " needed for each variance target; (b) permutation importance of a random forest"
        " (mean decrease in accuracy), the columns above --threshold written as a column"
        " list for --columns-file; (c) greedy forward selection of MIR families by"
        f" cross-validated Cohen's kappa. Writes {', '.join(FILES.values())}.",
    )
    add_input_arguments(parser)
    parser.add_argument(
        "--sample-rows",
        type=positive_int,
        default=DEFAULT_SAMPLE_ROWS,
        metavar="N",
        help="most training tracks sampled for (b) and (c) (default %(default)s)",
    )
    parser.add_argument(
        "--threshold",
        type=non_negative_float,
        default=DEFAULT_THRESHOLD,
        help="select the columns whose mean decrease in accuracy exceeds this (default"
        " %(default)s, the thesis' rule)",
    )
    parser.add_argument(
        "--variance-targets",
        type=comma_list(share),
        default=",".join(f"{t:g}" for t in VARIANCE_TARGETS),
        metavar="F,F,...",
        help="shares of variance to count PCA components for (default %(default)s)",
    )
    parser.add_argument("--trees", type=positive_int, default=100, help="forest size (100)")
    parser.add_argument(
        "--repeats", type=positive_int, default=5, help="permutations per column (default 5)"
    )
    parser.add_argument(
        "--holdout",
        type=fraction,
        default=0.25,
        help="share of the sample held out for the permutations (default %(default)s)",
    )
    parser.add_argument(
        "--folds", type=int_range(2), default=3, help="folds of the greedy selection (3)"
    )
    parser.add_argument(
        "--greedy-algorithm",
        choices=ALGORITHMS,
        default="lr",
        metavar="NAME",
        help=f"classifier of the greedy selection, one of {', '.join(ALGORITHMS)} (lr)",
    )
    parser.add_argument(
        "--max-families",
        type=int_range(1, len(FAMILIES)),
        default=len(FAMILIES),
        metavar="N",
        help="steps of the greedy selection (default: all %(default)s families)",
    )
    parser.add_argument(
        "--cell-timeout",
        type=positive_float,
        default=DEFAULT_CELL_TIMEOUT,
        metavar="SECONDS",
        help="time limit of each greedy fit (default %(default)s)",
    )
    parser.add_argument(
        "--n-jobs",
        type=cores,
        default=1,
        help="driver cores of the forest and permutations, -1 for all (default 1)",
    )
    return parser


def select(spark: SparkSession, args: argparse.Namespace, config: Config) -> None:
    summary = run(
        spark,
        features=args.features,
        labels=args.labels,
        output=args.output,
        sample_rows=args.sample_rows,
        threshold=args.threshold,
        variance_targets=args.variance_targets,
        trees=args.trees,
        repeats=args.repeats,
        holdout=args.holdout,
        folds=args.folds,
        greedy_algorithm=args.greedy_algorithm,
        max_families=args.max_families,
        cell_timeout=args.cell_timeout,
        n_jobs=args.n_jobs,
        seed=args.seed,
    )
    components = ", ".join(f"{k}: {v}" for k, v in summary["pca_components"].items())
    print(f"PCA components for each share of variance: {components}")
    print(
        f"{summary['selected_columns']} columns with permutation importance >"
        f" {summary['threshold']:g} (forest's held-out accuracy {summary['holdout_accuracy']:.4f})"
    )
    if summary["empty_selection"]:
        print(f"the column list is empty: {summary['empty_selection']}")
    print(f"greedy family order: {' > '.join(summary['greedy_order'])}")
    print(f"best combination: {summary['greedy_best']} (kappa {summary['greedy_best_kappa']})")
    for path in summary["files"].values():
        print(f"wrote {path}")


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one."""
    return run_job(make_parser(), select, argv, spark=spark)


if __name__ == "__main__":
    sys.exit(main())
