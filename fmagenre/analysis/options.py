"""The options the three analysis jobs share (explore, select_features, compare_models)."""

from __future__ import annotations

import argparse

from fmagenre.platform.jobs import hadoop_path, non_negative_int


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--features``, ``--labels``, ``--output`` and ``--seed``."""
    parser.add_argument(
        "--features",
        type=hadoop_path,
        required=True,
        metavar="PATH",
        help="feature table: the extraction or import job's output, or a plain Parquet folder"
        " with track_id and the 518 feature columns (any Hadoop path)",
    )
    parser.add_argument(
        "--labels",
        type=hadoop_path,
        required=True,
        metavar="PATH",
        help="label table of jobs/prepare_labels.py",
    )
    parser.add_argument(
        "--output",
        type=hadoop_path,
        required=True,
        metavar="DIR",
        help="directory of the outputs, created if missing; files of the same names are"
        " replaced (any Hadoop path)",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of every sample and model"
    )
