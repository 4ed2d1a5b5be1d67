"""Prediction job: the genre of each MP3 of a folder, or of each row of a feature table.

python jobs/predict.py --model out/model --input new_mp3s/ --output out/predictions
spark-submit jobs/predict.py --config conf/emr.toml --model s3a://bucket/model \
    --input s3a://bucket/features --output s3a://bucket/predictions
"""

from __future__ import annotations

import argparse
import logging
import sys

from fmagenre.extraction.driver import session_conf
from fmagenre.ml.prediction import INPUT_FORMATS, PredictionError, format_summary, run
from fmagenre.ml.training_data import TrainingDataError
from fmagenre.platform.config import (
    ConfigError,
    add_spark_arguments,
    load_config,
    parse_spark_overrides,
)
from fmagenre.platform.session import build_session

EXIT_BAD_CONFIG = 1  # the configuration file or a Spark property
EXIT_BAD_INPUT = 2  # no model, an unusable input, or an existing output


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="predict",
        description=(
            "Predict the genre of every audio file under INPUT (features extracted on the fly,"
            " as jobs/extract_features.py does) or of every row of a feature table or Parquet,"
            " with the ensemble saved by jobs/train.py. Writes Parquet: track_id, path,"
            " status, error, genre, prediction (class index) and each model's vote; files"
            " that cannot be decoded keep their error and get a null genre."
        ),
        epilog=(
            f"Exit status: 0 done (error rows included), {EXIT_BAD_CONFIG} invalid"
            f" configuration, {EXIT_BAD_INPUT} missing model or input, unusable input or"
            " existing output."
        ),
    )
    parser.add_argument(
        "--model", required=True, metavar="MODEL_DIR", help="output directory of jobs/train.py"
    )
    parser.add_argument(
        "--input",
        required=True,
        metavar="PATH",
        help="folder of audio files (searched recursively), feature table or Parquet",
    )
    parser.add_argument("--output", required=True, metavar="PATH", help="Parquet to write")
    parser.add_argument(
        "--input-format",
        choices=INPUT_FORMATS,
        default="auto",
        help="auto: a feature table or a folder of .parquet files is read as features,"
        " anything else as audio (default %(default)s)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_spark_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one.

    Audio input is extracted with the configuration's ``[extract]`` settings.
    """
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # a line per closed connection
    try:
        config = load_config(args.config)
        conf = session_conf(config.spark, config.extract)
        overrides = parse_spark_overrides(args.conf)
    except ConfigError as error:
        print(f"predict: {error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if spark is None:
        spark = build_session(
            "fmagenre-predict", master=args.master, conf=conf, overrides=overrides
        )
    try:
        summary = run(
            spark,
            model_dir=args.model,
            input=args.input,
            output=args.output,
            input_format=args.input_format,
            extract=config.extract,
            overwrite=args.overwrite,
        )
    except (PredictionError, TrainingDataError, FileExistsError, FileNotFoundError) as error:
        print(f"predict: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
