"""Exploration job: a self-contained HTML report of the corpus, the thesis' exploratory analysis.

python jobs/explore.py --features out/features --labels out/labels --output out/explore \
    --metadata fma_metadata
"""

from __future__ import annotations

import argparse
import sys

from fmagenre.analysis.cli import (
    EXIT_BAD_INPUT,
    add_input_arguments,
    fail,
    positive_int,
    session,
)
from fmagenre.analysis.explore import DEFAULT_SAMPLE_ROWS, DEFAULT_TOP_GENRES, run
from fmagenre.analysis.inputs import AnalysisInputError
from fmagenre.audio.feature_sets import FeatureSetError, parse_name_list
from fmagenre.platform.config import ConfigError

PROG = "explore"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Write DIR/report.html: tracks per genre, artists, genres per track, genre"
            " co-occurrence, durations, bit rates, release years, missing values, extraction"
            " errors, feature correlations and a PCA scatter of three genres per MIR family."
            " Figures come from Spark aggregates and bounded samples."
        ),
        epilog=f"Exit status: 0 done, {EXIT_BAD_INPUT} bad input (missing path, unknown genre...).",
    )
    add_input_arguments(parser)
    parser.add_argument(
        "--metadata",
        metavar="DIR",
        help="fma_metadata folder (tracks.csv, genres.csv; any Hadoop path): adds artists,"
        " release years, genre titles and the missing values of every tracks.csv column",
    )
    parser.add_argument(
        "--pca-genres",
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one."""
    args = parse_args(argv)
    try:
        genres = parse_name_list(args.pca_genres) if args.pca_genres else None
        if spark is None:
            spark = session(args, "fmagenre-explore")
        path = run(
            spark,
            features=args.features,
            labels=args.labels,
            output=args.output,
            metadata=args.metadata,
            pca_genres=genres,
            sample_rows=args.sample_rows,
            top_genres=args.top_genres,
            seed=args.seed,
        )
    except (AnalysisInputError, ConfigError, FeatureSetError) as error:
        return fail(PROG, error)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
