"""The one input reader: feature rows and labels on any Hadoop path, checked before use.

The feature input is a feature table (``jobs/extract_features.py``,
``jobs/import_fma_features.py``: read with :func:`fmagenre.tables.feature_table.read_features`)
or plain Parquet with its columns (``track_id``, feature columns, optionally ``status``); the
label input is the label table of ``jobs/prepare_labels.py``. An input that cannot be used
raises :class:`InputTableError`, whose message names the option and the path.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from fmagenre.audio.names import musicnn_names
from fmagenre.errors import InputError, shown_names
from fmagenre.platform.hadoop import path_exists
from fmagenre.tables.feature_table import is_feature_table, published_chunks, read_features

#: Label columns every job that reads labels needs.
LABEL_COLUMNS = ("track_id", "genre_top", "split")


class InputTableError(InputError, ValueError):
    """An input table that is missing, unreadable, or lacks the columns or rows a job needs."""


def error_condition(error: AnalysisException) -> str | None:
    """Spark's name for ``error``: ``getCondition`` from Spark 4, ``getErrorClass`` in 3.5."""
    return (getattr(error, "getCondition", None) or error.getErrorClass)()


def require_path(spark: SparkSession, option: str, path: str) -> None:
    """Raise InputTableError when ``path``, given by ``option``, does not exist."""
    if not path_exists(spark, path):
        raise InputTableError(f"{option} {path} does not exist")


def _read_parquet(spark: SparkSession, option: str, path: str, *, otherwise: str) -> DataFrame:
    try:
        return spark.read.parquet(path)
    except AnalysisException as error:
        raise InputTableError(
            f"{option} {path} is {otherwise} ({error_condition(error) or 'unreadable'})"
        ) from None


def _require_columns(
    frame: DataFrame, columns: Sequence[str], *, option: str, path: str, expected: str
) -> None:
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise InputTableError(
            f"{option} {path} lacks {len(missing)} column(s): {shown_names(missing)};"
            f" give {expected}"
        )


def read_feature_rows(
    spark: SparkSession, path: str, *, option: str = "--features", columns: Sequence[str] = ()
) -> DataFrame:
    """Every row of the feature input, ``ok`` and error rows: one per file of a feature table
    (:func:`fmagenre.tables.feature_table.read_features`), else the rows of plain Parquet.

    Parameters
    ----------
    spark : SparkSession
    path : str
        Any Hadoop path.
    option : str
        The option that gave ``path``, for the messages.
    columns : sequence of str
        Columns the rows must have.

    Raises
    ------
    InputTableError
        When ``path`` does not exist, is a feature table without a published chunk yet, is
        neither a feature table nor Parquet, or lacks one of ``columns``.
    """
    require_path(spark, option, path)
    if is_feature_table(spark, path):
        if not published_chunks(spark, path):
            raise InputTableError(
                f"{option} {path} is a feature table without a published chunk yet: wait until"
                " its extraction or import job has published one, or run that job again"
            )
        rows = read_features(spark, path)
    else:
        rows = _read_parquet(spark, option, path, otherwise="neither a feature table nor Parquet")
    _require_columns(
        rows,
        columns,
        option=option,
        path=path,
        expected="a feature table (jobs/extract_features.py, jobs/import_fma_features.py)"
        " or Parquet with its columns",
    )
    return rows


def read_labels(
    spark: SparkSession,
    path: str,
    *,
    option: str = "--labels",
    columns: Sequence[str] = LABEL_COLUMNS,
) -> DataFrame:
    """The ``columns`` of the label table at ``path``.

    Raises
    ------
    InputTableError
        When ``path`` does not exist, is not Parquet, or lacks one of ``columns``.
    """
    require_path(spark, option, path)
    labels = _read_parquet(spark, option, path, otherwise="not Parquet")
    _require_columns(
        labels,
        columns,
        option=option,
        path=path,
        expected="the label table of jobs/prepare_labels.py",
    )
    return labels.select(*columns)


def ok_rows(rows: DataFrame) -> DataFrame:
    """The ``ok`` feature rows with a track id (rows without a ``status`` column count as ok)."""
    rows = rows.where(F.col("track_id").isNotNull())
    return rows.where(F.col("status") == "ok") if "status" in rows.columns else rows


def has_musicnn(rows: DataFrame) -> bool:
    """Whether feature rows hold the musicnn family: its columns, with values in an ok row."""
    names = musicnn_names()
    if not set(names) <= set(rows.columns):
        return False
    return bool(ok_rows(rows).where(F.col(names[0]).isNotNull()).limit(1).count())


def one_row_per_track(rows: DataFrame) -> DataFrame:
    """``rows`` with one row per ``track_id``: of two files with the same id, either is kept.

    A window, not ``dropDuplicates``: that would aggregate every other column (518 of them),
    slow to plan and compile.
    """
    first = Window.partitionBy("track_id").orderBy("track_id")
    return rows.withColumn("_n", F.row_number().over(first)).where(F.col("_n") == 1).drop("_n")
