"""The feature table on storage: a current view that any Parquet reader sees, and its history.

Layout under an output directory (any Hadoop path: local, ``hdfs://``, ``s3a://``)::

    OUTPUT/part-00000.parquet ... part-00015.parquet
                                 the current view: one row per file, in files bucketed by a
                                 hash of the file's key (path, else track id)
    OUTPUT/_table.json           the view's state: buckets, the chunks it holds
    OUTPUT/_runs/run-20260525T163000123456Z-1a2b3c4d/
        chunk-00000/part-*.parquet   rows of one chunk of files, as extracted
        chunk-00000/_PUBLISHED       JSON manifest, written once the chunk's Parquet is committed
        summary.json                 what the run did, written at its end

The history (``_runs``) is the truth: a chunk counts once its ``_PUBLISHED`` marker exists,
written after Spark has committed its files, so a job killed part-way leaves chunks without
markers, which are ignored and redone. After each published chunk, :func:`refresh_view`
rewrites the view from the history: the latest ``ok`` row of each file, else its latest error
row. Each bucket file is replaced in one step (a rename over the old file on local and HDFS
file systems, one object written on S3), and a file's rows always live in the same bucket, so a
reader of ``OUTPUT`` sees exactly one row per file at every moment, even after a kill: at
worst a view some chunks behind, which the next run refreshes first.

Names starting with ``_`` or ``.`` are hidden from Spark, pyarrow/pandas, Hive and Athena, so
``spark.read.parquet(OUTPUT)``, ``pandas.read_parquet(OUTPUT)`` and DuckDB's
``read_parquet('OUTPUT/*.parquet')`` all read the view alone. Tables written before the view
existed (a visible ``runs/`` folder) are moved to this layout by the next extraction run.
"""

from __future__ import annotations

import json
import re
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
    TimestampType,
)

from fmagenre.names import flat_names

RUNS = "_runs"
#: Where tables written before the current view kept their runs.
LEGACY_RUNS = "runs"
MARKER = "_PUBLISHED"
SUMMARY = "summary.json"
VIEW_STATE = "_table.json"
STAGING = "_staging"
#: Files of the current view of a new table (its state keeps the count for later runs).
DEFAULT_BUCKETS = 16
VIEW_FILE = re.compile(r"part-\d{5}\.parquet")

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
    StructField("modified_at", TimestampType()),
    StructField("settings", StringType()),
    StructField("chunk_id", StringType()),
)
#: The feature table: metadata, the 518 flat float32 features in FMA's order, the same values
#: as an ML-ready ``features`` array (null on error rows), status and lineage (the file's
#: modification time and the value-changing settings it was extracted with).
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


def read_bytes(spark: SparkSession, path: str, *, piece: int = 1 << 23) -> bytes:
    """The bytes of a file on any Hadoop path, moved from the JVM in ``piece``-byte parts.

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a file.
    """
    fs, hadoop_path = hadoop_fs(spark, path)
    if not fs.isFile(hadoop_path):
        raise FileNotFoundError(f"{path}: no such file")
    stream = fs.open(hadoop_path)
    parts = []
    try:
        while part := stream.readNBytes(piece):
            parts.append(bytes(part))
    finally:
        stream.close()
    return b"".join(parts)


def _read_text(spark: SparkSession, path: str) -> str:
    """A small file's text, read through Hadoop."""
    fs, hadoop_path = hadoop_fs(spark, path)
    jvm = spark.sparkContext._jvm
    stream = fs.open(hadoop_path)
    try:
        return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def new_run_id() -> str:
    """A run id that sorts by start time: ``run-20260525T163000123456Z-1a2b3c4d``."""
    return f"run-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"


def _join(output: str, *names: str) -> str:
    return "/".join((output.rstrip("/"), *names))


def run_path(output: str, run_id: str) -> str:
    """Directory of a run: its chunks and its summary."""
    return _join(output, RUNS, run_id)


def chunk_id(run_id: str, index: int) -> str:
    """Id of a chunk, also its path below ``OUTPUT/_runs``."""
    return f"{run_id}/chunk-{index:05d}"


def _names(spark: SparkSession, output: str) -> list[str]:
    fs, root = hadoop_fs(spark, output)
    if not fs.exists(root):
        return []
    return [status.getPath().getName() for status in fs.listStatus(root)]


