"""Watch job: classify the audio files that land in a folder, as they land, exactly once.

spark-submit jobs/watch.py --model out/model --input landing/ --output out/watch \
    --checkpoint out/watch-checkpoint
spark-submit jobs/watch.py --config conf/emr.toml --model s3a://bucket/model \
    --input s3a://bucket/landing --output s3a://bucket/watch \
    --checkpoint s3a://bucket/watch-checkpoint
"""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import SparkSession

from fmagenre.extraction.driver import session_conf
from fmagenre.network.inference import load_predictor
from fmagenre.platform.config import Config
from fmagenre.platform.jobs import (
    hadoop_path,
    int_range,
    job_parser,
    non_negative_float,
    run_job,
)
from fmagenre.watch.ledger import FEATURES, PREDICTIONS, STATUS
from fmagenre.watch.stream import WatchOptions, format_status, run_watch

DEFAULTS = WatchOptions()


def make_parser() -> argparse.ArgumentParser:
    parser = job_parser(
        "watch",
        "Classify every audio file that lands under INPUT (searched recursively for the"
        " configuration's [extract] glob) with the model of jobs/train.py or"
        " jobs/train_cnn.py, as a Spark Structured Streaming query: each micro-batch extracts"
        " the new files as jobs/extract_features.py does (and the patches or musicnn values"
        f" the model needs) into OUTPUT/{FEATURES} (a feature table), predicts, and commits"
        f" one Parquet file of predictions to OUTPUT/{PREDICTIONS} (the prediction job's"
        " columns, plus file_size, modified_at, batch, predicted_at and latency_s). Every file"
        " version (path, size, modification time) gets exactly one row, also across a kill"
        " and a restart: a file replaced under its name is classified again; a bad file gets"
        " an error row and the stream goes on. Runs until stopped (Ctrl-C, a kill, an EMR"
        " step cancelled: safe at any moment); --once classifies what is there and stops."
        f" OUTPUT/{STATUS} says where it stands.",
        notes="Uploads: write each file under a hidden or non-matching name (.x.mp3, x.mp3.part,"
        " hdfs dfs -put's x.mp3._COPYING_) and rename it when complete, or upload to S3 (an"
        " object appears whole); a file copied in place is read once its modification time"
        " is --min-age seconds old. A landing folder that does not exist yet is waited for"
        " (with --once: exit 2).",
    )
    parser.add_argument(
        "--model",
        type=hadoop_path,
        required=True,
        metavar="MODEL_DIR",
        help="output directory of jobs/train.py or jobs/train_cnn.py",
    )
    parser.add_argument(
        "--input",
        type=hadoop_path,
        required=True,
        metavar="LANDING_PATH",
        help="the folder where audio files land",
    )
    parser.add_argument(
        "--output",
        type=hadoop_path,
        required=True,
        metavar="DIR",
        help=f"where {PREDICTIONS}/, {FEATURES}/ and {STATUS} go (new, or this watch's own)",
    )
    parser.add_argument(
        "--checkpoint",
        type=hadoop_path,
        required=True,
        metavar="PATH",
        help="the streaming query's checkpoint folder (one per watch; keep it across restarts)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="classify the files there now (Spark's availableNow trigger), then stop",
    )
    parser.add_argument(
        "--max-files",
        type=int_range(1),
        default=DEFAULTS.max_files,
        metavar="N",
        help="files per micro-batch at most; a backlog goes in batches of N (default %(default)s)",
    )
    parser.add_argument(
        "--interval",
        type=non_negative_float,
        default=DEFAULTS.interval_s,
        metavar="SECONDS",
        help="seconds between micro-batch starts (default %(default)s)",
    )
    parser.add_argument(
        "--min-age",
        type=non_negative_float,
        default=DEFAULTS.min_age_s,
        metavar="SECONDS",
        help="a file is read once its modification time is this old, so that an upload still"
        " being copied in place is never read half (default %(default)s)",
    )
    parser.add_argument(
        "--view-every",
        type=non_negative_float,
        default=DEFAULTS.view_every_s,
        metavar="SECONDS",
        help=f"seconds between refreshes of OUTPUT/{FEATURES}'s view, which rewrite it whole"
        " (default %(default)s; also refreshed at the end)",
    )
    parser.add_argument(
        "--similar",
        type=hadoop_path,
        metavar="INDEX",
        help="a similar-track index of jobs/similar.py: each prediction row also lists the"
        " file's nearest indexed tracks (column similar)",
    )
    parser.add_argument(
        "--similar-k",
        type=int_range(1),
        default=DEFAULTS.similar_k,
        metavar="K",
        help="nearest tracks listed with --similar (default %(default)s)",
    )
    return parser


def watch(spark: SparkSession, args: argparse.Namespace, config: Config) -> None:
    status = run_watch(
        spark,
        model_dir=args.model,
        input=args.input,
        output=args.output,
        checkpoint=args.checkpoint,
        extract=config.extract,
        options=WatchOptions(
            max_files=args.max_files,
            interval_s=args.interval,
            min_age_s=args.min_age,
            view_every_s=args.view_every,
            similar=args.similar,
            similar_k=args.similar_k,
        ),
        once=args.once,
        predictor=load_predictor(spark, args.model),
    )
    print(format_status(status))


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one."""
    return run_job(
        make_parser(),
        watch,
        argv,
        spark=spark,
        spark_conf=lambda config: session_conf(config.spark, config.extract),
    )


if __name__ == "__main__":
    sys.exit(main())
