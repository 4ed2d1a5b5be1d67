"""Export job: the feature table's ok rows as a CSV in FMA's features.csv layout.

python jobs/export_fma_csv.py --input out/features --csv out/features.csv

The file reads back with FMA's own loader: pd.read_csv(path, index_col=0, header=[0, 1, 2]).
"""

from __future__ import annotations

import argparse
import sys

from fmagenre.platform.config import (
    ConfigError,
    add_spark_arguments,
    load_config,
    parse_spark_overrides,
)
from fmagenre.platform.session import build_session
from fmagenre.tables.fma_csv import export_fma_csv

EXIT_BAD_CONFIG = 1  # invalid configuration
EXIT_BAD_PATH = 2  # the CSV exists and --overwrite was not given


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="export_fma_csv",
        description=(
            "Write the 'ok' rows of a feature table as FMA's features.csv: 3-row header"
            " (feature, statistics, number), track_id index, values as %%.10e, one row per"
            " track id. Rows with errors or without a track id are left out and counted."
        ),
        epilog=f"Exit status: 0 done, {EXIT_BAD_CONFIG} invalid configuration,"
        f" {EXIT_BAD_PATH} existing CSV without --overwrite.",
    )
    parser.add_argument(
        "--input", required=True, metavar="PATH", help="feature table directory (any Hadoop path)"
    )
    parser.add_argument("--csv", required=True, metavar="FILE", help="local CSV file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing CSV")
    add_spark_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one."""
    args = parse_args(argv)
    try:
        conf, overrides = load_config(args.config).spark, parse_spark_overrides(args.conf)
    except ConfigError as error:
        print(f"export_fma_csv: {error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if spark is None:
        spark = build_session(
            "fmagenre-export-fma-csv", master=args.master, conf=conf, overrides=overrides
        )
    try:
        result = export_fma_csv(spark, args.input, args.csv, overwrite=args.overwrite)
    except FileExistsError as error:
        print(f"export_fma_csv: {error}", file=sys.stderr)
        return EXIT_BAD_PATH
    print(
        f"wrote {result['tracks']} tracks to {result['csv']}; left out {result['errors']} error"
        f" rows, {result['no_track_id']} rows without a track id,"
        f" {result['duplicates']} duplicate track ids"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