def check_output(spark: SparkSession, output: str) -> None:
    """Check that ``output`` is absent or a feature table, before anything is written.

    Raises
    ------
    OutputLayoutError
        When ``output`` is a file, or a directory holding anything but the table's files: it
        would be unsafe to add runs to it or to delete it.
    """
    fs, root = hadoop_fs(spark, output)
    if not fs.exists(root):
        return
    if not fs.getFileStatus(root).isDirectory():
        raise OutputLayoutError(f"{output} is a file, not a feature table directory")
    foreign = [
        name
        for name in _names(spark, output)
        if name != LEGACY_RUNS and name[0] not in "._" and not VIEW_FILE.fullmatch(name)
    ]
    if foreign:
        raise OutputLayoutError(
            f"{output} is not a feature table (it holds {', '.join(sorted(foreign)[:5])}):"
            " choose an empty or new directory"
        )


def clear_output(spark: SparkSession, output: str) -> None:
    """Delete the view and every run of the table at ``output`` (checked by
    :func:`check_output`)."""
    for name in _names(spark, output):
        if name in (RUNS, LEGACY_RUNS, VIEW_STATE, STAGING) or VIEW_FILE.fullmatch(name):
            fs, path = hadoop_fs(spark, _join(output, name))
            fs.delete(path, True)


def open_table(spark: SparkSession, output: str, *, buckets: int = DEFAULT_BUCKETS) -> dict:
    """Make ``output`` ready for a new run; return the state of its view.

    Checks the layout, moves a table written before the view existed (``runs/``) to
    ``_runs/``, and brings the view up to date with every published chunk: a run killed
    after publishing a chunk, before its view was refreshed, is caught up here.
    """
    check_output(spark, output)
    names = _names(spark, output)
    if LEGACY_RUNS in names and RUNS not in names:
        fs, legacy = hadoop_fs(spark, _join(output, LEGACY_RUNS))
        fs.rename(legacy, hadoop_fs(spark, _join(output, RUNS))[1])
    return refresh_view(spark, output, buckets=buckets)


def publish_chunk(
    spark: SparkSession, frame: DataFrame, output: str, chunk: str, *, description: str = ""
) -> dict:
    """Write one chunk's rows as Parquet, then its marker; return the chunk's counts.

    ``frame`` must have :data:`FEATURE_SCHEMA`'s columns; ``chunk`` is a :func:`chunk_id`;
    ``description`` names the Spark job that computes and writes the rows. The counts
    (``rows``, ``ok``, ``errors`` by reason, ``analysed_s``) are read back from the committed
    files and stored in the marker. The view is not refreshed: see :func:`refresh_view`.
    """
    directory = _join(output, RUNS, chunk)
    context = spark.sparkContext
    context.setJobDescription(description or f"write chunk {chunk}")
    try:
        frame.select(*FEATURE_SCHEMA.names).write.mode("errorifexists").parquet(directory)
        context.setJobDescription(f"count the rows of chunk {chunk}")
        counts = (
            spark.read.parquet(directory)
            .groupBy("status", "error_reason")
            .agg(F.count(F.lit(1)).alias("n"), F.sum("analysed_s").alias("analysed_s"))
            .collect()
        )
    finally:
        context.setJobDescription(None)
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
    found = []
    for runs in (RUNS, LEGACY_RUNS):
        fs, pattern = hadoop_fs(spark, _join(output, runs, "*", "chunk-*", MARKER))
        found += [
            status.getPath().getParent().toString() for status in fs.globStatus(pattern) or []
        ]
    return sorted(found, key=lambda chunk: chunk.rsplit("/", 2)[-2:])


def is_feature_table(spark: SparkSession, path: str) -> bool:
    """Whether ``path`` holds a feature table (a view or published chunks)."""
    return path_exists(spark, _join(path, VIEW_STATE)) or bool(published_chunks(spark, path))


def read_history(spark: SparkSession, output: str) -> DataFrame:
    """Every row of every published chunk, duplicates across runs included."""
    chunks = published_chunks(spark, output)
    if not chunks:
        return spark.createDataFrame([], FEATURE_SCHEMA)
    return spark.read.schema(FEATURE_SCHEMA).parquet(*chunks)


def normalized_path(path: Column) -> Column:
    """A path with ``s3a://`` and ``s3n://`` spelled ``s3://``: one object, one key."""
    return F.regexp_replace(path, r"^s3[an]://", "s3://")


def path_key(path: str) -> str:
    """The Python twin of :func:`normalized_path`."""
    return re.sub(r"^s3[an]://", "s3://", path)


def row_key() -> Column:
    """What identifies a file's row: its path, else (imported rows) its track id."""
    return F.coalesce(
        normalized_path(F.col("path")),
        F.concat(F.lit("track_id:"), F.col("track_id").cast("string")),
    )


