"""Model comparison job: feature sets x algorithms, the thesis' Tables 3-6, in parallel on Spark.

python jobs/compare_models.py --features out/features --labels out/labels --output out/compare \
    --columns-file out/select/columns.txt --cell-timeout 1800
"""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import SparkSession

from fmagenre.analysis.algorithms import ALGORITHMS, SLOW_KERNELS
from fmagenre.analysis.cells import DEFAULT_CELL_TIMEOUT
from fmagenre.analysis.compare import (
    DEFAULT_MAX_TEST_ROWS,
    DEFAULT_MAX_TRAIN_ROWS,
    DEFAULT_SLOW_KERNEL_ROWS,
    pivot,
    run,
)
from fmagenre.analysis.options import add_input_arguments
from fmagenre.audio.feature_sets import THESIS_COMBINATIONS, THESIS_PCA_COMPONENTS
from fmagenre.platform.config import Config
from fmagenre.platform.jobs import (
    comma_list,
    hadoop_path,
    job_parser,
    non_negative_int,
    positive_float,
    positive_int,
    run_job,
)


def make_parser() -> argparse.ArgumentParser:
    parser = job_parser(
        "compare_models",
        "Fit every algorithm on every feature set (each MIR family, combinations, all,"
        " the selected columns, PCA; musicnn and mir+musicnn when the table holds the"
        " musicnn family: jobs/extract_features.py --families mir,musicnn) on sampled"
        " training tracks, score it on the test tracks, one Spark task per cell under a"
        " time limit. Writes results.csv,"
        " tables.md (accuracy, kappa, macro F1, fit minutes) and heatmap.png; a failed"
        " or timed-out cell is reported in its row.",
    )
    add_input_arguments(parser)
    parser.add_argument(
        "--columns-file",
        type=hadoop_path,
        metavar="PATH",
        help="column list (one name per line, # comments), e.g. select_features' columns.txt:"
        " adds the 'selected' feature set",
    )
    parser.add_argument(
        "--combinations",
        type=comma_list(allow_empty=True),
        default=",".join(THESIS_COMBINATIONS),
        metavar="A+B,...",
        help="family combinations added as feature sets, comma-separated, '' for none"
        " (default: the thesis' six); mir names the 518 MIR columns, musicnn the network's"
        " 450 (e.g. mfcc+musicnn)",
    )
    parser.add_argument(
        "--pca-components",
        type=non_negative_int,
        default=THESIS_PCA_COMPONENTS,
        metavar="N",
        help="components of the 'pca' feature set, 0 leaves it out (default %(default)s)",
    )
    parser.add_argument(
        "--feature-sets",
        type=comma_list(),
        metavar="NAME,...",
        help="run only these feature sets: families, combinations, all, selected, pca,"
        " musicnn, mir+musicnn",
    )
    parser.add_argument(
        "--algorithms",
        type=comma_list(choices=ALGORITHMS),
        metavar="NAME,...",
        help=f"run only these algorithms, of {', '.join(ALGORITHMS)}",
    )
    parser.add_argument(
        "--max-train-rows",
        type=positive_int,
        default=DEFAULT_MAX_TRAIN_ROWS,
        metavar="N",
        help="most training tracks sampled and broadcast (default %(default)s)",
    )
    parser.add_argument(
        "--max-test-rows",
        type=positive_int,
        default=DEFAULT_MAX_TEST_ROWS,
        metavar="N",
        help="most test tracks sampled and broadcast (default %(default)s)",
    )
    parser.add_argument(
        "--slow-kernel-rows",
        type=non_negative_int,
        default=DEFAULT_SLOW_KERNEL_ROWS,
        metavar="N",
        help=f"most training tracks of the {' and '.join(SLOW_KERNELS)} cells, 0 for no limit"
        " (default %(default)s)",
    )
    parser.add_argument(
        "--cell-timeout",
        type=positive_float,
        default=DEFAULT_CELL_TIMEOUT,
        metavar="SECONDS",
        help="time limit of each cell's fit and scoring (default %(default)s)",
    )
    return parser


def compare(spark: SparkSession, args: argparse.Namespace, config: Config) -> None:
    results, paths = run(
        spark,
        features=args.features,
        labels=args.labels,
        output=args.output,
        columns_file=args.columns_file,
        combinations=args.combinations,
        pca_components=args.pca_components,
        feature_sets=args.feature_sets,
        algorithms=args.algorithms,
        max_train_rows=args.max_train_rows,
        max_test_rows=args.max_test_rows,
        slow_kernel_rows=args.slow_kernel_rows,
        cell_timeout=args.cell_timeout,
        seed=args.seed,
    )
    counts = results["status"].value_counts()
    print(
        f"{len(results)} cells: "
        + ", ".join(f"{counts.get(status, 0)} {status}" for status in ("ok", "error", "timeout"))
    )
    print("accuracy (%):")
    print(pivot(results, "accuracy", scale=100).round(2).to_string())
    for path in paths.values():
        print(f"wrote {path}")


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one."""
    return run_job(make_parser(), compare, argv, spark=spark)


if __name__ == "__main__":
    sys.exit(main())
