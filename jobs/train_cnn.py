"""Network training job: log-mel patches and labels to a saved CNN with its test report.

python jobs/train_cnn.py --config conf/local.toml --patches out/features --labels out/labels \
    --output out/network
spark-submit --conf spark.dynamicAllocation.enabled=false jobs/train_cnn.py --config emr.toml \
    --patches s3a://bucket/features --labels s3a://bucket/labels --output s3a://bucket/network
"""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import SparkSession

from fmagenre.ml.training_data import CLASS_WEIGHTS
from fmagenre.network import require_torch
from fmagenre.platform.config import Config, override
from fmagenre.platform.jobs import (
    fraction,
    hadoop_path,
    job_parser,
    non_negative_int,
    positive_float,
    positive_int,
    run_job,
)


def make_parser() -> argparse.ArgumentParser:
    parser = job_parser(
        "train_cnn",
        "Train the spectrogram network: a small CNN on the log-mel patches of a feature"
        " table, with PyTorch on Spark (TorchDistributor). Each process reads its own share of"
        " the table's Parquet files; a seeded share of each genre's training tracks (whole"
        " tracks) is held out for validation, and training stops when its Cohen's kappa has"
        " not improved for --patience epochs, keeping the best epoch. The label table's test"
        " split is then scored: a track's genre is the mean of its patches' log-probabilities."
        " Writes MODEL_DIR/network (weights, genres, patch settings, extractor version) and"
        " metrics.json, report.md and confusion_network.csv/png beside it. A checkpoint is"
        " written every epoch: after a kill, the same command resumes after the last one.",
        notes='Needs PyTorch: pip install "fmagenre[dl]" (the CPU build), or torch\'s CUDA'
        " build for --use-gpu. The processes come from the config's [network] section unless"
        " given here; outside local mode they run as Spark barrier tasks: run with --conf"
        " spark.dynamicAllocation.enabled=false.",
    )
    parser.add_argument(
        "--patches",
        type=hadoop_path,
        required=True,
        metavar="PATH",
        help="feature table with patches (jobs/extract_features.py), or Parquet with track_id"
        " and patches columns",
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
        help="model directory to create, or to resume after a kill (its _checkpoint)",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=30,
        metavar="N",
        help="most epochs (default %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=64,
        metavar="N",
        help="patches per batch in each process (default %(default)s)",
    )
    parser.add_argument(
        "--learning-rate",
        type=positive_float,
        default=1e-3,
        metavar="X",
        help="AdamW's learning rate (default %(default)s)",
    )
    parser.add_argument(
        "--patience",
        type=positive_int,
        default=5,
        metavar="N",
        help="stop after N epochs without a better validation kappa (default %(default)s)",
    )
    parser.add_argument(
        "--class-weights",
        choices=CLASS_WEIGHTS,
        default="none",
        help="loss weights by genre, as jobs/train.py: balanced n / (genres x genre's tracks),"
        " sqrt proportional to 1 / sqrt(genre's tracks) (default %(default)s)",
    )
    parser.add_argument(
        "--num-processes",
        type=non_negative_int,
        metavar="N",
        help="training processes, each reading its own Parquet files; 0: the default"
        " parallelism (default: [network] num_processes of --config, else 0)",
    )
    parser.add_argument(
        "--local-mode",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the processes on the driver's machine, or (--no-local-mode) as Spark barrier"
        " tasks on the executors (default: [network] local_mode, else local)",
    )
    parser.add_argument(
        "--use-gpu",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one GPU a process (nccl; torch's CUDA build), else CPUs with one thread a process"
        " (default: [network] use_gpu, else CPU)",
    )
    parser.add_argument(
        "--validation-fraction",
        type=fraction,
        default=0.1,
        metavar="X",
        help="share of each genre's training tracks held out for validation (default %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of the validation split, the weights and the batches (default %(default)s)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing model in MODEL_DIR, or another run's checkpoint",
    )
    return parser


def configure(args: argparse.Namespace, config: Config) -> Config:
    """The [network] section with the command line's values; torch checked before Spark."""
    require_torch()
    network = override(
        config.network,
        num_processes=args.num_processes,
        local_mode=args.local_mode,
        use_gpu=args.use_gpu,
    )
    return Config(spark=config.spark, extract=config.extract, emr=config.emr, network=network)


def train_cnn(spark: SparkSession, args: argparse.Namespace, config: Config) -> None:
    from fmagenre.network.report import console_summary
    from fmagenre.network.training import NetworkOptions, run

    options = NetworkOptions(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
        class_weights=args.class_weights,
        validation_fraction=args.validation_fraction,
        seed=args.seed,
        num_processes=config.network.num_processes,
        local_mode=config.network.local_mode,
        use_gpu=config.network.use_gpu,
        overwrite=args.overwrite,
    )
    metrics = run(
        spark, patches=args.patches, labels=args.labels, output=args.output, options=options
    )
    print(console_summary(metrics))


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one."""
    return run_job(make_parser(), train_cnn, argv, spark=spark, configure=configure)


if __name__ == "__main__":
    sys.exit(main())
