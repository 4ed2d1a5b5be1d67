"""Exploration job: a self-contained HTML report of the corpus, the thesis' exploratory analysis.

python jobs/explore.py --features out/features --labels out/labels --output out/explore \
    --metadata fma_metadata
"""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import SparkSession

from fmagenre.analysis.explore import DEFAULT_SAMPLE_ROWS, DEFAULT_TOP_GENRES, run
from fmagenre.analysis.options import add_input_arguments
from fmagenre.platform.config import Config
from fmagenre.platform.jobs import comma_list, hadoop_path, job_parser, positive_int, run_job


def make_parser() -> argparse.ArgumentParser:
    parser = job_parser(
        "explore",
        "Write DIR/report.html: tracks per genre, artists, genres per track, genre"
        " co-occurrence, durations, bit rates, release years, missing values, extraction"
        " errors, feature correlations and a PCA scatter of three genres per MIR family."
        " Figures come from Spark aggregates and bounded samples.",
    )
    add_input_arguments(parser)
    parser.add_argument(
        "--metadata",
        type=hadoop_path,
        metavar="DIR",
        help="fma_metadata folder (tracks.csv, genres.csv; any Hadoop path): adds artists,"
        " release years, genre titles and the missing values of every tracks.csv column",
    )
    parser.add_argument(
        "--pca-genres",
        type=comma_list(),
        metavar="A,B,C",
        help="top-level genres of the PCA scatters, comma-separated (default: the 3 largest)",
    )
    parser.add_argument(
        "--sample-rows",
        type=positive_int,
        default=DEFAULT_SAMPLE_ROWS,
        metavar="N",
        help="most tracks sampled for the correlations and the PCA scatters (default %(default)s)",
    )
    parser.add_argument(
        "--top-genres",
        type=positive_int,
        default=DEFAULT_TOP_GENRES,
        metavar="N",
        help="genres shown in the per-genre bars (co-occurrence: at most 40; default %(default)s)",
    )
    return parser


def explore(spark: SparkSession, args: argparse.Namespace, config: Config) -> None:
    path = run(
        spark,
        features=args.features,
        labels=args.labels,
        output=args.output,
        metadata=args.metadata,
        pca_genres=args.pca_genres,
        sample_rows=args.sample_rows,
        top_genres=args.top_genres,
        seed=args.seed,
    )
    print(f"wrote {path}")


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one."""
    return run_job(make_parser(), explore, argv, spark=spark)


if __name__ == "__main__":
    sys.exit(main())
