"""Spark layer of the labels job: the label table as Parquet, its summary as JSON beside it.

The table is computed with pandas (:func:`fmagenre.labels.build_label_table`); Spark only
writes it, so the output may be any Hadoop path (local, ``hdfs://``, ``s3a://``...). The
summary goes to ``summary.json`` in the directory that holds the table, through the same
Hadoop file system.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import (
    ArrayType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

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

_ARROW_TYPES = {
    LongType(): pa.int64(),
    IntegerType(): pa.int32(),
    StringType(): pa.string(),
    ArrayType(IntegerType(), containsNull=False): pa.list_(pa.int32()),
}


def to_spark(spark: SparkSession, table: pd.DataFrame) -> DataFrame:
    """The label table as a Spark DataFrame with :data:`LABEL_SCHEMA`, through Arrow."""
    arrays = [
        pa.Array.from_pandas(table[field.name], type=_ARROW_TYPES[field.dataType])
        for field in LABEL_SCHEMA.fields
    ]
    return spark.createDataFrame(
        pa.Table.from_arrays(arrays, names=LABEL_SCHEMA.names), LABEL_SCHEMA
    )


def summary_path(output: str) -> str:
    """Where the summary of a table written to ``output`` goes: ``_summary.json`` inside it.

    Parquet readers (Spark, pyarrow) skip files whose names start with an underscore.
    """
    return f"{output.rstrip('/')}/{SUMMARY_FILE}"


def _hadoop_path(spark: SparkSession, path: str):
    """A Hadoop file system and path object for any URI Spark can write to."""
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


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
        ``LabelTable.table`` of :func:`fmagenre.labels.build_label_table`.
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
        fs, hadoop_path = _hadoop_path(spark, output)
        if fs.exists(hadoop_path):
            raise FileExistsError(f"{output} already exists: pass --overwrite to replace it")
    to_spark(spark, table).write.mode("overwrite" if overwrite else "errorifexists").parquet(output)
    fs, hadoop_path = _hadoop_path(spark, summary_target)
    stream = fs.create(hadoop_path, True)
    try:
        stream.write(bytearray(json.dumps(summary, indent=2).encode("utf-8") + b"\n"))
    finally:
        stream.close()
    return summary_target
