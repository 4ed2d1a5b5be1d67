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
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from fmagenre.audio.names import flat_names, musicnn_names
from fmagenre.errors import InputError, shown_names
from fmagenre.platform.hadoop import (
    hadoop_fs,
    path_exists,
    read_bytes,
    replace_file,
    write_json,
)

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
#: Other spellings of ``s3://`` (same pattern for Python's re and Spark's Java regex).
S3_ALIASES = r"^s3[an]://"

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
    StructField("patches", BinaryType()),
    StructField("patch_error", StringType()),
)
#: The musicnn family, when asked (null otherwise), and why a file asked for has none.
MUSICNN_FIELDS = (
    *(StructField(name, FloatType()) for name in musicnn_names()),
    StructField("musicnn_error", StringType()),
)
#: The feature table: metadata, the 518 flat float32 features in FMA's order, the same values
#: as an ML-ready ``features`` array (null on error rows), status and lineage (the file's
#: modification time and the value-changing settings it was extracted with), then the log-mel
#: patches when asked (``patches``: the bytes of :func:`fmagenre.audio.patches.patches_to_bytes`,
#: else null; ``patch_error``: why a file asked for has none), then the musicnn family's 450
#: columns when asked (:func:`fmagenre.audio.names.musicnn_names`; ``musicnn_error``: why a
#: file asked for has none). Tables written before the patch or musicnn columns existed read
#: with them null.
FEATURE_SCHEMA = StructType(
    [
        *LEADING_FIELDS,
        *(StructField(name, FloatType()) for name in flat_names()),
        *TRAILING_FIELDS,
        *MUSICNN_FIELDS,
    ]
)


class OutputLayoutError(InputError, ValueError):
    """An output directory that holds something other than a feature table."""


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
            f"{output} is not a feature table (it holds {shown_names(sorted(foreign), limit=5)}):"
            " choose an empty or new directory"
        )


def _migrate_legacy(spark: SparkSession, output: str) -> None:
    """Move the chunks of a table written before the view (``runs/``) to ``_runs/``.

    File by file, markers last, so that a move cut short leaves no chunk that counts as
    published without its rows; a later call finishes it.
    """
    fs, legacy = hadoop_fs(spark, _join(output, LEGACY_RUNS))
    if not fs.exists(legacy):
        return
    root = legacy.toUri().getPath().rstrip("/")
    files, listing = [], fs.listFiles(legacy, True)
    while listing.hasNext():
        files.append(listing.next().getPath())
    for path in sorted(files, key=lambda path: path.getName() == MARKER):
        relative = path.toUri().getPath()[len(root) + 1 :]
        _, target = hadoop_fs(spark, _join(output, RUNS, relative))
        fs.mkdirs(target.getParent())
        if not fs.rename(path, target) and not fs.exists(target):
            raise OSError(f"could not move {path.toString()} to {target.toString()}")
        fs.delete(path, False)
    fs.delete(legacy, True)


def open_table(spark: SparkSession, output: str, *, buckets: int = DEFAULT_BUCKETS) -> dict:
    """Make ``output`` (checked by :func:`check_output`) ready for a new run; return the
    state of its view.

    Moves a table written before the view existed (``runs/``) to ``_runs/``, and brings the
    view up to date with every published chunk: a run killed after publishing a chunk,
    before its view was refreshed, is caught up here.
    """
    _migrate_legacy(spark, output)
    return refresh_view(spark, output, buckets=buckets)


def drop_runs_before(spark: SparkSession, output: str, run_id: str) -> None:
    """Delete the runs older than ``run_id`` (after an overwrite has left them out of the
    view: see ``since`` in :func:`refresh_view`)."""
    fs, pattern = hadoop_fs(spark, _join(output, RUNS, "run-*"))
    for status in fs.globStatus(pattern) or []:
        if status.getPath().getName() < run_id:
            fs.delete(status.getPath(), True)


