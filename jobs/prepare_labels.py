"""Labels job: FMA's tracks.csv and genres.csv to a clean Parquet label table.

python jobs/prepare_labels.py --metadata fma_metadata --output out/labels
spark-submit jobs/prepare_labels.py --metadata s3a://bucket/fma_metadata \
    --output s3a://bucket/labels
"""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import SparkSession

from fmagenre.labels.imputation import (
    DEFAULT_SEED,
    DEFAULT_TEST_FRACTION,
    build_label_table,
    format_summary,
)
from fmagenre.platform.config import Config
from fmagenre.platform.jobs import fraction, hadoop_path, job_parser, non_negative_int, run_job
from fmagenre.tables.label_table import read_metadata, write_label_table


def make_parser() -> argparse.ArgumentParser:
    parser = job_parser(
        "prepare_labels",
        "Build the label table of the FMA corpus: one top-level genre per track (FMA's"
        " genre_top, else the most frequent root of its genres_all), its source, the finer"
        " genres and a train/test split. Writes Parquet with _summary.json inside it, and"
        " prints the summary.",
    )
    parser.add_argument(
        "--metadata",
        type=hadoop_path,
        required=True,
        metavar="DIR",
        help="directory with FMA's tracks.csv and genres.csv (unzipped fma_metadata), any"
        " Hadoop path (local, file://, hdfs://, s3://, s3a://)",
    )
    parser.add_argument(
        "--output",
        type=hadoop_path,
        required=True,
        metavar="PATH",
        help="Parquet directory to write (local, hdfs://, s3a://...); its summary is written"
        " inside as _summary.json, which Parquet readers skip",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=DEFAULT_SEED,
        help="seed of the imputation tie-breaks and of the stratified split (default %(default)s)",
    )
    parser.add_argument(
        "--test-fraction",
        type=fraction,
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
    parser.add_argument("--overwrite", action="store_true", help="replace an existing table")
    return parser


def prepare(spark: SparkSession, args: argparse.Namespace, config: Config) -> None:
    result = build_label_table(
        *read_metadata(spark, args.metadata),
        seed=args.seed,
        test_fraction=args.test_fraction,
        use_official_split=args.official_split,
    )
    summary_file = write_label_table(
        spark, result.table, result.summary, args.output, overwrite=args.overwrite
    )
    print(format_summary(result.summary))
    print(f"wrote {args.output} and {summary_file}")


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one."""
    return run_job(make_parser(), prepare, argv, spark=spark)


if __name__ == "__main__":
    sys.exit(main())
