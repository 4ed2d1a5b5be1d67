"""Labels job: FMA's tracks.csv and genres.csv to a clean Parquet label table.

python jobs/prepare_labels.py --metadata fma_metadata --output out/labels
spark-submit jobs/prepare_labels.py --metadata s3a://bucket/fma_metadata \
    --output s3a://bucket/labels
"""

from __future__ import annotations

import argparse
import sys

from fmagenre.labels.genre_tree import GenreTreeError
from fmagenre.labels.imputation import (
    DEFAULT_SEED,
    DEFAULT_TEST_FRACTION,
    LabelError,
    build_label_table,
    format_summary,
)
from fmagenre.labels.metadata import MetadataFormatError
from fmagenre.platform.config import (
    ConfigError,
    add_spark_arguments,
    load_config,
    parse_spark_overrides,
)
from fmagenre.platform.session import build_session
from fmagenre.tables.label_table import read_metadata, write_label_table

EXIT_BAD_INPUT = 1  # invalid configuration, or metadata not in FMA's format or not labellable
EXIT_BAD_PATH = 2  # a path is missing, or the output exists without --overwrite


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="prepare_labels",
        description=(
            "Build the label table of the FMA corpus: one top-level genre per track (FMA's"
            " genre_top, else the most frequent root of its genres_all), its source, the finer"
            " genres and a train/test split. Writes Parquet with _summary.json inside it, and"
            " prints the summary."
        ),
        epilog=(
            f"Exit status: 0 done, {EXIT_BAD_INPUT} invalid configuration, or metadata not in"
            f" FMA's format or not labellable, {EXIT_BAD_PATH} missing path or existing output."
        ),
    )
    parser.add_argument(
        "--metadata",
        required=True,
        metavar="DIR",
        help="directory with FMA's tracks.csv and genres.csv (unzipped fma_metadata), any"
        " Hadoop path (local, file://, hdfs://, s3://, s3a://)",
    )
    parser.add_argument(
        "--output",
        required=True,
        metavar="PATH",
        help="Parquet directory to write (local, hdfs://, s3a://...); its summary is written"
        " inside as _summary.json, which Parquet readers skip",
    )
    parser.add_argument(
        "--seed",
        type=_seed,
        default=DEFAULT_SEED,
        help="seed of the imputation tie-breaks and of the stratified split (default %(default)s)",
    )
    parser.add_argument(
        "--test-fraction",
        type=_fraction,
        default=DEFAULT_TEST_FRACTION,
        metavar="F",
        help="share of each top-level genre put in test by the stratified split (default"
        " %(default)s, the thesis' 11,121 of 104,343 tracks); ignored with --official-split",
    )
    parser.add_argument(
        "--official-split",
        action="store_true",
        help="use FMA's set.split instead (training and validation to train, test to test)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing table",
    )
    add_spark_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        conf, overrides = load_config(args.config).spark, parse_spark_overrides(args.conf)
    except ConfigError as error:
        print(f"prepare_labels: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    spark = build_session(
        "fmagenre-prepare-labels", master=args.master, conf=conf, overrides=overrides
    )
    try:
        result = build_label_table(
            *read_metadata(spark, args.metadata),
            seed=args.seed,
            test_fraction=args.test_fraction,
            use_official_split=args.official_split,
        )
    except FileNotFoundError as error:
        print(f"prepare_labels: {error}", file=sys.stderr)
        return EXIT_BAD_PATH
    except (MetadataFormatError, GenreTreeError, LabelError) as error:
        print(f"prepare_labels: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT

    try:
        summary_file = write_label_table(
            spark, result.table, result.summary, args.output, overwrite=args.overwrite
        )
    except FileExistsError as error:
        print(f"prepare_labels: {error}", file=sys.stderr)
        return EXIT_BAD_PATH
    print(format_summary(result.summary))
    print(f"wrote {args.output} and {summary_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
