"""Import job: FMA's published features.csv into the Parquet feature table.

python jobs/import_fma_features.py --csv fma_metadata/features.csv --output out/fma_features
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
from fmagenre.tables.feature_table import OutputLayoutError
from fmagenre.tables.fma_csv import FmaCsvError, import_fma_csv

EXIT_BAD_INPUT = 1  # invalid configuration, or a CSV not in FMA's features.csv layout
EXIT_BAD_PATH = 2  # the CSV is missing, or the output is not a feature table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="import_fma_features",
        description=(
            "Read FMA's features.csv (3-row header feature/statistics/number, then a track_id"
            " row), check every header column and data row, and publish it as a run of the"
            " feature table: status 'ok', no path, extractor_version 'fma-features.csv'."
        ),
        epilog=(
            f"Exit status: 0 done, {EXIT_BAD_INPUT} invalid configuration or CSV layout,"
            f" {EXIT_BAD_PATH} missing CSV or unusable output."
        ),
    )
    parser.add_argument(
        "--csv", required=True, metavar="PATH", help="FMA's features.csv (any Hadoop path)"
    )
    parser.add_argument(
        "--output", required=True, metavar="PATH", help="feature table directory to publish to"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="once imported, the table holds these rows alone and the earlier runs are deleted"
        " (otherwise the import is added as a new run, and replaces earlier rows of the same"
        " track ids)",
    )
    add_spark_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one."""
    args = parse_args(argv)
    try:
        conf, overrides = load_config(args.config).spark, parse_spark_overrides(args.conf)
    except ConfigError as error:
        print(f"import_fma_features: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if spark is None:
        spark = build_session(
            "fmagenre-import-fma-features", master=args.master, conf=conf, overrides=overrides
        )
    try:
        summary = import_fma_csv(spark, args.csv, args.output, overwrite=args.overwrite)
    except FmaCsvError as error:
        print(f"import_fma_features: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OutputLayoutError as error:
        print(f"import_fma_features: {error}", file=sys.stderr)
        return EXIT_BAD_PATH
    print(f"imported {summary['tracks']} tracks from {args.csv} into {args.output}")
    print(f"run {summary['run_id']}, summary in {summary['summary_file']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