def latest_rows(rows: DataFrame) -> DataFrame:
    """One row per file: the latest ``ok`` row, else the latest error row.

    Chunk ids sort by time, so "latest" is the largest.
    """
    latest = Window.partitionBy(row_key()).orderBy(
        (F.col("status") == "ok").desc(), F.col("chunk_id").desc()
    )
    return rows.withColumn("_rank", F.row_number().over(latest)).where("_rank = 1").drop("_rank")


def view_state(spark: SparkSession, output: str) -> dict | None:
    """The state of the view at ``output`` (``_table.json``), None before the first view."""
    path = _join(output, VIEW_STATE)
    return json.loads(_read_text(spark, path)) if path_exists(spark, path) else None


def _replace_file(spark: SparkSession, source: str, target: str) -> None:
    """Put ``source`` in place of ``target`` in one step, as readers see it.

    On S3-like stores an object becomes visible whole when written, so a copy replaces it;
    elsewhere (local, HDFS) a rename over the old file does.
    """
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    fs, src = hadoop_fs(spark, source)
    _, dst = hadoop_fs(spark, target)
    scheme = fs.getUri().getScheme() or "file"
    if scheme in ("s3", "s3a", "s3n", "gs", "wasb", "wasbs", "abfs", "abfss", "oss"):
        jvm.org.apache.hadoop.fs.FileUtil.copy(fs, src, fs, dst, True, True, conf)
        return
    rename = jvm.org.apache.hadoop.fs.Options.Rename
    options = spark.sparkContext._gateway.new_array(rename, 1)
    options[0] = rename.OVERWRITE
    jvm.org.apache.hadoop.fs.FileContext.getFileContext(dst.toUri(), conf).rename(src, dst, options)


def refresh_view(spark: SparkSession, output: str, *, buckets: int = DEFAULT_BUCKETS) -> dict:
    """Rewrite the view of ``output`` from its published chunks, when it lags behind them.

    Each bucket file of the view is written to a staging folder, then replaces the view's
    file in one step (see :func:`_replace_file`); the state file, written last, lists the
    chunks the view holds. ``buckets`` applies to a table's first view only.

    Returns
    -------
    dict
        The view's state: ``buckets``, ``chunks`` and ``rows``.
    """
    state = view_state(spark, output)
    chunks = published_chunks(spark, output)
    names = [chunk.rsplit("/", 2)[-2] + "/" + chunk.rsplit("/", 1)[-1] for chunk in chunks]
    if state is not None and state["chunks"] == names:
        return state
    buckets = state["buckets"] if state else buckets
    if not chunks:
        return {"buckets": buckets, "chunks": [], "rows": 0}
    staging = _join(output, STAGING, secrets.token_hex(6))
    context = spark.sparkContext
    context.setJobDescription(f"refresh the view of {output}")
    try:
        (
            latest_rows(read_history(spark, output))
            .withColumn("_bucket", F.pmod(F.xxhash64(row_key()), F.lit(buckets)))
            .repartition(buckets, "_bucket")
            .sortWithinPartitions("_bucket", row_key())
            .write.partitionBy("_bucket")
            .parquet(staging)
        )
        fs, pattern = hadoop_fs(spark, _join(staging, "_bucket=*", "*.parquet"))
        staged = {}
        for status in fs.globStatus(pattern) or []:
            bucket = int(status.getPath().getParent().getName().split("=")[1])
            staged.setdefault(bucket, []).append(status.getPath().toString())
        if any(len(files) != 1 for files in staged.values()):
            raise RuntimeError(f"staged view {staging} has several files for one bucket")
        for bucket, (source,) in sorted(staged.items()):
            _replace_file(spark, source, _join(output, f"part-{bucket:05d}.parquet"))
        rows = spark.read.schema(FEATURE_SCHEMA).parquet(*_view_files(spark, output)).count()
    finally:
        context.setJobDescription(None)
        fs, path = hadoop_fs(spark, staging)
        fs.delete(path, True)
    state = {
        "buckets": buckets,
        "chunks": names,
        "rows": rows,
        "refreshed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_bytes(spark, _join(output, VIEW_STATE), json.dumps(state, indent=2) + "\n")
    return state


def _view_files(spark: SparkSession, output: str) -> list[str]:
    fs, pattern = hadoop_fs(spark, _join(output, "part-*.parquet"))
    return sorted(status.getPath().toString() for status in fs.globStatus(pattern) or [])


def read_features(spark: SparkSession, output: str) -> DataFrame:
    """The logical feature table: one row per file, the latest ``ok`` row else the latest error.

    The view, as every other Parquet reader sees it; for a table that has none yet (written
    by an earlier version), the same rows computed from its published chunks.

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
    files = _view_files(spark, output) if view_state(spark, output) else []
    if files:
        return spark.read.schema(FEATURE_SCHEMA).parquet(*files)
    return latest_rows(read_history(spark, output))
