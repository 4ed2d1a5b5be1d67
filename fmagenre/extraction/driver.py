"""Spark layer of feature extraction: audio files in, one feature row per file out.

:func:`run_extraction` lists the files under the inputs with Spark's binary file source (no
content read), leaves out those that already have an ``ok`` row for the same size,
modification time, extractor version and value-changing settings, and processes the rest in
chunks of ``chunk_files``. For each chunk it reads the files' bytes (binary file source,
explicit paths), runs :func:`fmagenre.extraction.worker.analyse_frames` on Arrow batches of
``batch_size`` files in the Python workers (``mapInPandas``), publishes the chunk and
refreshes the table's view (:mod:`fmagenre.tables.feature_table`). Every file gets a row: those that
cannot be decoded or analysed, crash the analysis or run past the time limit have ``status``
"error" and a reason.

Tasks. The file source packs the files of a chunk into about ``partitions`` tasks, largest
files first, by bytes with an opening cost of one average file per file
(:func:`file_source_conf`): the bytes are read where they are analysed, never shuffled, and
the small last tasks keep every core busy to the end of a chunk.

Memory: see :mod:`fmagenre.extraction.worker`, the Python workers' side.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import partial, reduce
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from fmagenre.audio.names import MUSICNN_MODEL, flat_names
from fmagenre.audio.patches import PatchSettings
from fmagenre.extraction.worker import MUSICNN_COLUMNS, RESULT_SCHEMA, WINDOW_SCHEMA, analyse_frames
from fmagenre.platform.config import ExtractConfig
from fmagenre.platform.hadoop import hadoop_fs
from fmagenre.platform.session import session_settings
from fmagenre.platform.threads import THREAD_VARS
from fmagenre.tables.feature_table import (
    check_output,
    chunk_id,
    drop_runs_before,
    new_run_id,
    open_table,
    path_key,
    publish_chunk,
    read_features,
    refresh_view,
    run_path,
    write_summary,
)

log = logging.getLogger(__name__)

ARROW_BATCH = "spark.sql.execution.arrow.maxRecordsPerBatch"


class ListedFile(NamedTuple):
    """A file found under the inputs: its path as the binary file source spells it."""

    path: str
    size: int
    modified_us: int


def session_conf(spark_conf: Mapping[str, str], config: ExtractConfig) -> dict[str, str]:
    """Spark properties for a session that runs the extraction.

    The ``[spark]`` properties, plus the thread variables of the Python workers' environment
    (the workers also pin their pools at run time, for sessions built without these).
    :func:`run_extraction` sets the Arrow batch size and the file source's packing itself.
    """
    conf = dict(spark_conf)
    for var in THREAD_VARS:
        conf[f"spark.executorEnv.{var}"] = str(config.threads)
    return conf


def patch_settings(config: ExtractConfig) -> PatchSettings | None:
    """The patch settings that ``config`` asks the extraction job for (``patches``,
    ``patch_count``), None when it asks for none."""
    return PatchSettings(count=config.patch_count) if config.patches else None


def settings_key(config: ExtractConfig, patches: PatchSettings | None = None) -> str:
    """The settings that change a file's values, as stored in the ``settings`` column:
    ``max_duration``, ``fma_compat``, then ``;`` and the patch settings' key when there are
    ``patches``, then ``;musicnn=MODEL`` when the musicnn family is asked."""
    key = f"max_duration={config.max_duration:g};fma_compat={str(config.fma_compat).lower()}"
    if patches is not None:
        key = f"{key};{patches.key()}"
    return f"{key};musicnn={MUSICNN_MODEL}" if config.musicnn else key


def track_id_column(path: Column) -> Column:
    """FMA's track id from a path's file name (``.../000002.mp3`` -> 2), else null."""
    digits = F.regexp_extract(path, r"(?:^|/)(\d{1,18})\.[^/.]+$", 1)
    return F.when(digits != "", digits.cast("long"))


def input_exists(spark: SparkSession, path: str) -> bool:
    """Whether a path (or Hadoop glob) names something that exists."""
    fs, hadoop_path = hadoop_fs(spark, path)
    return bool(fs.globStatus(hadoop_path))


def list_inputs(spark: SparkSession, inputs: Sequence[str], *, glob: str) -> list[ListedFile]:
    """The files under ``inputs`` whose names match ``glob``, by path.

    Only file metadata is read, not the content. Paths are as the binary file source's
    ``path`` column writes them (``file:/data/000002.mp3``); spellings of one object
    (``s3://`` and ``s3a://``) count once.

    Raises
    ------
    FileNotFoundError
        When an input does not exist.
    """
    for path in inputs:
        if not input_exists(spark, path):
            raise FileNotFoundError(f"input {path} does not exist")
    source = (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .option("pathGlobFilter", glob)
        .load(list(inputs))
    )
    rows = source.select("path", "length", F.unix_micros("modificationTime").alias("us"))
    listed = {row.path: ListedFile(row.path, row.length, row.us) for row in rows.collect()}
    every = source.inputFiles()
    if len(every) > len(listed):
        listed.update((f.path, f) for f in _empty_files(spark, every, listed))
    unique = {path_key(path): file for path, file in sorted(listed.items())}
    return sorted(unique.values())


def _empty_files(spark: SparkSession, uris: Sequence[str], listed: Mapping[str, ListedFile]):
    """The zero-byte files among ``uris``, which Spark's file scans skip.

    ``inputFiles`` gives URIs (``file:///a%20b.mp3``): those whose decoded form is not among
    the scanned paths are looked up through Hadoop, which also gives the path's own spelling.
    """
    jvm = spark.sparkContext._jvm
    for uri in uris:
        parts = urlsplit(uri)
        authority = f"//{parts.netloc}" if parts.netloc else ""
        if f"{parts.scheme}:{authority}{unquote(parts.path)}" in listed:
            continue
        fs, _ = hadoop_fs(spark, uri)
        status = fs.getFileStatus(jvm.org.apache.hadoop.fs.Path(jvm.java.net.URI(uri)))
        if status.getLen() == 0:
            yield ListedFile(status.getPath().toString(), 0, status.getModificationTime() * 1000)


def _literal_path(path: str) -> str:
    """A path escaped so that Spark does not expand the glob characters of its name."""
    return "".join("\\" + c if c in "\\*?[]{}" else c for c in path)


def _readable(files: Sequence[ListedFile], config: ExtractConfig) -> list[ListedFile]:
    limit = config.max_file_mb * 2**20
    return [f for f in files if 0 < f.size <= limit]


def file_source_conf(
    spark: SparkSession, files: Sequence[ListedFile], config: ExtractConfig
) -> dict[str, str]:
    """Spark SQL settings that pack ``files`` into about ``config.partitions`` read tasks.

    The file source sorts files by size, largest first, and fills tasks up to a byte budget
    counting each file as its size plus an opening cost. With the cost set to the average file
    size and the budget to the total over the wanted task count, tasks get similar work
    (bytes and files), and the small ones come last.
    """
    readable = _readable(files, config)
    wanted = config.partitions or 4 * spark.sparkContext.defaultParallelism
    tasks = max(1, min(wanted, len(readable)))
    total = sum(f.size for f in readable)
    open_cost = max(1, total // max(1, len(readable)))
    budget = max(1, -(-(total + open_cost * len(readable)) // tasks))
    return {
        ARROW_BATCH: str(config.batch_size),
        "spark.sql.files.maxPartitionBytes": str(budget),
        "spark.sql.files.openCostInBytes": str(open_cost),
        "spark.sql.files.minPartitionNum": str(tasks),
    }


def extraction_frame(
    spark: SparkSession,
    files: Sequence[ListedFile],
    config: ExtractConfig,
    *,
    window: float | None = None,
    hop: float | None = None,
    patches: PatchSettings | None = None,
) -> DataFrame:
    """A lazy DataFrame of the feature rows of ``files`` (as listed by :func:`list_inputs`).

    Empty files and files over ``config.max_file_mb`` are not read. The rows have every
    column of :data:`fmagenre.tables.feature_table.FEATURE_SCHEMA` but ``chunk_id``; with
    ``window`` (seconds, every ``hop``), those of
    :data:`fmagenre.extraction.worker.WINDOW_SCHEMA` and ``track_id``: a row per file, then
    one per window. Run its action within :func:`fmagenre.platform.session.session_settings`
    of :func:`file_source_conf`, so that the files are spread over the tasks where they are
    read.

    ``patches`` (settings, e.g. :func:`patch_settings` of the config) also computes the
    log-mel patches in the same decoding: the ``patches`` column holds their bytes
    (:func:`fmagenre.audio.patches.patches_from_bytes`), ``patch_error`` why a file or
    window has none; the ``settings`` column ends with their key. Without, the feature rows'
    two patch columns are null and window rows have none.
    """
    if patches is not None and not isinstance(patches, PatchSettings):
        raise TypeError(f"patches must be PatchSettings or None, got {type(patches).__name__}")
    readable = _readable(files, config)
    unread = sorted(set(files) - set(readable))
    sources = []
    if readable:
        sources.append(
            spark.read.format("binaryFile")
            .load([_literal_path(f.path) for f in readable])
            .select(
                "path",
                F.col("length").alias("file_size"),
                F.unix_micros("modificationTime").alias("modified_us"),
                "content",
            )
        )
    if unread:
        sources.append(
            spark.createDataFrame(
                [tuple(f) for f in unread], "path string, file_size long, modified_us long"
            ).withColumn("content", F.lit(None).cast("binary"))
        )
    if window is not None:
        windows = reduce(DataFrame.unionByName, sources).mapInPandas(
            partial(analyse_frames, config=config, window=window, hop=hop, patches=patches),
            WINDOW_SCHEMA,
        )
        if patches is None:
            windows = windows.drop("patches", "patch_error")
        if not config.musicnn:
            windows = windows.drop(*MUSICNN_COLUMNS)
        return windows.withColumn("track_id", track_id_column(F.col("path")))
    results = reduce(DataFrame.unionByName, sources).mapInPandas(
        partial(analyse_frames, config=config, patches=patches), RESULT_SCHEMA
    )
    features = F.expr(f"IF(status = 'ok', array({', '.join(flat_names())}), NULL)")
    return (
        results.withColumn("track_id", track_id_column(F.col("path")))
        .withColumn("features", features)
        .withColumn("modified_at", F.timestamp_micros("modified_us"))
        .withColumn("settings", F.lit(settings_key(config, patches)))
        .drop("modified_us")
    )


def _done(spark: SparkSession, output: str, config: ExtractConfig) -> dict[str, tuple[int, int]]:
    """(size, modification time) of each file with an ``ok`` row from the same extractor and
    value-changing settings, by :func:`fmagenre.tables.feature_table.path_key`."""
    from fmagenre.audio.features import EXTRACTOR_VERSION

    rows = (
        read_features(spark, output)
        .where(
            (F.col("status") == "ok")
            & (F.col("extractor_version") == EXTRACTOR_VERSION)
            & (F.col("settings") == settings_key(config, patch_settings(config)))
            & F.col("path").isNotNull()
        )
        .select("path", "file_size", F.unix_micros("modified_at").alias("us"))
    )
    return {path_key(row.path): (row.file_size, row.us) for row in rows.collect()}


def run_extraction(
    spark: SparkSession,
    *,
    inputs: Sequence[str],
    output: str,
    config: ExtractConfig,
    overwrite: bool = False,
) -> dict:
    """Extract the features of every file under ``inputs`` that has no current ``ok`` row.

    A file is extracted again when its size or modification time changed, or when the
    extractor version or a value-changing setting (``max_duration``, ``fma_compat``, the
    patches asked by ``patches`` and ``patch_count``, the ``families``) did; files with error
    rows are tried again. With ``config.patches`` the rows also hold each file's log-mel
    patches (:func:`extraction_frame`), with ``musicnn`` in ``config.families`` the musicnn
    family.

    Parameters
    ----------
    spark : SparkSession
    inputs : sequence of str
        Directories (searched recursively), files or globs; any Hadoop path.
    output : str
        The feature table directory (see :mod:`fmagenre.tables.feature_table`).
    config : ExtractConfig
    overwrite : bool
        Extract every file, and once done, replace the table's rows with this run's and
        delete the earlier runs (readers see the earlier rows until then).

    Returns
    -------
    dict
        The run's summary, also written to ``OUTPUT/_runs/<run_id>/summary.json``.

    Raises
    ------
    FileNotFoundError
        When an input does not exist.
    fmagenre.tables.feature_table.OutputLayoutError
        When ``output`` holds something other than a feature table.
    """
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    run_id = new_run_id()
    check_output(spark, output)
    log.info("run %s: listing %s (files matching %s)", run_id, ", ".join(inputs), config.glob)
    listed = list_inputs(spark, inputs, glob=config.glob)
    view = open_table(spark, output, buckets=config.table_files)
    done = {} if overwrite else _done(spark, output, config)
    todo = [f for f in listed if done.get(path_key(f.path)) != (f.size, f.modified_us)]
    chunks = [todo[i : i + config.chunk_files] for i in range(0, len(todo), config.chunk_files)]
    log.info(
        "run %s: %d files found, %d already extracted, %d to extract in %d chunk(s)",
        run_id,
        len(listed),
        len(listed) - len(todo),
        len(todo),
        len(chunks),
    )
    totals = {"rows": 0, "ok": 0, "errors": {}, "analysed_s": 0.0, "patches": 0, "musicnn": 0}
    for index, files in enumerate(chunks):
        chunk = chunk_id(run_id, index)
        log.info("chunk %d/%d: extracting %d files", index + 1, len(chunks), len(files))
        frame = extraction_frame(spark, files, config, patches=patch_settings(config)).withColumn(
            "chunk_id", F.lit(chunk)
        )
        description = f"extract features: chunk {index + 1}/{len(chunks)}, {len(files)} files"
        with session_settings(spark, file_source_conf(spark, files, config)):
            stats = publish_chunk(spark, frame, output, chunk, description=description)
        if stats["rows"] != len(files):
            log.error("chunk %s: %d rows for %d files", chunk, stats["rows"], len(files))
        view = refresh_view(spark, output)
        totals["rows"] += stats["rows"]
        totals["ok"] += stats["ok"]
        totals["analysed_s"] += stats["analysed_s"]
        totals["patches"] += stats["patches"]
        totals["musicnn"] += stats["musicnn"]
        for reason, count in stats["errors"].items():
            totals["errors"][reason] = totals["errors"].get(reason, 0) + count
        log.info(
            "chunk %d/%d: published %s (%d ok, %d errors), view %d rows, after %.1f s",
            index + 1,
            len(chunks),
            chunk,
            stats["ok"],
            stats["rows"] - stats["ok"],
            view["rows"],
            time.perf_counter() - started,
        )
    if overwrite:
        # Until now readers saw the earlier rows of the files not redone yet; from here on,
        # this run's rows alone, and the earlier runs go.
        log.info("run %s: leaving the earlier runs of %s out, then deleting them", run_id, output)
        view = refresh_view(spark, output, since=run_id)
        drop_runs_before(spark, output, run_id)
    wall = time.perf_counter() - started
    summary = {
        "job": "extract_features",
        "run_id": run_id,
        "inputs": list(inputs),
        "output": output,
        "run_dir": run_path(output, run_id),
        "started_at": started_at.isoformat(timespec="seconds"),
        "files_seen": len(listed),
        "skipped": len(listed) - len(todo),
        "processed": len(todo),
        "ok": totals["ok"],
        "errors": dict(sorted(totals["errors"].items())),
        "missing": len(todo) - totals["rows"],
        "with_patches": totals["patches"],
        "with_musicnn": totals["musicnn"],
        "chunks": len(chunks),
        "table_rows": view["rows"],
        "analysed_s": round(totals["analysed_s"], 3),
        "wall_s": round(wall, 3),
        "tracks_per_s": round(len(todo) / wall, 3),
        "x_real_time": round(totals["analysed_s"] / wall, 2),
        "config": dataclasses.asdict(config),
    }
    summary["summary_file"] = write_summary(spark, output, run_id, summary)
    log.info("run %s: done in %.1f s, summary in %s", run_id, wall, summary["summary_file"])
    return summary


def format_summary(summary: Mapping) -> str:
    """The printed form of a run's summary."""
    errors = summary["errors"]
    by_reason = ", ".join(f"{reason} {count}" for reason, count in errors.items())
    lines = [
        f"extract_features {summary['run_id']}",
        f"  files seen            {summary['files_seen']}",
        f"  skipped (already ok)  {summary['skipped']}",
        f"  processed             {summary['processed']}",
        f"  ok                    {summary['ok']}",
        f"  errors                {sum(errors.values())}" + (f" ({by_reason})" if errors else ""),
        *(
            [f"  with patches          {summary['with_patches']}"]
            if summary["config"].get("patches")
            else []
        ),
        *(
            [f"  with musicnn          {summary['with_musicnn']}"]
            if "musicnn" in summary["config"].get("families", "")
            else []
        ),
        f"  table rows            {summary['table_rows']} (one per file)",
        f"  wall time             {summary['wall_s']:.1f} s",
        f"  tracks/s              {summary['tracks_per_s']:.2f}",
        f"  x real time           {summary['x_real_time']:.1f}"
        f" ({summary['analysed_s']:.0f} s of audio analysed)",
        f"  output                {summary['output']}",
        f"  summary               {summary['summary_file']}",
    ]
    return "\n".join(lines)
