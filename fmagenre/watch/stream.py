"""The watch job: a Structured Streaming query that classifies the files landing in a folder.

Each micro-batch of the query (:class:`Watch`):

1. lists the landing folder with the extraction job's own listing
   (:func:`fmagenre.extraction.driver.list_inputs`: its glob, recursion, empty files);
2. keeps the file versions (path, size, modification time) without a committed prediction
   (:func:`fmagenre.watch.ledger.classified`), and of those the ones whose last change is at
   least ``min_age_s`` old (an upload still being written changes its modification time),
   oldest first, at most ``max_files``;
3. extracts them as the extraction job does (its worker, limits and error rows; the patches
   or musicnn values the model needs) into a chunk of ``OUTPUT/features``, predicts from the
   chunk's rows and commits the predictions (:func:`fmagenre.watch.ledger.commit`);
4. logs the batch (files, ok, errors, seconds, latency from each file's modification time to
   its prediction) and replaces ``OUTPUT/_status.json``.

Why not Spark's file stream source: it gives zero-byte files no row (its scan skips them) and
never reads a file again under a name it has seen (its seen-files log is keyed by path), so a
replaced upload would keep its old genre. The query's source is a one-row-per-trigger
``rate-micro-batch`` stream: Spark schedules the micro-batches (a processing-time trigger, or
``availableNow`` for ``once``), keeps its checkpoint and reports progress; what is done is the
ledger in the output, so exactly once holds across ``kill -9`` and restarts.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fmagenre.audio.names import uses_musicnn
from fmagenre.errors import InputError
from fmagenre.extraction.driver import (
    extraction_frame,
    file_source_conf,
    input_exists,
    list_inputs,
)
from fmagenre.platform.config import ExtractConfig
from fmagenre.platform.session import session_settings
from fmagenre.similarity.index import read_index
from fmagenre.similarity.search import (
    embedded,
    index_network,
    neighbours,
    query_patches,
    query_rows,
)
from fmagenre.tables.feature_table import (
    FEATURE_SCHEMA,
    check_output,
    chunk_id,
    new_run_id,
    open_table,
    publish_chunk,
    refresh_view,
    run_path,
)
from fmagenre.tables.label_table import ARROW_ENABLED
from fmagenre.watch import ledger
from fmagenre.watch.lease import Lease

log = logging.getLogger(__name__)

QUERY_NAME = "fmagenre-watch"
LATENCIES_KEPT = 1000


class WatchOptionError(InputError, ValueError):
    """An option of the watch out of its range."""


@dataclass(frozen=True)
class WatchOptions:
    """How the watch paces itself.

    Attributes
    ----------
    max_files : int
        Files per micro-batch at most (a backlog is worked through in batches of this size).
    interval_s : float
        Seconds between the starts of micro-batches (Spark's processing-time trigger).
    min_age_s : float
        A file waits until its modification time is this old: an upload copied in place
        (not written under a hidden or other name and renamed) is never read half.
    view_every_s : float
        Seconds between refreshes of the feature table's view (each rewrites the whole view;
        the chunks hold the rows meanwhile); the view is also refreshed when the watch stops.
    similar : str or None
        A similar-track index (``jobs/similar.py``): each prediction row also lists the
        ``similar_k`` nearest indexed tracks (column ``similar``); None: none.
    similar_k : int
    """

    max_files: int = 64
    interval_s: float = 5.0
    min_age_s: float = 5.0
    view_every_s: float = 600.0
    similar: str | None = None
    similar_k: int = 10

    def __post_init__(self):
        for name in ("max_files", "similar_k"):
            if getattr(self, name) < 1:
                raise WatchOptionError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("interval_s", "min_age_s", "view_every_s"):
            if getattr(self, name) < 0:
                raise WatchOptionError(f"{name} must be 0 or more, got {getattr(self, name)}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _stamp(rows: DataFrame, run_id: str) -> DataFrame:
    """The prediction rows of a batch with its id, their time and latency."""
    us = F.unix_micros(F.col("predicted_at")) - F.unix_micros(F.col("modified_at"))
    return (
        rows.withColumn("batch", F.lit(run_id))
        .withColumn("predicted_at", F.current_timestamp())
        .withColumn("latency_s", us / 1e6)
    )


class Watch:
    """The state of one watch: its model, paths, ledger and counts.

    Parameters
    ----------
    spark : SparkSession
    predictor : fmagenre.network.inference.Predictor
        What the model directory predicts with (:func:`~fmagenre.network.inference.load_predictor`).
    model_dir, input, output, checkpoint : str
        The model directory, the landing folder, the output folder and the query's checkpoint.
    extract : ExtractConfig
        The extraction settings (glob, limits); the patches and musicnn values come from the
        model's needs.
    options : WatchOptions

    Raises
    ------
    fmagenre.watch.ledger.WatchSetupError
        When the output or checkpoint belongs to another watch or job, or another watch
        writes the output now (:class:`fmagenre.watch.lease.LeaseError`).
    fmagenre.similarity.search.IndexMismatchError
        When the ``similar`` index's network cuts other patches than the model's.
    """

    def __init__(
        self,
        spark: SparkSession,
        predictor,
        *,
        model_dir: str,
        input: str,
        output: str,
        checkpoint: str,
        extract: ExtractConfig,
        options: WatchOptions,
    ):
        self.spark = spark
        self.predictor = predictor
        self.model_dir, self.input, self.output = model_dir, input, output
        self.checkpoint = checkpoint
        self.options = options
        self.index = (
            None
            if options.similar is None
            else read_index(spark, options.similar, option="--similar")
        )
        self.embedder = None if self.index is None else index_network(spark, self.index)
        self.extract = extract.with_musicnn(
            predictor.musicnn or (self.index is not None and uses_musicnn(self.index.space.columns))
        )
        self.patches = query_patches(
            options.similar,
            None if self.embedder is None else self.embedder.settings,
            predictor.patch_settings,
        )
        self.features = ledger.join(output, ledger.FEATURES)
        ledger.claim(
            spark,
            output=output,
            checkpoint=checkpoint,
            mine=ledger.identity(model=model_dir, input=input, output=output),
        )
        self.lease = Lease(spark, output)
        self.lease.acquire()
        try:
            check_output(spark, self.features)
            open_table(spark, self.features, buckets=self.extract.table_files)
            self.done = ledger.classified(spark, output)
        except BaseException:
            self.lease.release()
            raise
        self.totals = {"batches": 0, "files": 0, "ok": 0, "errors": 0}
        #: The latencies of the last files classified, for the status' median.
        self.latencies: deque[float] = deque(maxlen=LATENCIES_KEPT)
        self.waiting = 0
        self.ready_in_s: float | None = None
        self.last_batch: dict | None = None
        self.state = "starting"
        self.failure: BaseException | None = None
        self.stopping = False
        self._busy = threading.Lock()
        self._refreshed = time.monotonic()
        self._told_missing = False
        log.info(
            "watch %s: %d file versions classified before; model %s, output %s",
            input,
            len(self.done),
            model_dir,
            output,
        )

    # -- one micro-batch ---------------------------------------------------------------------

    def _ready(self) -> list:
        """The files to classify now, oldest first (at most ``max_files``); sets ``waiting``
        (unclassified files left for later) and ``ready_in_s`` (when the youngest waiting
        upload is old enough, None when none waits on its age)."""
        listed = list_inputs(self.spark, [self.input], glob=self.extract.glob)
        new = [f for f in listed if ledger.version(f) not in self.done]
        now_us = time.time() * 1e6
        min_age_us = self.options.min_age_s * 1e6
        young = [f for f in new if now_us - f.modified_us < min_age_us]
        old = sorted(set(new) - set(young), key=lambda f: (f.modified_us, f.path))
        ready = old[: self.options.max_files]
        self.waiting = len(new) - len(ready)
        self.ready_in_s = (
            min(f.modified_us + min_age_us - now_us for f in young) / 1e6 if young else None
        )
        return ready

    def step(self) -> dict | None:
        """Classify the files that are ready (:meth:`_ready`); return the batch's record,
        None when none was."""
        if not input_exists(self.spark, self.input):
            self.state = "waiting for the landing folder"
            if not self._told_missing:
                log.warning("landing folder %s does not exist yet: waiting for it", self.input)
                self._told_missing = True
            return None
        self._told_missing = False
        files = self._ready()
        if not files:
            self.state = "idle"
            return None
        self.state = "running"
        started = time.perf_counter()
        run_id = new_run_id()
        chunk = chunk_id(run_id, 0)
        frame = extraction_frame(self.spark, files, self.extract, patches=self.patches).withColumn(
            "chunk_id", F.lit(chunk)
        )
        settings = {
            **file_source_conf(self.spark, files, self.extract),
            # An upload deleted or renamed between the listing and the read is skipped.
            "spark.sql.files.ignoreMissingFiles": "true",
        }
        description = f"watch: extract {len(files)} files"
        with session_settings(self.spark, settings):
            publish_chunk(self.spark, frame, self.features, chunk, description=description)
        rows = self.spark.read.schema(FEATURE_SCHEMA).parquet(
            f"{run_path(self.features, run_id)}/{chunk.rsplit('/', 1)[1]}"
        )
        scored = self.predictor.predictions(rows, extra=("file_size", "modified_at"), scores=True)
        if self.index is not None:
            scored = self._with_similar(rows, scored)
        self.spark.sparkContext.setJobDescription(f"watch: predict {len(files)} files")
        try:
            path = ledger.commit(
                self.spark,
                _stamp(scored, run_id),
                self.output,
                run_id,
                before_rename=self.lease.check,
            )
        finally:
            self.spark.sparkContext.setJobDescription(None)
        counts = ledger.committed_rows(self.spark, path)
        self.done |= {version for version, _, _ in counts}
        ok = sum(status == "ok" for _, status, _ in counts)
        latencies = sorted(latency for _, _, latency in counts)
        self.latencies += latencies
        record = {
            "batch": run_id,
            "files": len(counts),
            "ok": ok,
            "errors": len(counts) - ok,
            "seconds": round(time.perf_counter() - started, 2),
            "latency_median_s": round(statistics.median(latencies), 2),
            "latency_max_s": round(latencies[-1], 2),
            "waiting": self.waiting,
            "predictions": path,
            "finished_at": _now(),
        }
        self.totals["batches"] += 1
        for key in ("files", "ok", "errors"):
            self.totals[key] += record[key]
        self.last_batch = record
        log.info(
            "batch %d: %d files (%d ok, %d errors) in %.1f s, latency median %.1f s, max %.1f s;"
            " %d waiting",
            self.totals["batches"],
            record["files"],
            ok,
            record["errors"],
            record["seconds"],
            record["latency_median_s"],
            record["latency_max_s"],
            self.waiting,
        )
        if time.monotonic() - self._refreshed >= self.options.view_every_s:
            self.refresh()
        return record

    def _with_similar(self, rows: DataFrame, scored: DataFrame) -> DataFrame:
        """``scored`` with each file's nearest indexed tracks: column ``similar``, an array
        of (rank, track_id, path, genre, distance) by rank; null for a file without."""
        queries = query_rows(
            self.spark,
            embedded(self.embedder, rows),
            self.index,
            source="the new files",
            settings={},
        )
        found = neighbours(
            self.spark,
            self.index,
            queries,
            k=self.options.similar_k,
            labels=queries["path"].tolist(),
            source="the new files",
        )
        found = found[found["rank"].notna()].astype({"rank": "int32"})
        with session_settings(self.spark, {ARROW_ENABLED: "true"}):  # nullable track ids
            near = self.spark.createDataFrame(
                found[["query_path", "rank", "track_id", "path", "genre", "distance"]],
                "query_path string, rank int, track_id long, path string, genre string,"
                " distance double",
            )
        lists = near.groupBy(F.col("query_path").alias("_query")).agg(
            F.sort_array(
                F.collect_list(F.struct("rank", "track_id", "path", "genre", "distance"))
            ).alias("similar")
        )
        return scored.join(lists, scored["path"] == lists["_query"], "left").drop("_query")

    def refresh(self) -> None:
        """Bring the feature table's view up to date with its chunks."""
        refresh_view(self.spark, self.features)
        self._refreshed = time.monotonic()

    # -- the streaming query -----------------------------------------------------------------

    def status(self) -> dict:
        """Where the watch stands, as ``OUTPUT/_status.json`` holds it."""
        latencies = sorted(self.latencies)
        return {
            "state": self.state,
            "updated_at": _now(),
            "model": self.model_dir,
            "input": self.input,
            "output": self.output,
            "checkpoint": self.checkpoint,
            **self.totals,
            "waiting": self.waiting,
            "latency_median_s": round(statistics.median(latencies), 2) if latencies else None,
            "last_batch": self.last_batch,
            "options": asdict(self.options),
        }

    def _on_tick(self, _frame: DataFrame, _batch_id: int, *, once: bool) -> None:
        if self.stopping:
            return
        with self._busy:
            self._tick(once)

    def _tick(self, once: bool) -> None:
        try:
            while self.step() is not None and once:
                pass
            while once and self.ready_in_s is not None:
                # Catching up: uploads still too young to read are waited for.
                time.sleep(self.ready_in_s + 0.05)
                while self.step() is not None:
                    pass
            ledger.write_status(self.spark, self.output, self.status())
        except BaseException as error:
            self.failure = error
            raise

    def start(self, *, once: bool = False):
        """Start the streaming query (``once``: classify what is there, then stop)."""
        ticks = self.spark.readStream.format("rate-micro-batch").option("rowsPerBatch", 1).load()
        trigger = (
            {"availableNow": True}
            if once
            else {"processingTime": f"{int(self.options.interval_s * 1000)} milliseconds"}
        )
        return (
            ticks.writeStream.queryName(QUERY_NAME)
            .foreachBatch(lambda frame, batch_id: self._on_tick(frame, batch_id, once=once))
            .option("checkpointLocation", self.checkpoint)
            .trigger(**trigger)
            .start()
        )

    def stop(self, query) -> None:
        """Stop ``query`` between micro-batches: stopped in the middle of one, Spark
        interrupts its job with a long Java trace (harmless, the batch is redone)."""
        self.stopping = True
        with self._busy:
            query.stop()

    def close(self) -> None:
        """Refresh the feature table's view, say the watch stopped in its status, and give
        up the output's lease."""
        try:
            self.refresh()
            self.state = "stopped"
            ledger.write_status(self.spark, self.output, self.status())
        finally:
            self.lease.release()


