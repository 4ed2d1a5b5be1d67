"""Import job: FMA's published features.csv into the Parquet feature table.

python jobs/import_fma_features.py --csv fma_metadata/features.csv --output out/fma_features
"""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import SparkSession

from fmagenre.platform.config import Config
from fmagenre.platform.jobs import hadoop_path, job_parser, run_job
from fmagenre.tables.fma_csv import import_fma_csv


def make_parser() -> argparse.ArgumentParser:
    parser = job_parser(
        "import_fma_features",
        "Read FMA's features.csv (3-row header feature/statistics/number, then a track_id"
        " row), check every header column and data row, and publish it as a run of the"
        " feature table: status 'ok', no path, extractor_version 'fma-features.csv'.",
    )
    parser.add_argument(
        "--csv",
        type=hadoop_path,
        required=True,
        metavar="PATH",
        help="FMA's features.csv (any Hadoop path)",
    )
    parser.add_argument(
        "--output",
        type=hadoop_path,
        required=True,
        metavar="PATH",
        help="feature table directory to publish to",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="once imported, the table holds these rows alone and the earlier runs are deleted"
        " (otherwise the import is added as a new run, and replaces earlier rows of the same"
        " track ids)",
    )
    return parser


def import_csv(spark: SparkSession, args: argparse.Namespace, config: Config) -> None:
    summary = import_fma_csv(spark, args.csv, args.output, overwrite=args.overwrite)
    print(f"imported {summary['tracks']} tracks from {args.csv} into {args.output}")
    print(f"run {summary['run_id']}, summary in {summary['summary_file']}")


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one."""
    return run_job(make_parser(), import_csv, argv, spark=spark)


if __name__ == "__main__":
    sys.exit(main())
