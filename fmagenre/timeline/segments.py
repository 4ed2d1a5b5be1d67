"""The genre timeline job's library side: the genre of successive windows of each audio file.

:func:`run` decodes each file once, in the extraction job's workers
(:func:`fmagenre.extraction.driver.extraction_frame` with a window), computes the 518 features
of the whole track and of each window (:mod:`fmagenre.audio.windows` gives the rule), runs
the saved ensemble on all of them in one pass, and writes under ``OUTPUT``::

    windows/      Parquet, a row per (file, window): track_id, path, status, error, window,
                  start_s, end_s, duration_s, analysed_s, genre, prediction, vote_<model>,
                  scores_<model> (genre -> probability; null for the SVC); a file that
                  cannot be analysed has one row, its error, with a null window
    tracks/       Parquet, a row per file: the genre of most windows (``genre``; a tie goes to
                  the whole-track prediction when it is among the tied, else to the genre
                  heard first), its ``share`` of the windows, ``shares`` of every genre,
                  ``track_genre`` (the whole-track prediction) and whether the two ``agree``
    pages/        index.html and a page per file (:mod:`fmagenre.timeline.pages`)
    report.json, report.md
                  the model, the settings, the counts; with labels, window accuracy against the
                  track's genre and track accuracy of the majority and of the whole track

Without a model (``keep_features``), only ``windows/`` is written, with the 518 feature
columns: the training rows of ``jobs/train.py --windows``.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from fmagenre.audio.names import flat_names, uses_musicnn
from fmagenre.audio.windows import check_window
from fmagenre.errors import InputError
from fmagenre.extraction.driver import extraction_frame, file_source_conf, list_inputs
from fmagenre.network.inference import load_predictor
from fmagenre.platform.config import ExtractConfig
from fmagenre.platform.hadoop import hadoop_fs, path_exists, read_bytes, write_json, write_output
from fmagenre.platform.session import session_settings
from fmagenre.similarity.index import Index, read_index
from fmagenre.similarity.search import (
    OUTPUT_SCHEMA,
    embedded,
    index_network,
    neighbours,
    query_patches,
)
from fmagenre.tables.feature_table import path_key
from fmagenre.tables.inputs import read_labels, require_path
from fmagenre.tables.label_table import ARROW_ENABLED
from fmagenre.timeline.pages import (
    audio_data_uri,
    audio_url,
    page_name,
    render_index,
    render_page,
)

log = logging.getLogger(__name__)

#: Input columns carried to the output beside the predictions.
WINDOW_COLUMNS = ("window", "start_s", "end_s", "duration_s", "analysed_s")
SPLITS = ("all", "train", "test")
_MIME = {"wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg"}


class SegmentError(InputError, ValueError):
    """Settings or inputs the timeline job cannot use; the message says why."""


@dataclass(frozen=True)
class SegmentOptions:
    """What the timeline job does beyond its inputs and output."""

    #: Window length and hop, in seconds.
    window: float = 10.0
    hop: float = 5.0
    #: Label table to score the windows and tracks against; None: no scores.
    labels: str | None = None
    #: Tracks of this split of the label table are scored (all, train or test).
    split: str = "all"
    #: Keep the 518 feature columns in ``windows/``.
    keep_features: bool = False
    #: Pages for at most this many files (by path); 0: no page, not even the index.
    max_pages: int = 1000
    #: Put the audio in the pages (base64) instead of linking to it.
    embed_audio: bool = False
    #: A similar-track index (jobs/similar.py): each page lists the track's nearest
    #: indexed tracks, written to ``similar/`` too; None: none.
    similar: str | None = None
    #: Nearest tracks per page.
    similar_k: int = 10
    overwrite: bool = False

    def __post_init__(self):
        try:
            check_window(self.window, self.hop)
        except ValueError as exc:
            raise SegmentError(f"--window/--hop: {exc}") from None
        if self.split not in SPLITS:
            raise SegmentError(f"unknown split {self.split!r}; splits: {', '.join(SPLITS)}")
        if self.max_pages < 0:
            raise SegmentError(f"max_pages must be 0 or more, got {self.max_pages}")
        if self.similar_k < 1:
            raise SegmentError(f"similar_k must be at least 1, got {self.similar_k}")


def track_rows(scored: DataFrame) -> DataFrame:
    """One row per file of the scored rows of :func:`run` (lazy): majority genre and shares."""
    keys = ["track_id", "path", "status", "error", "duration_s", "analysed_s"]
    files = scored.where(F.col("window").isNull()).select(
        *keys, F.col("genre").alias("track_genre")
    )
    windows = scored.where(F.col("window").isNotNull() & F.col("genre").isNotNull())
    per_genre = windows.groupBy("path", "genre").agg(
        F.count("*").alias("n"), F.min("start_s").alias("first_s")
    )
    totals = windows.groupBy("path").agg(F.count("*").alias("n_windows"))
    ranked = (
        per_genre.join(totals, "path")
        .join(files.select("path", "track_genre"), "path")
        .withColumn("fraction", F.col("n") / F.col("n_windows"))
    )
    order = Window.partitionBy("path").orderBy(
        F.desc("n"), F.desc(F.col("genre") == F.col("track_genre")), "first_s", "genre"
    )
    best = (
        ranked.withColumn("rank", F.row_number().over(order))
        .where(F.col("rank") == 1)
        .select("path", "n_windows", "genre", F.col("fraction").alias("share"))
    )
    shares = ranked.groupBy("path").agg(
        F.map_from_entries(F.collect_list(F.struct("genre", "fraction"))).alias("shares")
    )
    return (
        files.join(best, "path", "left")
        .join(shares, "path", "left")
        .select(
            *keys,
            F.coalesce(F.col("n_windows"), F.lit(0)).alias("n_windows"),
            "genre",
            "share",
            "shares",
            "track_genre",
            (F.col("genre") == F.col("track_genre")).alias("agree"),
        )
    )


def evaluate(windows: DataFrame, tracks: DataFrame, labels: DataFrame, *, split: str) -> dict:
    """Accuracy of the windows and tracks against the labels' genres, on ``split``.

    ``window_accuracy``: windows whose genre is their track's; ``majority_accuracy`` and
    ``track_accuracy``: tracks whose majority / whole-track genre is theirs; ``agreement``:
    tracks whose majority genre is the whole-track genre. Only labelled ``ok`` tracks count.
    """
    truth = labels.select("track_id", F.col("genre_top").alias("truth"), "split")
    if split != "all":
        truth = truth.where(F.col("split") == split)
    scored = tracks.where(F.col("status") == "ok").join(truth, "track_id")
    track = scored.agg(
        F.count("*").alias("tracks"),
        F.sum((F.col("genre") == F.col("truth")).cast("int")).alias("majority"),
        F.sum((F.col("track_genre") == F.col("truth")).cast("int")).alias("whole"),
        F.sum(F.col("agree").cast("int")).alias("agree"),
    ).first()
    window = (
        windows.where(F.col("window").isNotNull())
        .join(truth, "track_id")
        .agg(
            F.count("*").alias("windows"),
            F.sum((F.col("genre") == F.col("truth")).cast("int")).alias("right"),
        )
        .first()
    )

    def share(part, whole) -> float | None:
        return round(part / whole, 4) if whole else None

    return {
        "split": split,
        "tracks": track.tracks,
        "windows": window.windows,
        "window_accuracy": share(window.right or 0, window.windows),
        "majority_accuracy": share(track.majority or 0, track.tracks),
        "track_accuracy": share(track.whole or 0, track.tracks),
        "agreement": share(track.agree or 0, track.tracks),
    }


def _local_path(spark: SparkSession, path: str) -> str | None:
    """The local file system path of ``path``, or None when it is elsewhere (S3, HDFS)."""
    fs, hadoop_path = hadoop_fs(spark, path)
    uri = fs.makeQualified(hadoop_path).toUri()
    return uri.getPath() if (uri.getScheme() or "file") == "file" else None


def _audio_src(spark: SparkSession, path: str, pages: str | None, *, embed: bool) -> str | None:
    """``audio_src`` of a page in the local folder ``pages`` (None: not a local folder)."""
    if embed:
        return audio_data_uri(
            read_bytes(spark, path), _MIME.get(path.rsplit(".", 1)[-1].lower(), "audio/mpeg")
        )
    audio = _local_path(spark, path)
    if audio is None or pages is None:
        return None  # a browser cannot fetch s3:// or hdfs:// paths: the page says so
    return audio_url(audio, pages)


def _page_window(row, models: Sequence[str]) -> dict:
    return {
        "start_s": row.start_s,
        "end_s": row.end_s,
        "genre": row.genre,
        "votes": {name: row[f"vote_{name}"] for name in models},
        "scores": {
            name: dict(row[f"scores_{name}"])
            for name in models
            if row[f"scores_{name}"] is not None
        },
    }


def _similar_tracks(
    spark: SparkSession, scored: DataFrame, index: Index, *, k: int, output: str, mode: str
) -> dict[str, list[dict]]:
    """The ``k`` nearest indexed tracks of each file (its whole-track features), written to
    ``output`` (jobs/similar.py's query rows); by the file's path."""
    from fmagenre.audio.features import EXTRACTOR_VERSION

    keys = ["track_id", "path", "status", "error", "error_reason"]
    files = scored.where(F.col("window").isNull()).select(*keys, *index.space.columns)
    with session_settings(spark, {ARROW_ENABLED: "true"}):
        rows = files.toPandas()
    rows["extractor_version"] = EXTRACTOR_VERSION
    found = neighbours(
        spark, index, rows, k=k, labels=rows["path"].tolist(), source="the timeline's files"
    )
    with session_settings(spark, {ARROW_ENABLED: "true"}):
        spark.createDataFrame(found, OUTPUT_SCHEMA).write.mode(mode).parquet(output)
    by_path: dict[str, list[dict]] = {}
    for row in found[found["rank"].notna()].to_dict("records"):
        by_path.setdefault(row["query_path"], []).append(row)
    return by_path


def write_pages(
    spark: SparkSession,
    scored: DataFrame,
    tracks: Sequence[Mapping],
    *,
    output: str,
    models: Sequence[str],
    model_dir: str,
    max_pages: int,
    embed_audio: bool,
    similar: Mapping[str, Sequence[Mapping]] | None = None,
) -> int:
    """Write ``OUTPUT/pages``: a page for each of the first ``max_pages`` files by path, and
    the index of all; return the pages written. ``similar`` gives each file's nearest
    tracks (by path), which its page lists, linked to their pages where written."""
    pages_dir = f"{output.rstrip('/')}/pages"
    shown = sorted(tracks, key=lambda track: track["path"])[:max_pages]
    entries = {track["path"]: {**track, "model": model_dir} for track in shown}
    rows = (
        scored.where(F.col("window").isNotNull() & F.col("path").isin(list(entries)))
        .orderBy("path", "window")
        .toLocalIterator()
    )
    by_path = {path: list(group) for path, group in itertools.groupby(rows, key=lambda r: r.path)}
    local_pages = _local_path(spark, pages_dir)
    written = {path_key(path): page_name(track) for path, track in entries.items()}
    for path, track in entries.items():
        near = [
            {**n, "page": written.get(path_key(n["path"]))} for n in (similar or {}).get(path, [])
        ]
        windows = [_page_window(row, models) for row in by_path.get(path, [])]
        src = (
            _audio_src(spark, path, local_pages, embed=embed_audio)
            if track["status"] == "ok"
            else None
        )
        write_output(
            spark,
            pages_dir,
            page_name(track),
            render_page(
                track, windows, models=models, audio_src=src, neighbours=near if similar else None
            ),
        )
    listed = [{**track, "page": track["path"] in entries} for track in tracks]
    write_output(spark, pages_dir, "index.html", render_index(listed))
    return len(entries)


def run(
    spark: SparkSession,
    *,
    model_dir: str | None,
    inputs: Sequence[str],
    output: str,
    options: SegmentOptions | None = None,
    extract: ExtractConfig | None = None,
) -> dict:
    """Classify the windows of every audio file under ``inputs``; write the timeline.

    Parameters
    ----------
    spark : SparkSession
    model_dir : str or None
        Output directory of the training job; None with ``options.keep_features`` writes
        the windows' features only.
    inputs : sequence of str
        Folders of audio files (searched recursively) or files, any Hadoop path.
    output : str
        Directory to create (see the module's documentation).
    options : SegmentOptions or None
        None for the defaults.
    extract : ExtractConfig or None
        Extraction settings (glob, max_duration...); None for the defaults.

    Returns
    -------
    dict
        The summary also written to ``report.json``.

    Raises
    ------
    SegmentError
        On settings that do not fit, a missing model, no audio file.
    IndexMismatchError
        On a ``similar`` index whose network cuts other patches than the model's.
    FileNotFoundError, FileExistsError
        On a missing input; on an existing output without ``overwrite``.
    """
    started = time.perf_counter()
    options = options or SegmentOptions()
    extract = extract or ExtractConfig()
    if model_dir is None and not options.keep_features:
        raise SegmentError(
            "no --model: pass one, or --keep-features to write the windows' features only"
        )
    model = load_predictor(spark, model_dir) if model_dir is not None else None
    index = None
    if options.similar is not None:
        if model is None:
            raise SegmentError("--similar lists neighbours on the pages: it needs --model")
        index = read_index(spark, options.similar, option="--similar")
    extract = extract.with_musicnn(
        (model is not None and model.musicnn)
        or (index is not None and uses_musicnn(index.space.columns))
    )
    labels = None
    if options.labels is not None:
        require_path(spark, "--labels", options.labels)
        labels = read_labels(spark, options.labels)
    if not options.overwrite and path_exists(spark, output):
        raise FileExistsError(f"{output} already exists: pass --overwrite to replace it")
    files = list_inputs(spark, inputs, glob=extract.glob)
    if not files:
        raise SegmentError(f"no file matching {extract.glob} under {', '.join(inputs)}")
    log.info("%d files, windows of %g s every %g s", len(files), options.window, options.hop)
    embedder = None if index is None else index_network(spark, index)
    patches = query_patches(
        None if index is None else index.path,
        None if embedder is None else embedder.settings,
        None if model is None else model.patch_settings,
    )
    rows = embedded(
        embedder,
        extraction_frame(
            spark, files, extract, window=options.window, hop=options.hop, patches=patches
        ),
    )
    root = output.rstrip("/")
    mode = "overwrite" if options.overwrite else "errorifexists"
    summary = {
        "job": "segments",
        "inputs": list(inputs),
        "output": output,
        "model": model_dir,
        "voters": None if model is None else model.model_names,
        "window_s": options.window,
        "hop_s": options.hop,
    }
    with session_settings(spark, file_source_conf(spark, files, extract)):
        if model is None:
            kept = rows.where(F.col("window").isNotNull() | (F.col("status") != "ok"))
            kept.drop("file_size").write.mode(mode).parquet(f"{root}/windows")
            counts = spark.read.parquet(f"{root}/windows").groupBy(
                F.col("window").isNull().alias("file_row")
            )
            windows = dict(counts.count().collect()).get(False, 0)
            summary.update(files=len(files), windows=windows, features=True)
            summary["wall_s"] = round(time.perf_counter() - started, 3)
            return summary
        kept = flat_names() if options.keep_features else ()
        extra = [*WINDOW_COLUMNS, *kept]
        if index is not None:  # the files' reasons and vectors, for their neighbours
            extra += ["error_reason", *(c for c in index.space.columns if c not in kept)]
        scored = model.predictions(rows, extra=extra, scores=True).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        try:
            windows = scored.where(F.col("window").isNotNull() | (F.col("status") != "ok"))
            windows.write.mode(mode).parquet(f"{root}/windows")
            track_rows(scored).write.mode(mode).parquet(f"{root}/tracks")
            tracks = [
                row.asDict(recursive=True) for row in spark.read.parquet(f"{root}/tracks").collect()
            ]
            similar = {}
            if index is not None:
                similar = _similar_tracks(
                    spark, scored, index, k=options.similar_k, output=f"{root}/similar", mode=mode
                )
                summary["similar"] = {"index": index.path, "k": options.similar_k}
            pages = 0
            if options.max_pages:
                pages = write_pages(
                    spark,
                    scored,
                    tracks,
                    output=output,
                    models=model.model_names,
                    model_dir=model_dir,
                    max_pages=options.max_pages,
                    embed_audio=options.embed_audio,
                    similar=similar,
                )
        finally:
            scored.unpersist()
    written = spark.read.parquet(f"{root}/windows")
    ok = [track for track in tracks if track["status"] == "ok"]
    summary.update(
        files=len(tracks),
        ok=len(ok),
        errors=len(tracks) - len(ok),
        windows=written.where(F.col("window").isNotNull()).count(),
        agreement=round(sum(bool(t["agree"]) for t in ok) / len(ok), 4) if ok else None,
        pages=pages,
        index=f"{root}/pages/index.html" if options.max_pages else None,
        scores=evaluate(written, spark.read.parquet(f"{root}/tracks"), labels, split=options.split)
        if labels is not None
        else None,
    )
    summary["wall_s"] = round(time.perf_counter() - started, 3)
    write_json(spark, f"{root}/report.json", summary)
    write_output(spark, root, "report.md", report_markdown(summary))
    return summary


def report_markdown(summary: Mapping) -> str:
    """``report.md``: which model made the timeline, and how it scores."""
    lines = [
        "# Genre timeline",
        "",
        f"- model: `{summary['model']}` (voters: {', '.join(summary['voters'])})",
        f"- windows of {summary['window_s']:g} s every {summary['hop_s']:g} s",
        f"- files: {summary['files']} ({summary['ok']} ok, {summary['errors']} errors),"
        f" windows: {summary['windows']}",
        f"- majority of windows = whole-track prediction on {_percent(summary['agreement'])}"
        " of the ok files",
    ]
    scores = summary.get("scores")
    if scores:
        lines += [
            "",
            f"## Against the labels ({scores['split']} split: {scores['tracks']} tracks,"
            f" {scores['windows']} windows)",
            "",
            "| against the track's genre | accuracy |",
            "| --- | --- |",
            f"| each window | {_percent(scores['window_accuracy'])} |",
            f"| majority of windows | {_percent(scores['majority_accuracy'])} |",
            f"| whole-track prediction | {_percent(scores['track_accuracy'])} |",
        ]
    return "\n".join(lines) + "\n"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def format_summary(summary: Mapping) -> str:
    """The printed form of :func:`run`'s summary; ends with the index page, if any."""
    if summary.get("features"):
        return (
            f"segments: {summary['files']} files, {summary['windows']} windows with their"
            f" features in {summary['wall_s']:.1f} s\n  output  {summary['output']}/windows"
        )
    lines = [
        f"segments: {summary['files']} files ({summary['ok']} ok, {summary['errors']} errors),"
        f" {summary['windows']} windows of {summary['window_s']:g} s every"
        f" {summary['hop_s']:g} s, in {summary['wall_s']:.1f} s",
        f"  majority of windows = whole-track genre on {_percent(summary['agreement'])} of files",
    ]
    scores = summary.get("scores")
    if scores:
        lines.append(
            f"  {scores['split']} split: window accuracy {_percent(scores['window_accuracy'])},"
            f" majority {_percent(scores['majority_accuracy'])}, whole track"
            f" {_percent(scores['track_accuracy'])} ({scores['tracks']} tracks)"
        )
    lines.append(f"  report  {summary['output'].rstrip('/')}/report.md")
    if summary.get("similar"):
        similar = summary["similar"]
        lines.append(
            f"  similar {summary['output'].rstrip('/')}/similar ({similar['k']} nearest tracks"
            f" of each file in {similar['index']})"
        )
    if summary.get("index"):
        lines.append(f"timeline: {summary['index']}")
    return "\n".join(lines)