def run_watch(
    spark: SparkSession,
    *,
    model_dir: str,
    input: str,
    output: str,
    checkpoint: str,
    extract: ExtractConfig | None = None,
    options: WatchOptions | None = None,
    once: bool = False,
    predictor=None,
) -> dict:
    """Classify the files that land under ``input``: until stopped, or with ``once`` those
    there now (waiting for uploads younger than ``min_age_s``); return the status.

    Parameters
    ----------
    spark : SparkSession
    model_dir : str
        Output directory of ``jobs/train.py`` or ``jobs/train_cnn.py``.
    input : str
        The landing folder (searched recursively for ``extract.glob``); when missing, the
        watch waits for it (with ``once``: FileNotFoundError).
    output : str
        Where the predictions and features go (:mod:`fmagenre.watch.ledger`).
    checkpoint : str
        The streaming query's checkpoint folder.
    extract : ExtractConfig or None
    options : WatchOptions or None
    once : bool
    predictor : fmagenre.network.inference.Predictor or None
        The model, loaded by the caller; None loads it.

    Raises
    ------
    FileNotFoundError
        With ``once``, when the landing folder does not exist.
    fmagenre.watch.ledger.WatchSetupError
        When the output or checkpoint belongs to another watch, model or job, or another
        watch writes the output now (:class:`fmagenre.watch.lease.LeaseError`).
    """
    from pyspark.errors import StreamingQueryException

    from fmagenre.network.inference import load_predictor

    if once and not input_exists(spark, input):
        raise FileNotFoundError(
            f"landing folder {input} does not exist: check --input (without --once the watch"
            " waits for it)"
        )
    watch = Watch(
        spark,
        predictor or load_predictor(spark, model_dir),
        model_dir=model_dir,
        input=input,
        output=output,
        checkpoint=checkpoint,
        extract=extract or ExtractConfig(),
        options=options or WatchOptions(),
    )
    try:
        query = watch.start(once=once)
        try:
            query.awaitTermination()
        except KeyboardInterrupt:
            log.info("stopping the watch of %s", input)
            watch.stop(query)
        except StreamingQueryException:
            if watch.failure is not None:
                raise watch.failure from None
            raise
    except BaseException:
        watch.lease.release()
        raise
    watch.close()
    return watch.status()


def format_status(status: Mapping) -> str:
    """The printed form of :func:`run_watch`'s status."""
    median = status["latency_median_s"]
    return "\n".join(
        [
            f"watch: {status['files']} files classified ({status['ok']} ok, {status['errors']}"
            f" errors) in {status['batches']} micro-batches; {status['waiting']} waiting",
            f"  latency     median {median:.1f} s (modification time to prediction)"
            if median is not None
            else "  latency     -",
            f"  predictions {status['output'].rstrip('/')}/{ledger.PREDICTIONS}",
            f"  features    {status['output'].rstrip('/')}/{ledger.FEATURES}",
        ]
    )
