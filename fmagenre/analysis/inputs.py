"""Inputs and outputs of the analysis jobs (explore, select_features, compare_models).

Inputs are the feature table and the label table, on any Hadoop path. The feature table is
either the extraction job's layout (``runs/``, read with
:func:`fmagenre.tables.feature_table.read_features`) or a plain Parquet folder with its columns
(``track_id``, the 518 flat features, and optionally ``status``/``error_reason``). Outputs
(HTML, PNG, CSV, Markdown, column lists) are small files written through Hadoop, so that
``--output`` may be local, ``hdfs://`` or ``s3a://``.

Nothing here collects a whole table to the driver: :func:`sample_groups` caps the rows a job
takes into pandas, and :func:`correlation_matrix` aggregates in Spark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from pyspark.errors import AnalysisException
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.stat import Correlation
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from fmagenre.audio.names import flat_names
from fmagenre.platform.hadoop import path_exists, read_bytes, write_bytes
from fmagenre.tables.feature_table import is_feature_table, read_features

#: Label columns every analysis job needs.
LABEL_KEYS = ("track_id", "genre_top", "split")


class AnalysisInputError(ValueError):
    """A missing input, or one without the columns or rows an analysis needs."""


def require_paths(spark: SparkSession, paths: Mapping[str, str | None]) -> None:
    """Raise AnalysisInputError naming the first option whose path is missing.

    ``paths`` maps option names (``--features``) to paths; None values are skipped.
    """
    for option, path in paths.items():
        if path is not None and not path_exists(spark, path):
            raise AnalysisInputError(f"{option} {path} does not exist")


def _require_columns(frame: DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise AnalysisInputError(
            f"{what} lacks {len(missing)} needed column(s), e.g. {', '.join(missing[:3])}"
        )


def read_parquet(spark: SparkSession, path: str) -> DataFrame:
    """A Parquet table; AnalysisInputError when ``path`` holds none."""
    try:
        return spark.read.parquet(path)
    except AnalysisException as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "unreadable"
        raise AnalysisInputError(f"{path} is not a Parquet table: {first}") from error


def load_feature_rows(spark: SparkSession, path: str) -> DataFrame:
    """Every row of a feature table, ``ok`` and error rows (de-duplicated when it has runs).

    Raises
    ------
    AnalysisInputError
        When the table lacks ``track_id`` or a feature column.
    """
    if is_feature_table(spark, path):
        frame = read_features(spark, path)
    else:
        frame = read_parquet(spark, path)
    _require_columns(frame, ("track_id", *flat_names()), f"feature table {path}")
    return frame


def one_row_per_track(rows: DataFrame) -> DataFrame:
    """``rows`` with one row per ``track_id``: of two files with the same id, either is kept.

    A window, not ``dropDuplicates``: that would aggregate every other column (518 of them),
    slow to plan and compile.
    """
    first = Window.partitionBy("track_id").orderBy("track_id")
    return rows.withColumn("_n", F.row_number().over(first)).where(F.col("_n") == 1).drop("_n")


def ok_features(rows: DataFrame) -> DataFrame:
    """``track_id`` and the 518 features of the ``ok`` rows, one row per track id.

    Rows without a track id are left out.
    """
    if "status" in rows.columns:
        rows = rows.where(F.col("status") == "ok")
    return one_row_per_track(
        rows.where(F.col("track_id").isNotNull()).select("track_id", *flat_names())
    )


def load_labels(spark: SparkSession, path: str, columns: Sequence[str] = LABEL_KEYS) -> DataFrame:
    """The label table's ``columns``.

    Raises
    ------
    AnalysisInputError
        When a column is missing.
    """
    frame = read_parquet(spark, path)
    _require_columns(frame, columns, f"label table {path}")
    return frame.select(*columns)


def labelled_features(features: DataFrame, labels: DataFrame) -> DataFrame:
    """``track_id``, ``genre_top``, ``split`` and the 518 features of labelled ``ok`` rows.

    Rows with an undefined feature (null or NaN) are left out: models cannot take them.
    """
    keys = labels.select(*LABEL_KEYS).where(F.col("genre_top").isNotNull())
    return (
        ok_features(features)
        .dropna(subset=list(flat_names()))
        .join(keys, "track_id")
        .select(*LABEL_KEYS, *flat_names())
    )


def sample_groups(
    frame: DataFrame,
    *,
    by: str,
    limits: Mapping[str, int],
    columns: Sequence[str],
    seed: int,
) -> pd.DataFrame:
    """A seeded sample of at most ``limits[value]`` rows per value of ``by``, as pandas.

    The result has the column ``by`` then ``columns``; values of ``by`` without a limit are
    left out. Spark draws each value's rows with probability ``limit / count`` (one counting
    job, one collecting job); the few rows drawn beyond a limit are dropped on the driver, so
    the driver receives about ``sum(limits)`` rows, never the table.
    """
    if any(limit < 1 for limit in limits.values()):
        raise ValueError(f"limits must be positive, got {dict(limits)}")
    wanted = frame.where(F.col(by).isin(list(limits)))
    counts = {row[0]: row[1] for row in wanted.groupBy(by).count().collect()}
    fractions = {value: min(1.0, limits[value] / n) for value, n in counts.items()}
    rows = wanted.select(by, *columns)
    if fractions:
        rows = rows.sampleBy(by, fractions, seed)
    sample = rows.toPandas()
    shuffled = sample.sample(frac=1.0, random_state=seed)
    keep = shuffled.groupby(by, sort=False).cumcount() < shuffled[by].map(limits)
    return shuffled[keep].reset_index(drop=True)


def correlation_matrix(frame: DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Pearson correlations of ``columns``, aggregated by Spark ML over the rows of ``frame``.

    Rows with a null or NaN feature are skipped. A constant column has NaN correlations.
    """
    vectors = VectorAssembler(
        inputCols=list(columns), outputCol="_features", handleInvalid="skip"
    ).transform(frame.select(*columns))
    return Correlation.corr(vectors, "_features", "pearson").head()[0].toArray()


def read_text(spark: SparkSession, path: str) -> str:
    """The whole text of a (small) file on any Hadoop path.

    Read through Hadoop, not Spark's text source, which skips names starting with ``_`` or
    ``.`` (such as the label table's ``_summary.json``).

    Raises
    ------
    AnalysisInputError
        When ``path`` is not a file.
    """
    try:
        return read_bytes(spark, path).decode("utf-8")
    except FileNotFoundError as error:
        raise AnalysisInputError(str(error)) from None


def write_output(spark: SparkSession, directory: str, name: str, data: str | bytes) -> str:
    """Create or replace the file ``directory/name``; return its path."""
    path = f"{directory.rstrip('/')}/{name}"
    write_bytes(spark, path, data)
    return path
