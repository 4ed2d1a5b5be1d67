"""Command-line pieces shared by the analysis jobs (explore, select_features, compare_models).

Every bad input (a missing path, an unknown family, algorithm or genre, a bad number or
configuration) ends the job with one line on stderr and exit status :data:`EXIT_BAD_INPUT`,
the status argparse uses for its own usage errors.
"""

from __future__ import annotations

import argparse
import sys

from fmagenre.platform.config import add_spark_arguments, load_config, parse_spark_overrides
from fmagenre.platform.session import build_session

EXIT_BAD_INPUT = 2


def _number(kind: type, text: str, *, low: float, low_open: bool, high: float | None = None):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    too_low = value <= low if low_open else value < low
    if too_low or (high is not None and value >= high) or value != value:
        upper = f" and < {high:g}" if high is not None else ""
        raise argparse.ArgumentTypeError(
            f"must be {'>' if low_open else '>='} {low:g}{upper}, got {text}"
        )
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    return _number(int, text, low=0, low_open=True)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(int, text, low=0, low_open=False)


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    return _number(float, text, low=0, low_open=True)


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0."""
    return _number(float, text, low=0, low_open=False)


def unit_fraction(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    return _number(float, text, low=0, low_open=True, high=1)


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """``--features``, ``--labels``, ``--output``, ``--seed`` and the Spark options."""
    parser.add_argument(
        "--features",
        required=True,
        metavar="PATH",
        help="feature table: the extraction or import job's output, or a plain Parquet folder"
        " with track_id and the 518 feature columns (any Hadoop path)",
    )
    parser.add_argument(
        "--labels", required=True, metavar="PATH", help="label table of jobs/prepare_labels.py"
    )
    parser.add_argument(
        "--output",
        required=True,
        metavar="DIR",
        help="directory of the outputs, created if missing; files of the same names are"
        " replaced (any Hadoop path)",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of every sample and model"
    )
    add_spark_arguments(parser)


def session(args: argparse.Namespace, app_name: str):
    """A SparkSession from ``--config``, ``--master`` and ``--conf``.

    Raises
    ------
    fmagenre.platform.config.ConfigError
        On a bad configuration file or ``--conf``.
    """
    return build_session(
        app_name,
        master=args.master,
        conf=load_config(args.config).spark,
        overrides=parse_spark_overrides(args.conf),
    )


def fail(prog: str, error: Exception) -> int:
    """Print ``prog: error`` (its first line) on stderr; return :data:`EXIT_BAD_INPUT`."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    print(f"{prog}: {lines[0]}", file=sys.stderr)
    return EXIT_BAD_INPUT
