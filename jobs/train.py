"""Training job: feature and label tables to a saved voting ensemble with its test report.

python jobs/train.py --features out/features --labels out/labels --output out/model
spark-submit --conf spark.dynamicAllocation.enabled=false jobs/train.py --config conf/emr.toml \
    --features s3a://bucket/features --labels s3a://bucket/labels --output s3a://bucket/model
"""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import SparkSession

from fmagenre.audio.names import FAMILY_SIZES
from fmagenre.ml.classifiers import SVC_IMPLEMENTATIONS
from fmagenre.ml.report import console_summary
from fmagenre.ml.training import CLASS_WEIGHTS, VOTE_CHOICES, read_options, run
from fmagenre.ml.voting import CLASS_BIASES
from fmagenre.platform.config import Config
from fmagenre.platform.jobs import (
    comma_list,
    hadoop_path,
    int_range,
    job_parser,
    non_negative_int,
    positive_int,
    run_job,
)


def make_parser() -> argparse.ArgumentParser:
    parser = job_parser(
        "train",
        "Train the genre classifier: join the ok feature rows with their labels, run a"
        " random search (Cohen's kappa, stratified k-fold) for logistic regression, linear"
        " SVC (one-vs-rest) and XGBoost on a stratified sample of the training split, fit"
        " the best of each on the whole training split, and save their voting ensemble"
        " (hard, kappa-weighted or soft vote, chosen on the out-of-fold predictions) to"
        " OUTPUT/model, with metrics.json, report.md and confusion matrices"
        " of the test split beside it.",
        notes="XGBoost trains in barrier mode: outside local mode, run with"
        " --conf spark.dynamicAllocation.enabled=false and a fixed number of executors.",
    )
    parser.add_argument(
        "--features",
        type=hadoop_path,
        required=True,
        metavar="PATH",
        help="feature table (jobs/extract_features.py) or Parquet with the feature columns",
    )
    parser.add_argument(
        "--labels",
        type=hadoop_path,
        required=True,
        metavar="PATH",
        help="label table (jobs/prepare_labels.py)",
    )
    parser.add_argument(
        "--output",
        type=hadoop_path,
        required=True,
        metavar="MODEL_DIR",
        help="directory to create: the model in MODEL_DIR/model, the report beside it",
    )
    features = parser.add_mutually_exclusive_group()
    features.add_argument(
        "--families",
        type=comma_list(),
        metavar="LIST",
        help="comma-separated feature families: mir (the 518 MIR columns), musicnn (the"
        " pretrained network's 450: a table extracted with --families mir,musicnn) or MIR"
        f" families ({', '.join(FAMILY_SIZES)}); e.g. mir,musicnn; default mir",
    )
    features.add_argument(
        "--columns-file",
        type=hadoop_path,
        metavar="FILE",
        help="text file (any Hadoop path) listing the feature columns (e.g. mfcc_mean_01),"
        " separated by commas or white space, # comments",
    )
    parser.add_argument(
        "--candidates",
        type=positive_int,
        default=10,
        metavar="N",
        help="random-search candidates per model (default %(default)s)",
    )
    parser.add_argument(
        "--folds",
        type=int_range(2),
        default=3,
        metavar="K",
        help="stratified cross-validation folds (default %(default)s); as in scikit-learn's"
        " StratifiedKFold, a genre with fewer training tracks than K is missing from some"
        " validation folds, with a warning (it needs 2)",
    )
    parser.add_argument(
        "--search-rows",
        type=non_negative_int,
        default=10_000,
        metavar="N",
        help="training tracks in the stratified search sample, 0 for all; the best candidates"
        " are then fitted on every training track (default %(default)s)",
    )
    parser.add_argument(
        "--search-space",
        type=hadoop_path,
        metavar="TOML",
        help="TOML file (any Hadoop path) replacing search ranges: [lr] maxIter = [10, 50], or"
        " one value to fix a parameter",
    )
    parser.add_argument(
        "--class-weights",
        choices=CLASS_WEIGHTS,
        default="none",
        help="balanced: weigh each genre's tracks by n / (genres x genre's tracks); sqrt: by"
        " a weight proportional to 1 / sqrt(genre's tracks), mean 1; no resampling (default"
        " %(default)s)",
    )
    parser.add_argument(
        "--vote",
        choices=VOTE_CHOICES,
        default="auto",
        help="the ensemble's vote: hard (one vote per model), kappa (votes weighted by"
        " cross-validated kappa), soft (mean of calibrated class probabilities, weights fitted"
        " on the out-of-fold log loss), auto (the best of the three, unbiased, by cross-validated"
        " kappa on the out-of-fold predictions; a soft vote then gets --class-bias)"
        " (default %(default)s)",
    )
    parser.add_argument(
        "--class-bias",
        choices=CLASS_BIASES,
        default="f1",
        help="the soft vote's per-genre biases, tuned on the out-of-fold predictions: kappa"
        " maximises kappa, which lets minority genres win where kappa pays for it; f1"
        " maximises macro F1 within 2 points of the unbiased vote's accuracy (default"
        " %(default)s)",
    )
    parser.add_argument(
        "--xgb-workers",
        type=positive_int,
        metavar="N",
        help="XGBoost barrier tasks, all running at once; default: the default parallelism"
        " (set it on a cluster: executors x cores / spark.task.cpus)",
    )
    parser.add_argument(
        "--search-parallelism",
        type=positive_int,
        metavar="N",
        help="search fits (candidate x fold) run at once from driver threads; with more than"
        " one, each XGBoost search fit is one task; default: the default parallelism",
    )
    parser.add_argument(
        "--svc",
        choices=SVC_IMPLEMENTATIONS,
        default="lockstep",
        help="lockstep: all one-vs-rest SVMs in one Spark job per iteration; spark: Spark's"
        " OneVsRest(LinearSVC), one job per genre and step, slower (default %(default)s)",
    )
    parser.add_argument(
        "--windows",
        action="store_true",
        help="FEATURES holds windows of tracks (OUTPUT/windows of jobs/segments.py"
        " --keep-features), several per track: a model for genre timelines; the search"
        " sample and the folds take whole tracks, --search-rows counts tracks, the test"
        " scores count windows",
    )
    parser.add_argument(
        "--with-network",
        type=hadoop_path,
        metavar="MODEL_DIR",
        help="output directory of jobs/train_cnn.py: the spectrogram network votes as a fourth"
        " member (FEATURES must hold its patches: jobs/extract_features.py --patches); the"
        " vote is tuned on the training tracks it was not trained on, and the report also"
        " gives the ensemble without it",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of samples, folds, candidates"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing MODEL_DIR")
    return parser


def train(spark: SparkSession, args: argparse.Namespace, config: Config) -> None:
    options = read_options(
        spark,
        families=args.families,
        columns_file=args.columns_file,
        search_space=args.search_space,
        candidates=args.candidates,
        folds=args.folds,
        seed=args.seed,
        class_weights=args.class_weights,
        vote=args.vote,
        class_bias=args.class_bias,
        search_rows=args.search_rows,
        windows=args.windows,
        xgb_workers=args.xgb_workers,
        search_parallelism=args.search_parallelism,
        svc=args.svc,
        overwrite=args.overwrite,
    )
    external = []
    if args.with_network:
        from fmagenre.network.inference import network_member

        external.append(network_member(spark, args.with_network))
    metrics = run(
        spark,
        features=args.features,
        labels=args.labels,
        output=args.output,
        options=options,
        external=external,
    )
    print(console_summary(metrics))


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one."""
    return run_job(make_parser(), train, argv, spark=spark)


if __name__ == "__main__":
    sys.exit(main())