def publish_chunk(
    spark: SparkSession, frame: DataFrame, output: str, chunk: str, *, description: str = ""
) -> dict:
    """Write one chunk's rows as Parquet, then its marker; return the chunk's counts.

    ``frame`` must have :data:`FEATURE_SCHEMA`'s columns; ``chunk`` is a :func:`chunk_id`;
    ``description`` names the Spark job that computes and writes the rows. The counts
    (``rows``, ``ok``, ``errors`` by reason, ``analysed_s``, rows with ``patches``, rows with
    ``musicnn`` values) are read back from the committed
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
            .agg(
                F.count(F.lit(1)).alias("n"),
                F.sum("analysed_s").alias("analysed_s"),
                F.count("patches").alias("patches"),
                F.count(musicnn_names()[0]).alias("musicnn"),
            )
            .collect()
        )
    finally:
        context.setJobDescription(None)
    stats = {"chunk_id": chunk, "rows": 0, "ok": 0, "errors": {}, "analysed_s": 0.0}
    stats["patches"] = stats["musicnn"] = 0
    for row in counts:
        stats["rows"] += row.n
        stats["patches"] += row.patches
        stats["musicnn"] += row.musicnn
        stats["analysed_s"] += row.analysed_s or 0.0
        if row.status == "ok":
            stats["ok"] += row.n
        else:
            stats["errors"][row.error_reason] = row.n
    stats["published_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_json(spark, f"{directory}/{MARKER}", stats)
    return stats


def write_summary(spark: SparkSession, output: str, run_id: str, summary: Mapping) -> str:
    """Write a run's summary as ``summary.json`` in its directory; return its path."""
    path = f"{run_path(output, run_id)}/{SUMMARY}"
    write_json(spark, path, summary)
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
    """Whether ``path`` holds a feature table: a view state, runs, or chunks published before
    the view existed. Perhaps none of its chunks is published yet (:func:`published_chunks`)."""
    return any(path_exists(spark, _join(path, name)) for name in (VIEW_STATE, RUNS)) or bool(
        published_chunks(spark, path)
    )


def normalized_path(path: Column) -> Column:
    """A path with ``s3a://`` and ``s3n://`` spelled ``s3://``: one object, one key."""
    return F.regexp_replace(path, S3_ALIASES, "s3://")


def path_key(path: str) -> str:
    """The Python twin of :func:`normalized_path`."""
    return re.sub(S3_ALIASES, "s3://", path)


def row_key() -> Column:
    """What identifies a file's row: its path, else (imported rows) its track id."""
    return F.coalesce(
        normalized_path(F.col("path")),
        F.concat(F.lit("track_id:"), F.col("track_id").cast("string")),
    )


def latest_rows(rows: DataFrame) -> DataFrame:
    """One row per file: among the rows of the file as it is now (same size, modification
    time, extractor version and settings as its latest row), the latest ``ok`` row, else the
    latest error.

    So a transient error (a timeout) keeps the file's earlier features, while a file that
    changed, or was extracted with another version or settings, gets its latest row even
    when that is an error. Chunk ids sort by time, so "latest" is the largest.
    """
    by_key = Window.partitionBy(row_key())
    signature = F.struct("file_size", "modified_at", "extractor_version", "settings")
    current = F.first(signature).over(by_key.orderBy(F.col("chunk_id").desc()))
    best = by_key.orderBy(
        signature.eqNullSafe(F.col("_current")).desc(),
        (F.col("status") == "ok").desc(),
        F.col("chunk_id").desc(),
    )
    return (
        rows.withColumn("_current", current)
        .withColumn("_rank", F.row_number().over(best))
        .where("_rank = 1")
        .drop("_current", "_rank")
    )


def view_state(spark: SparkSession, output: str) -> dict | None:
    """The state of the view at ``output`` (``_table.json``), None before the first view."""
    try:
        return json.loads(read_bytes(spark, _join(output, VIEW_STATE)))
    except FileNotFoundError:
        return None
    except ValueError:  # written in one step, so never partial: someone else's file
        return None


def _chunks(spark: SparkSession, output: str, since: str | None) -> dict[str, str]:
    """Directories of the published chunks by ``run/chunk`` name, from the run ``since`` on."""
    chunks = {"/".join(path.rsplit("/", 2)[-2:]): path for path in published_chunks(spark, output)}
    return {name: path for name, path in chunks.items() if since is None or name >= since}


def _read_rows(spark: SparkSession, paths: Iterable[str]) -> DataFrame:
    """The rows of Parquet files or folders with :data:`FEATURE_SCHEMA`; none for no path."""
    paths = list(paths)
    if not paths:
        return spark.createDataFrame([], FEATURE_SCHEMA)
    return spark.read.schema(FEATURE_SCHEMA).parquet(*paths)


def _view_files(spark: SparkSession, output: str) -> dict[int, str]:
    """The view's files by bucket."""
    fs, pattern = hadoop_fs(spark, _join(output, "part-*.parquet"))
    files = {}
    for status in fs.globStatus(pattern) or []:
        if VIEW_FILE.fullmatch(status.getPath().getName()):
            files[int(status.getPath().getName()[5:10])] = status.getPath().toString()
    return files


def _bucket(count: int) -> Column:
    """The view file that holds a row: a hash of its key."""
    return F.pmod(F.xxhash64(row_key()), F.lit(count))


