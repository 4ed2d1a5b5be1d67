"""Feature selection job: PCA variance, permutation importance and MIR family combinations.

python jobs/select_features.py --features out/features --labels out/labels --output out/select
"""

from __future__ import annotations

import argparse
import sys

from fmagenre.analysis.cli import (
    EXIT_BAD_INPUT,
    add_input_arguments,
    fail,
    non_negative_float,
    positive_float,
    positive_int,
    session,
    unit_fraction,
)
from fmagenre.analysis.inputs import AnalysisInputError
from fmagenre.analysis.model_grid import ALGORITHMS, DEFAULT_CELL_TIMEOUT
from fmagenre.analysis.selection import (
    DEFAULT_SAMPLE_ROWS,
    DEFAULT_THRESHOLD,
    FILES,
    VARIANCE_TARGETS,
    run,
)
from fmagenre.audio.feature_sets import FAMILIES, FeatureSetError, parse_name_list
from fmagenre.platform.config import ConfigError

PROG = "select_features"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "On the training tracks: (a) PCA of the standardized features, with the components"
            " needed for each variance target; (b) permutation importance of a random forest"
            " (mean decrease in accuracy), the columns above --threshold written as a column"
            " list for --columns-file; (c) greedy forward selection of MIR families by"
            f" cross-validated Cohen's kappa. Writes {', '.join(FILES.values())}."
        ),
        epilog=f"Exit status: 0 done, {EXIT_BAD_INPUT} bad input (missing path, bad option...).",
    )
    add_input_arguments(parser)
    parser.add_argument(
        "--sample-rows",
        type=positive_int,
        default=DEFAULT_SAMPLE_ROWS,
        metavar="N",
        help="most training tracks sampled for (b) and (c) (default %(default)s)",
    )
    parser.add_argument(
        "--threshold",
        type=non_negative_float,
        default=DEFAULT_THRESHOLD,
        help="select the columns whose mean decrease in accuracy exceeds this (default"
        " %(default)s, the thesis' rule)",
    )
    parser.add_argument(
        "--variance-targets",
        default=",".join(f"{t:g}" for t in VARIANCE_TARGETS),
        metavar="F,F,...",
        help="shares of variance to count PCA components for (default %(default)s)",
    )
    parser.add_argument("--trees", type=positive_int, default=100, help="forest size (100)")
    parser.add_argument(
        "--repeats", type=positive_int, default=5, help="permutations per column (default 5)"
    )
    parser.add_argument(
        "--holdout",
        type=unit_fraction,
        default=0.25,
        help="share of the sample held out for the permutations (default %(default)s)",
    )
    parser.add_argument(
        "--folds", type=positive_int, default=3, help="folds of the greedy selection (3)"
    )
    parser.add_argument(
        "--greedy-algorithm",
        default="lr",
        help=f"classifier of the greedy selection, one of {', '.join(ALGORITHMS)} (lr)",
    )
    parser.add_argument(
        "--max-families",
        type=positive_int,
        default=len(FAMILIES),
        metavar="N",
        help="steps of the greedy selection (default: all %(default)s families)",
    )
    parser.add_argument(
        "--cell-timeout",
        type=positive_float,
        default=DEFAULT_CELL_TIMEOUT,
        metavar="SECONDS",
        help="time limit of each greedy fit (default %(default)s)",
    )
    parser.add_argument(
        "--n-jobs",
        type=int,
        default=1,
        help="driver cores of the forest and permutations, -1 for all (default 1)",
    )
    return parser.parse_args(argv)


def _targets(text: str) -> list[float]:
    try:
        targets = [float(item) for item in parse_name_list(text)]
    except ValueError:
        raise FeatureSetError(f"--variance-targets: not a list of numbers: {text!r}") from None
    if not all(0 < target <= 1 for target in targets):
        raise FeatureSetError(f"--variance-targets must be in (0, 1], got {text!r}")
    return targets


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one."""
    args = parse_args(argv)
    try:
        targets = _targets(args.variance_targets)
        if args.greedy_algorithm not in ALGORITHMS:
            raise FeatureSetError(
                f"--greedy-algorithm: unknown algorithm {args.greedy_algorithm!r}"
                f" (choose from {', '.join(ALGORITHMS)})"
            )
        if not 2 <= args.folds or args.max_families > len(FAMILIES) or args.n_jobs == 0:
            raise FeatureSetError(
                f"need --folds >= 2, --max-families <= {len(FAMILIES)} and --n-jobs != 0"
            )
        if spark is None:
            spark = session(args, "fmagenre-select-features")
        summary = run(
            spark,
            features=args.features,
            labels=args.labels,
            output=args.output,
            sample_rows=args.sample_rows,
            threshold=args.threshold,
            variance_targets=targets,
            trees=args.trees,
            repeats=args.repeats,
            holdout=args.holdout,
            folds=args.folds,
            greedy_algorithm=args.greedy_algorithm,
            max_families=args.max_families,
            cell_timeout=args.cell_timeout,
            n_jobs=args.n_jobs,
            seed=args.seed,
        )
    except (AnalysisInputError, ConfigError, FeatureSetError) as error:
        return fail(PROG, error)
    components = ", ".join(f"{k}: {v}" for k, v in summary["pca_components"].items())
    print(f"PCA components for each share of variance: {components}")
    print(
        f"{summary['selected_columns']} columns with permutation importance >"
        f" {summary['threshold']:g} (forest's held-out accuracy {summary['holdout_accuracy']:.4f})"
    )
    print(f"greedy family order: {' > '.join(summary['greedy_order'])}")
    print(f"best combination: {summary['greedy_best']} (kappa {summary['greedy_best_kappa']})")
    for path in summary["files"].values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
