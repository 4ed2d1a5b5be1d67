"""Training job: feature and label tables to a saved voting ensemble with its test report.

python jobs/train.py --features out/features --labels out/labels --output out/model
spark-submit --conf spark.dynamicAllocation.enabled=false jobs/train.py --config conf/emr.toml \
    --features s3a://bucket/features --labels s3a://bucket/labels --output s3a://bucket/model
"""

from __future__ import annotations

import argparse
import logging
import sys
from functools import partial

from fmagenre.audio.feature_selection import FeatureSelectionError, select_feature_columns
from fmagenre.audio.names import FAMILY_SIZES
from fmagenre.ml.classifiers import SEARCH_SPACES, BarrierModeError
from fmagenre.ml.report import console_summary
from fmagenre.ml.search_space import SearchSpaceError, read_search_space
from fmagenre.ml.training import CLASS_WEIGHTS, TrainOptions, run
from fmagenre.ml.training_data import TrainingDataError
from fmagenre.platform.config import (
    ConfigError,
    add_spark_arguments,
    load_config,
    parse_spark_overrides,
)
from fmagenre.platform.hadoop import read_bytes
from fmagenre.platform.session import build_session

EXIT_BAD_CONFIG = 1  # the configuration file, a Spark property, or dynamic allocation
EXIT_BAD_INPUT = 2  # an option, the feature set, the inputs, or an existing output


def _at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text}")
        return value

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="train",
        description=(
            "Train the genre classifier: join the ok feature rows with their labels, run a"
            " random search (Cohen's kappa, stratified k-fold) for logistic regression, linear"
            " SVC (one-vs-rest) and XGBoost on a stratified sample of the training split, fit"
            " the best of each on the whole training split, and save their hard-voting"
            " ensemble to OUTPUT/model, with metrics.json, report.md and confusion matrices"
            " of the test split beside it."
        ),
        epilog=(
            f"Exit status: 0 done, {EXIT_BAD_CONFIG} invalid configuration or dynamic"
            f" allocation (XGBoost needs static executors), {EXIT_BAD_INPUT} invalid option,"
            " unknown family or column, unusable inputs, or existing output."
        ),
    )
    parser.add_argument(
        "--features",
        required=True,
        metavar="PATH",
        help="feature table (jobs/extract_features.py) or Parquet with the feature columns",
    )
    parser.add_argument(
        "--labels", required=True, metavar="PATH", help="label table (jobs/prepare_labels.py)"
    )
    parser.add_argument(
        "--output",
        required=True,
        metavar="MODEL_DIR",
        help="directory to create: the model in MODEL_DIR/model, the report beside it",
    )
    features = parser.add_mutually_exclusive_group()
    features.add_argument(
        "--families",
        metavar="LIST",
        help=f"comma-separated MIR families to use ({', '.join(FAMILY_SIZES)}); default all",
    )
    features.add_argument(
        "--columns-file",
        metavar="FILE",
        help="text file (any Hadoop path) listing the feature columns (e.g. mfcc_mean_01),"
        " separated by commas or white space, # comments",
    )
    parser.add_argument(
        "--candidates",
        type=_at_least(1),
        default=10,
        metavar="N",
        help="random-search candidates per model (default %(default)s)",
    )
    parser.add_argument(
        "--folds",
        type=_at_least(2),
        default=3,
        metavar="K",
        help="stratified cross-validation folds (default %(default)s); as in scikit-learn's"
        " StratifiedKFold, a genre with fewer training tracks than K is missing from some"
        " validation folds, with a warning (it needs 2)",
    )
    parser.add_argument(
        "--search-rows",
        type=_at_least(0),
        default=10_000,
        metavar="N",
        help="training tracks in the stratified search sample, 0 for all; the best candidates"
        " are then fitted on every training track (default %(default)s)",
    )
    parser.add_argument(
        "--search-space",
        metavar="TOML",
        help="TOML file (any Hadoop path) replacing search ranges: [lr] maxIter = [10, 50], or"
        " one value to fix a parameter",
    )
    parser.add_argument(
        "--class-weights",
        choices=CLASS_WEIGHTS,
        default="none",
        help="balanced: weigh each genre's tracks by n / (genres x genre's tracks); no"
        " resampling (default %(default)s)",
    )
    parser.add_argument(
        "--xgb-workers",
        type=_at_least(1),
        metavar="N",
        help="XGBoost barrier tasks, all running at once; default: the default parallelism"
        " (set it on a cluster: executors x cores / spark.task.cpus)",
    )
    parser.add_argument(
        "--seed", type=_at_least(0), default=0, help="seed of samples, folds, candidates"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing MODEL_DIR")
    add_spark_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # a line per closed connection
    try:
        conf, overrides = load_config(args.config).spark, parse_spark_overrides(args.conf)
    except ConfigError as error:
        print(f"train: {error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if spark is None:
        spark = build_session("fmagenre-train", master=args.master, conf=conf, overrides=overrides)
    read = partial(read_bytes, spark)  # the columns and search-space files: any Hadoop path
    try:
        families = args.families.split(",") if args.families is not None else None
        columns = select_feature_columns(
            families=families, columns_file=args.columns_file, read=read
        )
        spaces = (
            read_search_space(args.search_space, SEARCH_SPACES, read=read)
            if args.search_space
            else SEARCH_SPACES
        )
    except (FeatureSelectionError, SearchSpaceError) as error:
        print(f"train: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    options = TrainOptions(
        columns=tuple(columns),
        candidates=args.candidates,
        folds=args.folds,
        seed=args.seed,
        class_weights=args.class_weights,
        search_rows=args.search_rows,
        xgb_workers=args.xgb_workers,
        search_spaces=spaces,
        overwrite=args.overwrite,
    )
    try:
        metrics = run(
            spark, features=args.features, labels=args.labels, output=args.output, options=options
        )
    except BarrierModeError as error:
        print(f"train: {error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except (TrainingDataError, FileExistsError) as error:
        print(f"train: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(console_summary(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
