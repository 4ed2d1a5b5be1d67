"""The driver's side of a training run: the patches table's files, the labels, the splits.

:func:`plan_run` reads only what is small (track ids, patch sizes, file names, labels) with
Spark, checks it, and decides everything the training processes need: the genres, each
labelled track's class and role (``train``, ``validation`` or ``test``), which Parquet files
each process reads, and the class weights. The processes then read their own files' patches
with pyarrow (:mod:`fmagenre.network.ranks`).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fmagenre.audio.patches import PatchSettings
from fmagenre.errors import shown_names
from fmagenre.ml.training_data import SPLITS, class_weight_values
from fmagenre.platform.hadoop import hadoop_fs
from fmagenre.tables.feature_table import (
    VIEW_FILE,
    is_feature_table,
    published_chunks,
    view_state,
)
from fmagenre.tables.inputs import InputTableError, read_labels, require_path

log = logging.getLogger(__name__)

ROLES = ("train", "validation", "test")
#: Columns the network reads from the patches table.
PATCH_COLUMNS = ("track_id", "patches")


def qualified(spark: SparkSession, path: str) -> str:
    """``path`` as a full URI (``file:/abs``, ``hdfs://nn:8020/user/...``, ``s3a://b/k``): what
    a process without Spark's working directory and configuration can open."""
    fs, hadoop_path = hadoop_fs(spark, path)
    return fs.makeQualified(hadoop_path).toString()


def _hidden(name: str) -> bool:
    return name.startswith(("_", "."))


def patch_files(spark: SparkSession, path: str, *, option: str = "--patches") -> list[str]:
    """The Parquet files of the patches input: the current view of a feature table, else
    every visible ``.parquet`` file under ``path`` (or ``path`` itself).

    Raises
    ------
    InputTableError
        When ``path`` does not exist, is a feature table without a view as fresh as its
        published chunks, or holds no Parquet file.
    """
    require_path(spark, option, path)
    fs, root = hadoop_fs(spark, path)
    if is_feature_table(spark, path):
        chunks = published_chunks(spark, path)
        state = view_state(spark, path)
        names = ["/".join(chunk.rsplit("/", 2)[-2:]) for chunk in chunks]
        if not chunks:
            raise InputTableError(
                f"{option} {path} is a feature table without a published chunk yet: wait until"
                " its extraction job has published one, or run it again"
            )
        since = state["since"] if state else None
        if state is None or state["chunks"] != [n for n in names if since is None or n >= since]:
            raise InputTableError(
                f"{option} {path}: the table's view lags behind its published chunks (a run"
                " stopped before refreshing it): run the extraction job on it again"
            )
        found = [
            status.getPath().toString()
            for status in fs.globStatus(hadoop_fs(spark, f"{path.rstrip('/')}/part-*.parquet")[1])
            or []
            if VIEW_FILE.fullmatch(status.getPath().getName())
        ]
    elif fs.getFileStatus(root).isFile():
        found = [root.toString()]
    else:
        found, listing = [], fs.listFiles(root, True)
        base = root.toUri().getPath().rstrip("/")
        while listing.hasNext():
            file = listing.next().getPath()
            relative = file.toUri().getPath()[len(base) + 1 :].split("/")
            if file.getName().endswith(".parquet") and not any(map(_hidden, relative)):
                found.append(file.toString())
    if not found:
        raise InputTableError(f"{option} {path} holds no Parquet file")
    return sorted(found)


@dataclass(frozen=True)
class RunPlan:
    """What the driver decided for a run (see the module)."""

    #: Genre of each class index (sorted training genres with patches).
    genres: list[str]
    #: Parquet files (URIs) each process reads, by rank.
    files: list[list[str]]
    #: Class index and role of every labelled track with patches.
    tracks: dict[int, tuple[int, str]]
    #: Tracks with rows in several files: the file whose row is used.
    owners: dict[int, str]
    #: Tracks by role, then genre.
    counts: dict[str, dict[str, int]]
    #: Patches by role.
    patches: dict[str, int]
    #: Loss weight of each class.
    class_weights: list[float]
    settings: PatchSettings
    extractor_version: str
    #: Labelled tracks without patches, by split and reason.
    without_patches: dict[str, dict[str, int]] = field(default_factory=dict)

    def validation_ids(self) -> list[int]:
        return sorted(t for t, (_, role) in self.tracks.items() if role == "validation")


def _patch_settings(frame: DataFrame, option: str, path: str) -> tuple[PatchSettings, str]:
    """The patch settings and extractor version of the rows with patches."""
    columns = [c for c in ("settings", "extractor_version") if c in frame.columns]
    if not columns:
        log.warning(
            "%s %s has no settings column: assuming the default patch settings", option, path
        )
        return PatchSettings(), "unknown"
    rows = frame.where(F.col("patches").isNotNull()).groupBy(*columns).count().limit(100).collect()
    settings: set[PatchSettings] = set()
    versions: Counter = Counter()
    for row in rows:
        if "settings" in columns:
            try:
                settings.add(PatchSettings.from_key(row["settings"]))
            except ValueError:
                settings.add(PatchSettings())
        versions[row["extractor_version"] if "extractor_version" in columns else "unknown"] += row[
            "count"
        ]
    if len(settings) > 1:
        raise InputTableError(
            f"{option} {path} holds patches made with {len(settings)} settings: extract them"
            " again with one"
        )
    if len(versions) > 1:
        log.warning("patches of several extractor versions: %s", dict(versions))
    version = versions.most_common(1)[0][0] if versions else "unknown"
    return (settings.pop() if settings else PatchSettings()), version


def _validation(train: dict[str, list[int]], fraction: float, seed: int) -> dict[str, list[int]]:
    """Validation tracks of each genre: a seeded ``fraction`` of its training tracks, whole
    tracks, at least one left for training."""
    rng = np.random.default_rng(seed)
    chosen = {}
    for genre in sorted(train):
        ids = sorted(train[genre])
        count = min(len(ids) - 1, round(fraction * len(ids)))
        chosen[genre] = sorted(rng.permutation(ids)[:count].tolist()) if count > 0 else []
    return chosen


def _assign(loads: dict[str, tuple[int, int]], processes: int) -> list[list[str]]:
    """Files over ranks, largest first to the least loaded (training patches, then all)."""
    ranks: list[list[str]] = [[] for _ in range(processes)]
    totals = [(0, 0)] * processes
    for file, (train, total) in sorted(
        loads.items(), key=lambda item: (-item[1][0], -item[1][1], item[0])
    ):
        rank = min(range(processes), key=lambda r: (totals[r], r))
        ranks[rank].append(file)
        totals[rank] = (totals[rank][0] + train, totals[rank][1] + total)
    return ranks


def plan_run(
    spark: SparkSession,
    *,
    patches: str,
    labels: str,
    processes: int,
    validation_fraction: float,
    class_weights: str,
    seed: int,
) -> RunPlan:
    """Read the small columns of the patches table and the label table; plan the run.

    Raises
    ------
    InputTableError
        On a table without ``track_id`` and ``patches``, no labelled track with patches, a
        genre without patches in the training split, patches of several settings or of a
        size that does not fit them, or more processes than files with training tracks.
    """
    files = patch_files(spark, patches)
    frame = spark.read.parquet(*files)
    missing = [c for c in PATCH_COLUMNS if c not in frame.columns]
    if missing:
        raise InputTableError(
            f"--patches {patches} has no {' or '.join(missing)} column: extract the patches"
            " with the features (jobs/extract_features.py) first"
        )
    settings, version = _patch_settings(frame, "--patches", patches)
    label_rows = read_labels(spark, labels).where(F.col("genre_top").isNotNull())
    reason = (
        F.split(F.col("patch_error"), ":").getItem(0)
        if "patch_error" in frame.columns
        else F.lit(None).cast("string")
    )
    rows = (
        frame.where(F.col("track_id").isNotNull())
        .select(
            "track_id",
            F.input_file_name().alias("file"),
            F.length("patches").alias("size"),
            reason.alias("reason"),
        )
        .join(F.broadcast(label_rows), "track_id")
        .collect()
    )
    unknown = sorted({row.split for row in rows} - set(SPLITS), key=str)
    if unknown:
        raise InputTableError(
            f"--labels {labels}: split values must be {' or '.join(SPLITS)}, got"
            f" {shown_names(unknown)}"
        )
    patch_size = settings.patch_bytes
    chosen: dict[int, tuple[str, int, str, str]] = {}
    files_of: dict[int, set[str]] = {}
    without: dict[str, dict[str, int]] = {}
    rows_by_genre: dict[str, Counter] = {}
    for row in sorted(rows, key=lambda r: (r.track_id, r.file)):
        files_of.setdefault(row.track_id, set()).add(row.file)
        rows_by_genre.setdefault(row.genre_top, Counter())[row.split] += 1
        if row.size:
            if row.size % patch_size:
                raise InputTableError(
                    f"--patches {patches}: track {row.track_id} has {row.size} bytes of patches,"
                    f" not a whole number of {settings.n_mels} x {settings.frames} patches"
                )
            chosen.setdefault(
                row.track_id, (row.file, row.size // patch_size, row.genre_top, row.split)
            )
    first = {}
    for row in rows:
        first.setdefault(row.track_id, row)
    for track_id in sorted(set(files_of) - set(chosen)):
        row = first[track_id]
        split = without.setdefault(row.split, {})
        split[row.reason or "no patches"] = split.get(row.reason or "no patches", 0) + 1
    if not chosen:
        raise InputTableError(
            f"no labelled track with patches: {len(rows)} rows of --patches {patches} match"
            f" --labels {labels}, none with patches"
        )
    by_split: dict[str, dict[str, list[int]]] = {split: {} for split in SPLITS}
    for track_id, (_, _, genre, split) in chosen.items():
        by_split[split].setdefault(genre, []).append(track_id)
    empty = sorted(g for g, n in rows_by_genre.items() if n["train"] and g not in by_split["train"])
    untrained = sorted(set(by_split["test"]) - set(by_split["train"]))
    if empty or untrained:
        names = sorted(set(empty) | set(untrained))
        raise InputTableError(
            f"genre(s) without patches in the training split: {shown_names(names)}; extract"
            " their patches or leave them out of --labels"
        )
    genres = sorted(by_split["train"])
    if len(genres) < 2:
        raise InputTableError(f"one genre only ({', '.join(genres)}): nothing to classify")
    if not by_split["test"]:
        raise InputTableError("no test track with patches (split = 'test')")
    validation = _validation(by_split["train"], validation_fraction, seed)
    if not any(validation.values()):
        raise InputTableError(
            "no validation track: raise --validation-fraction or give more training tracks"
        )
    index = {genre: i for i, genre in enumerate(genres)}
    held = {t for ids in validation.values() for t in ids}
    tracks: dict[int, tuple[int, str]] = {}
    counts = {role: dict.fromkeys(genres, 0) for role in ROLES}
    patch_counts = dict.fromkeys(ROLES, 0)
    loads: dict[str, list[int]] = {}
    for track_id, (file, n, genre, split) in chosen.items():
        role = "validation" if track_id in held else split
        tracks[track_id] = (index[genre], role)
        counts[role][genre] += 1
        patch_counts[role] += n
        load = loads.setdefault(file, [0, 0])
        load[0] += n if role == "train" else 0
        load[1] += n
    training_files = sum(1 for train, _ in loads.values() if train)
    if processes > training_files:
        raise InputTableError(
            f"{processes} processes for {training_files} Parquet file(s) with training"
            f" patches: every process reads its own files, so use at most {training_files}"
        )
    weights = class_weight_values(counts["train"], class_weights)
    return RunPlan(
        genres=genres,
        files=_assign({f: (a, b) for f, (a, b) in loads.items()}, processes),
        tracks=tracks,
        owners={t: chosen[t][0] for t, fs in files_of.items() if len(fs) > 1 and t in chosen},
        counts=counts,
        patches=patch_counts,
        class_weights=[weights[genre] for genre in genres],
        settings=settings,
        extractor_version=version,
        without_patches=without,
    )
