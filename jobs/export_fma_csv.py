"""Export job: the feature table's ok rows as a CSV in FMA's features.csv layout.

python jobs/export_fma_csv.py --input out/features --csv out/features.csv

The file reads back with FMA's own loader: pd.read_csv(path, index_col=0, header=[0, 1, 2]).
"""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import SparkSession

from fmagenre.platform.config import Config
from fmagenre.platform.jobs import driver_path, hadoop_path, job_parser, run_job
from fmagenre.tables.fma_csv import export_fma_csv


def make_parser() -> argparse.ArgumentParser:
    parser = job_parser(
        "export_fma_csv",
        "Write the 'ok' rows of a feature table as FMA's features.csv: 3-row header (feature,"
        " statistics, number), track_id index, values as %.10e, one row per track id. Rows"
        " with errors or without a track id are left out and counted.",
    )
    parser.add_argument(
        "--input",
        type=hadoop_path,
        required=True,
        metavar="PATH",
        help="feature table directory (any Hadoop path)",
    )
    parser.add_argument(
        "--csv", type=driver_path, required=True, metavar="FILE", help="local CSV file to write"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing CSV")
    return parser


def export(spark: SparkSession, args: argparse.Namespace, config: Config) -> None:
    result = export_fma_csv(spark, args.input, args.csv, overwrite=args.overwrite)
    print(
        f"wrote {result['tracks']} tracks to {result['csv']}; left out {result['errors']} error"
        f" rows, {result['no_track_id']} rows without a track id,"
        f" {result['duplicates']} duplicate track ids"
    )


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one."""
    return run_job(make_parser(), export, argv, spark=spark)


if __name__ == "__main__":
    sys.exit(main())