def refresh_view(
    spark: SparkSession,
    output: str,
    *,
    buckets: int = DEFAULT_BUCKETS,
    since: str | None = None,
) -> dict:
    """Rewrite the view of ``output`` from its published chunks, when it lags behind them.

    Each bucket file of the view is written to a staging folder, then replaces the view's
    file in one step (:func:`fmagenre.platform.hadoop.replace_file`); a bucket left without
    rows loses its file. The state file, replaced last, lists the chunks the view holds.

    When chunks were only added since the last refresh, only the buckets their rows fall in
    are rewritten, from those buckets' rows and the new rows (so each refresh costs what it
    adds, not the whole table); otherwise (the first view, an overwrite) every bucket, from
    every chunk. The two give the same rows, but for a file whose new row is an error with the
    size and modification time of an earlier version whose ok row the view no longer holds.

    Parameters
    ----------
    buckets : int
        Files of the view; for a table's first view only (the state keeps the count).
    since : str or None
        A run id: from now on the view leaves out the chunks of earlier runs (an overwrite).
        None keeps the state's.

    Returns
    -------
    dict
        The view's state: ``buckets``, ``since``, ``chunks`` and ``rows``.
    """
    state = view_state(spark, output)
    if state is None:
        # Fix the bucket count before any view file exists, for a refresh cut short.
        state = {"buckets": buckets, "since": None, "chunks": None, "rows": 0}
        write_json(spark, _join(output, VIEW_STATE), state)
    since = since or state["since"]
    chunks = _chunks(spark, output, since)
    names = list(chunks)
    if state["chunks"] == names and state["since"] == since:
        return state
    count = state["buckets"]
    earlier = set(state["chunks"] or ())
    whole = state["chunks"] is None or state["since"] != since or not earlier <= set(names)
    view = _view_files(spark, output)
    staging = _join(output, STAGING, secrets.token_hex(6))
    staged: dict[int, list[str]] = {}
    context = spark.sparkContext
    context.setJobDescription(f"refresh the view of {output}")
    try:
        if whole:
            rows = _read_rows(spark, chunks.values()).withColumn("_bucket", _bucket(count))
        else:
            added = [path for name, path in chunks.items() if name not in earlier]
            rows = _read_rows(spark, added).withColumn("_bucket", _bucket(count))
            touched = sorted(row[0] for row in rows.select("_bucket").distinct().collect())
            kept = _read_rows(spark, [view[b] for b in touched if b in view])
            rows = rows.unionByName(kept.withColumn("_bucket", _bucket(count)))
        if chunks:
            (
                latest_rows(rows)
                .repartition(count, "_bucket")
                .sortWithinPartitions("_bucket", row_key())
                .write.option("maxRecordsPerFile", 0)
                .partitionBy("_bucket")
                .parquet(staging)
            )
            fs, pattern = hadoop_fs(spark, _join(staging, "_bucket=*", "*.parquet"))
            for status in fs.globStatus(pattern) or []:
                bucket = int(status.getPath().getParent().getName().split("=")[1])
                staged.setdefault(bucket, []).append(status.getPath().toString())
        if any(len(files) != 1 for files in staged.values()):
            raise RuntimeError(f"staged view {staging} has several files for one bucket")
        for bucket, (source,) in sorted(staged.items()):
            replace_file(spark, source, _join(output, f"part-{bucket:05d}.parquet"))
        if whole:
            for bucket, path in view.items():
                if bucket not in staged:
                    fs, stale = hadoop_fs(spark, path)
                    fs.delete(stale, False)
        total = _read_rows(spark, _view_files(spark, output).values()).count()
    finally:
        context.setJobDescription(None)
        fs, path = hadoop_fs(spark, staging)
        fs.delete(path, True)
    state = {
        "buckets": count,
        "since": since,
        "chunks": names,
        "rows": total,
        "refreshed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json(spark, _join(output, VIEW_STATE), state)
    return state


def read_features(spark: SparkSession, output: str) -> DataFrame:
    """The logical feature table: one row per file (see :func:`latest_rows`).

    The view, as every other Parquet reader sees it; when the view lags behind the published
    chunks (a run killed before its refresh) or there is none yet (a table written by an
    earlier version), the same rows computed from the chunks.

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
    state = view_state(spark, output)
    chunks = _chunks(spark, output, state["since"] if state else None)
    if state is not None and state["chunks"] == list(chunks):
        return _read_rows(spark, _view_files(spark, output).values())
    return latest_rows(_read_rows(spark, chunks.values()))
