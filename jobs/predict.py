"""Prediction job: the genre of each MP3 of a folder, or of each row of a feature table.

python jobs/predict.py --model out/model --input new_mp3s/ --output out/predictions
spark-submit jobs/predict.py --config conf/emr.toml --model s3a://bucket/model \
    --input s3a://bucket/features --output s3a://bucket/predictions
"""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import SparkSession

from fmagenre.extraction.driver import session_conf
from fmagenre.ml.prediction import INPUT_FORMATS, format_summary, run
from fmagenre.network.inference import load_predictor
from fmagenre.platform.config import Config
from fmagenre.platform.jobs import hadoop_path, job_parser, run_job


def make_parser() -> argparse.ArgumentParser:
    parser = job_parser(
        "predict",
        "Predict the genre of every audio file under INPUT (features extracted on the fly,"
        " as jobs/extract_features.py does, with the configuration's [extract] settings) or"
        " of every row of a feature table or Parquet, with the ensemble saved by"
        " jobs/train.py or the network saved by jobs/train_cnn.py (the kind is read from the"
        " directory; a network, or an ensemble with the network as a voter, needs the dl"
        " extra, and audio is also cut into log-mel patches). Writes Parquet: track_id, path,"
        " status, error, genre, prediction (class index), each model's vote and its scores"
        " (genre -> probability; null for the SVC); files that cannot be decoded keep their"
        " error and get a null genre.",
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
        metavar="PATH",
        help="folder of audio files (searched recursively), feature table or Parquet",
    )
    parser.add_argument(
        "--output", type=hadoop_path, required=True, metavar="PATH", help="Parquet to write"
    )
    parser.add_argument(
        "--input-format",
        choices=INPUT_FORMATS,
        default="auto",
        help="auto: a feature table or a folder of .parquet files is read as features,"
        " anything else as audio (default %(default)s)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    return parser


def predict(spark: SparkSession, args: argparse.Namespace, config: Config) -> None:
    summary = run(
        spark,
        model_dir=args.model,
        input=args.input,
        output=args.output,
        input_format=args.input_format,
        extract=config.extract,
        overwrite=args.overwrite,
        scorer=load_predictor(spark, args.model),
    )
    print(format_summary(summary))


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one."""
    return run_job(
        make_parser(),
        predict,
        argv,
        spark=spark,
        spark_conf=lambda config: session_conf(config.spark, config.extract),
    )


if __name__ == "__main__":
    sys.exit(main())
