"""Spark layer of the labels job: FMA's metadata in, the label table as Parquet out.

The metadata files are read through Hadoop (:func:`read_metadata`) and parsed by
:mod:`fmagenre.labels.metadata`; the table is computed with pandas
(:func:`fmagenre.labels.imputation.build_label_table`); Spark only writes it. So both the metadata
and
the output may be any Hadoop path (local, ``file://``, ``hdfs://``, ``s3://``, ``s3a://``). The
summary goes to ``_summary.json`` in the directory that holds the table, through the same
Hadoop file system.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import (
    ArrayType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from fmagenre.labels.metadata import (
    GENRES_FILE,
    TRACKS_FILE,
    load_genres,
    load_tracks,
    missing_metadata,
)
from fmagenre.platform.hadoop import hadoop_fs, path_exists, read_bytes, write_bytes
from fmagenre.platform.session import session_settings

SUMMARY_FILE = "_summary.json"

LABEL_SCHEMA = StructType(
    [
        StructField("track_id", LongType(), nullable=False),
        StructField("genre_top", StringType(), nullable=False),
        StructField("genre_top_id", IntegerType(), nullable=False),
        StructField("genre_top_source", StringType(), nullable=False),
        StructField("genres", ArrayType(IntegerType(), containsNull=False), nullable=False),
        StructField("genres_all", ArrayType(IntegerType(), containsNull=False), nullable=False),
        StructField("duration", LongType()),
        StructField("bit_rate", LongType()),
        StructField("set_split", StringType()),
        StructField("set_subset", StringType()),
        StructField("split", StringType(), nullable=False),
    ]
)

#: Spark's switch for pandas <-> Arrow conversions.
ARROW_ENABLED = "spark.sql.execution.arrow.pyspark.enabled"


def to_spark(spark: SparkSession, table: pd.DataFrame) -> DataFrame:
    """The label table as a Spark DataFrame with :data:`LABEL_SCHEMA`, through Arrow.

    From pandas: Spark 3.5 takes no pyarrow Table.
    """
    with session_settings(spark, {ARROW_ENABLED: "true"}):
        return spark.createDataFrame(table[LABEL_SCHEMA.names], LABEL_SCHEMA)


def summary_path(output: str) -> str:
    """Where the summary of a table written to ``output`` goes: ``_summary.json`` inside it.

    Parquet readers (Spark, pyarrow) skip files whose names start with an underscore.
    """
    return f"{output.rstrip('/')}/{SUMMARY_FILE}"


def write_label_table(
    spark: SparkSession,
    table: pd.DataFrame,
    summary: Mapping,
    output: str,
    *,
    overwrite: bool = False,
) -> str:
    """Write the label table as Parquet at ``output`` and its summary inside it.

    Parameters
    ----------
    spark : SparkSession
    table : pandas.DataFrame
        ``LabelTable.table`` of :func:`fmagenre.labels.imputation.build_label_table`.
    summary : mapping
        ``LabelTable.summary``; written as indented JSON.
    output : str
        Parquet directory, any Hadoop path.
    overwrite : bool
        Replace an existing table and summary.

    Returns
    -------
    str
        The path of the summary.

    Raises
    ------
    FileExistsError
        When the table exists and ``overwrite`` is false; nothing is written.
    """
    summary_target = summary_path(output)
    if not overwrite:
        fs, hadoop_path = hadoop_fs(spark, output)
        if fs.exists(hadoop_path):
            raise FileExistsError(f"{output} already exists: pass --overwrite to replace it")
    to_spark(spark, table).write.mode("overwrite" if overwrite else "errorifexists").parquet(output)
    write_bytes(spark, summary_target, json.dumps(summary, indent=2) + "\n")
    return summary_target


def read_metadata(spark: SparkSession, directory: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`fmagenre.labels.metadata.load_metadata` for a directory on any Hadoop path.

    Raises
    ------
    FileNotFoundError
        With a one-line message, when the directory or either file is missing.
    fmagenre.labels.metadata.MetadataFormatError
        When a file is not in FMA's format.
    """
    root = directory.rstrip("/")
    if not path_exists(spark, root):
        raise missing_metadata(directory)
    files = {}
    for name in (TRACKS_FILE, GENRES_FILE):
        try:
            files[name] = read_bytes(spark, f"{root}/{name}")
        except FileNotFoundError:
            raise missing_metadata(directory, name) from None
    return (
        load_tracks(files[TRACKS_FILE], name=f"{root}/{TRACKS_FILE}"),
        load_genres(files[GENRES_FILE], name=f"{root}/{GENRES_FILE}"),
    )
