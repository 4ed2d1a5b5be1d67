"""The feature table on storage: runs of Parquet chunks, published by a marker written last.

Layout under an output directory (any Hadoop path: local, ``hdfs://``, ``s3a://``)::

    OUTPUT/runs/run-20260525T163000123456Z-1a2b3c4d/
        chunk-00000/part-*.parquet   rows of one chunk of files
        chunk-00000/_PUBLISHED       JSON manifest, written once the chunk's Parquet is committed
        chunk-00001/...
        summary.json                 what the run did, written at its end

A chunk counts only once its ``_PUBLISHED`` marker exists, and the marker is written after
Spark has committed the chunk's files, as one new object: a job killed part-way leaves
directories without markers, which readers ignore and later runs redo. No rename is needed
for correctness, so the layout is safe on S3.

:func:`read_features` gives the logical table: the rows of every published chunk, one per file
(per track for rows imported from FMA's ``features.csv``, which have no path): the latest
``ok`` row, else the latest error row. Chunk ids sort by time, so "latest" is the largest.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from fmagenre.names import flat_names

RUNS = "runs"
MARKER = "_PUBLISHED"
SUMMARY = "summary.json"

#: Columns before the 518 features.
LEADING_FIELDS = (
    StructField("track_id", LongType()),
    StructField("path", StringType()),
    StructField("file_size", LongType()),
    StructField("duration_s", DoubleType()),
    StructField("sample_rate", IntegerType()),
    StructField("channels", IntegerType()),
    StructField("format", StringType()),
    StructField("analysed_s", DoubleType()),
)
#: Columns after the 518 features.
TRAILING_FIELDS = (
    StructField("features", ArrayType(FloatType())),
    StructField("status", StringType()),
    StructField("error", StringType()),
    StructField("error_reason", StringType()),
    StructField("extractor_version", StringType()),
    StructField("extract_s", DoubleType()),
    StructField("chunk_id", StringType()),
)
#: The feature table: metadata, the 518 flat float32 features in FMA's order, the same values
#: as an ML-ready ``features`` array (null on error rows), status and lineage.
FEATURE_SCHEMA = StructType(
    [
        *LEADING_FIELDS,
        *(StructField(name, FloatType()) for name in flat_names()),
        *TRAILING_FIELDS,
    ]
)


class OutputLayoutError(ValueError):
    """An output directory that holds something other than a feature table."""


def hadoop_fs(spark: SparkSession, path: str):
    """The Hadoop file system of ``path`` and the path as a Hadoop ``Path``."""
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def path_exists(spark: SparkSession, path: str) -> bool:
    """Whether ``path`` (any Hadoop path) exists."""
    fs, hadoop_path = hadoop_fs(spark, path)
    return bool(fs.exists(hadoop_path))


def write_bytes(spark: SparkSession, path: str, data: str | bytes) -> None:
    """Create (or replace) a small file through Hadoop: one object on S3, seen at close.

    Text is written as UTF-8.
    """
    fs, hadoop_path = hadoop_fs(spark, path)
    stream = fs.create(hadoop_path, True)
    try:
        stream.write(bytearray(data.encode("utf-8") if isinstance(data, str) else data))
    finally:
        stream.close()


def new_run_id() -> str:
    """A run id that sorts by start time: ``run-20260525T163000123456Z-1a2b3c4d``."""
    return f"run-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"


def run_path(output: str, run_id: str) -> str:
    """Directory of a run: its chunks and its summary."""
    return f"{output.rstrip('/')}/{RUNS}/{run_id}"


def chunk_id(run_id: str, index: int) -> str:
    """Id of a chunk, also its path below ``OUTPUT/runs``."""
    return f"{run_id}/chunk-{index:05d}"


def check_output(spark: SparkSession, output: str) -> None:
    """Check that ``output`` is absent or a feature table, before anything is written.

    Raises
    ------
    OutputLayoutError
        When ``output`` is a file, or a directory holding anything but ``runs/``: it would be
        unsafe to add runs to it or to delete it.
    """
    fs, root = hadoop_fs(spark, output)
    if not fs.exists(root):
        return
    if not fs.getFileStatus(root).isDirectory():
        raise OutputLayoutError(f"{output} is a file, not a feature table directory")
    names = [status.getPath().getName() for status in fs.listStatus(root)]
    foreign = [name for name in names if name != RUNS and name[0] not in "._"]
    if foreign:
        raise OutputLayoutError(
            f"{output} is not a feature table (it holds {', '.join(sorted(foreign)[:5])}):"
            " choose an empty or new directory"
        )


def clear_output(spark: SparkSession, output: str) -> None:
    """Delete every run of the feature table at ``output`` (checked by :func:`check_output`)."""
    fs, runs = hadoop_fs(spark, f"{output.rstrip('/')}/{RUNS}")
    fs.delete(runs, True)


def publish_chunk(spark: SparkSession, frame: DataFrame, output: str, chunk: str) -> dict:
    """Write one chunk's rows as Parquet, then its marker; return the chunk's counts.

    ``frame`` must have :data:`FEATURE_SCHEMA`'s columns; ``chunk`` is a :func:`chunk_id`.
    The counts (``rows``, ``ok``, ``errors`` by reason, ``analysed_s``) are read back from
    the committed files and stored in the marker.
    """
    directory = f"{output.rstrip('/')}/{RUNS}/{chunk}"
    frame.select(*FEATURE_SCHEMA.names).write.mode("errorifexists").parquet(directory)
    counts = (
        spark.read.parquet(directory)
        .groupBy("status", "error_reason")
        .agg(F.count(F.lit(1)).alias("n"), F.sum("analysed_s").alias("analysed_s"))
        .collect()
    )
    stats = {"chunk_id": chunk, "rows": 0, "ok": 0, "errors": {}, "analysed_s": 0.0}
    for row in counts:
        stats["rows"] += row.n
        stats["analysed_s"] += row.analysed_s or 0.0
        if row.status == "ok":
            stats["ok"] += row.n
        else:
            stats["errors"][row.error_reason] = row.n
    stats["published_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_bytes(spark, f"{directory}/{MARKER}", json.dumps(stats, indent=2) + "\n")
    return stats


def write_summary(spark: SparkSession, output: str, run_id: str, summary: Mapping) -> str:
    """Write a run's summary as ``summary.json`` in its directory; return its path."""
    path = f"{run_path(output, run_id)}/{SUMMARY}"
    write_bytes(spark, path, json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return path


def published_chunks(spark: SparkSession, output: str) -> list[str]:
    """Directories of the published chunks under ``output``, oldest first."""
    fs, pattern = hadoop_fs(spark, f"{output.rstrip('/')}/{RUNS}/*/chunk-*/{MARKER}")
    statuses = fs.globStatus(pattern) or []
    return sorted(status.getPath().getParent().toString() for status in statuses)


def read_published(spark: SparkSession, output: str) -> DataFrame:
    """Every row of every published chunk, duplicates across runs included."""
    chunks = published_chunks(spark, output)
    if not chunks:
        return spark.createDataFrame([], FEATURE_SCHEMA)
    return spark.read.schema(FEATURE_SCHEMA).parquet(*chunks)


def row_key() -> Column:
    """What identifies a file's row: its path, else (imported rows) its track id."""
    return F.coalesce(F.col("path"), F.concat(F.lit("track_id:"), F.col("track_id").cast("string")))


def read_features(spark: SparkSession, output: str) -> DataFrame:
    """The logical feature table: one row per file, the latest ``ok`` row else the latest error.

    Parameters
    ----------
    spark : SparkSession
    output : str
        The ``--output`` of the extraction or import job.

    Returns
    -------
    DataFrame
        With :data:`FEATURE_SCHEMA`; empty when nothing is published yet.
    """
    latest = Window.partitionBy(row_key()).orderBy(
        (F.col("status") == "ok").desc(), F.col("chunk_id").desc()
    )
    return (
        read_published(spark, output)
        .withColumn("_rank", F.row_number().over(latest))
        .where(F.col("_rank") == 1)
        .drop("_rank")
    )
