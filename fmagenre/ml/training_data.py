"""Training data: the ``ok`` feature rows joined with their labels on ``track_id``.

Features and labels are read by :mod:`fmagenre.tables.inputs`: a feature table or plain
Parquet with the same columns, and the label table of ``jobs/prepare_labels.py``. Classes are
the training genres in alphabetical order, indexed 0, 1, ...; with class weights
(:func:`class_weight_values`), from the ``n_c`` training rows of each of the ``k`` genres,
``n`` in all, each row of genre ``c`` weighs:

- ``balanced``: ``n / (k * n_c)`` (scikit-learn's "balanced": every genre weighs the same in
  total);
- ``sqrt``: ``n / (sqrt(n_c) * sum_d sqrt(n_d))``, proportional to ``1 / sqrt(n_c)``: a genre
  weighs ``sqrt(n_c)`` in total, halfway (in log) between its share and an equal one.

Both make the training rows' mean weight 1.

Cross-validation folds are stratified (:func:`fmagenre.ml.stratify.assign_folds`). As with
scikit-learn's ``StratifiedKFold``, a genre with fewer training rows than folds is missing
from some validation folds (with a warning); it needs two, so that the training part of every
fold holds one of its rows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fmagenre.audio.names import musicnn_names
from fmagenre.errors import shown_names
from fmagenre.ml.classifiers import LABEL_COL, WEIGHT_COL
from fmagenre.ml.stratify import label_lookup
from fmagenre.tables.inputs import InputTableError, ok_rows, one_row_per_track

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
CLASS_WEIGHTS = ("none", "balanced", "sqrt")


@dataclass(frozen=True)
class LabelledData:
    """Labelled feature rows (lazy): ``track_id``, ``genre``, ``label``, ``split``, the
    ``weight`` with class weights, then the feature columns and the other kept columns."""

    frame: DataFrame
    #: Genre of each class index.
    labels: list[str]
    #: Rows by split, then by genre.
    counts: dict[str, dict[str, int]]
    #: Tracks by split, then by genre, when the rows are windows of tracks; else None.
    tracks: dict[str, dict[str, int]] | None = None

    def split(self, name: str) -> DataFrame:
        return self.frame.where(F.col("split") == name)


def class_weight_values(counts: Mapping[str, int], scheme: str) -> dict[str, float]:
    """The weight of a row of each genre under ``scheme`` (see the module), from the training
    rows per genre; ``none``: 1 each.

    Raises
    ------
    ValueError
        On an unknown scheme.
    """
    total = sum(counts.values())
    if scheme == "none":
        return dict.fromkeys(counts, 1.0)
    if scheme == "balanced":
        return {genre: total / (len(counts) * n) for genre, n in counts.items()}
    if scheme == "sqrt":
        roots = sum(math.sqrt(n) for n in counts.values())
        return {genre: total / (math.sqrt(n) * roots) for genre, n in counts.items()}
    raise ValueError(f"class weights must be {', '.join(CLASS_WEIGHTS)}, got {scheme!r}")


def labelled_data(
    features: DataFrame,
    labels: DataFrame,
    *,
    columns: Sequence[str],
    class_weights: str | bool,
    folds: int,
    windows: bool = False,
    keep: Sequence[str] = (),
) -> LabelledData:
    """Join the ``ok`` feature rows to their labels; index the genres; weigh them.

    Rows without musicnn values are left out when ``columns`` hold some (a table extracted
    without them, a track shorter than one of its patches). A track with several ok rows
    (the same track id under two paths) counts once, with one of its rows; with
    ``windows``, the rows are windows of tracks (``jobs/segments.py
    --keep-features``: those with a ``window``), all kept. Only track ids and labels are read
    here; the features stay lazy.

    Parameters
    ----------
    features : DataFrame
        Rows with ``track_id``, the ``columns``, and ``status`` when they come from a
        feature table (only ``ok`` rows are used).
    labels : DataFrame
        With :data:`fmagenre.tables.inputs.LABEL_COLUMNS`; ``split`` is ``train`` or ``test``.
    columns : sequence of str
        The feature columns.
    class_weights : str or bool
        ``none``, ``balanced`` or ``sqrt``: the ``weight`` column, unless ``none``
        (False: ``none``, True: ``balanced``).
    folds : int
        Cross-validation folds: a genre with fewer training rows gets a warning.
    windows : bool
        The rows are windows: several per track.
    keep : sequence of str
        Other columns of ``features`` to carry, after the feature columns (e.g. an external
        member's margins: not features).

    Raises
    ------
    InputTableError
        On a missing column, an unknown split, no row in common, an empty split, a test genre
        without training rows, or a genre with a single training row.
    ValueError
        On unknown class weights.
    """
    if isinstance(class_weights, bool):
        class_weights = "balanced" if class_weights else "none"
    if class_weights not in CLASS_WEIGHTS:
        raise ValueError(f"class weights must be {', '.join(CLASS_WEIGHTS)}, got {class_weights!r}")
    weighted = class_weights != "none"
    missing = [column for column in ("track_id", *columns, *keep) if column not in features.columns]
    if missing:
        raise InputTableError(
            f"features: {len(missing)} column(s) missing: {shown_names(missing)}; choose the"
            " feature set with --families or --columns-file"
        )
    ok = ok_rows(features)
    musicnn = [column for column in columns if column in musicnn_names()]
    if musicnn:
        # A track too short for one musicnn patch has none: it cannot be imputed, it is left out.
        ok = ok.where(F.col(musicnn[0]).isNotNull())
        if not ok.limit(1).count():
            raise InputTableError(
                "features: no ok row holds musicnn values: extract the table with"
                " jobs/extract_features.py --families mir,musicnn, or train on --families mir"
            )
    if windows:
        if "window" not in features.columns:
            raise InputTableError(
                "features: no window column: --windows reads the windows of jobs/segments.py"
                " --keep-features"
            )
        ok = ok.where(F.col("window").isNotNull())
    keyed = labels.select("track_id", F.col("genre_top").alias("genre"), "split")
    # The label table is small: broadcast it, so that the wide feature rows never shuffle.
    joined = ok.select("track_id", *columns, *keep).join(F.broadcast(keyed), "track_id")
    # Spark prunes the feature columns from these two: they read track ids and labels only.
    tracks: dict[str, dict[str, int]] | None = None
    if windows:
        tracks = {}
        per_track = joined.groupBy("split", "genre").agg(F.countDistinct("track_id").alias("n"))
        for row in per_track.collect():
            tracks.setdefault(row.split, {})[row.genre] = row.n
    elif joined.groupBy("track_id").count().where(F.col("count") > 1).limit(1).count():
        joined = one_row_per_track(joined)
    counts: dict[str, dict[str, int]] = {}
    for row in joined.groupBy("split", "genre").count().collect():
        counts.setdefault(row.split, {})[row.genre] = row["count"]
    if not counts:
        raise InputTableError(
            f"no labelled track: the {ok.count()} ok feature rows and the {labels.count()}"
            " labels have no track_id in common"
        )
    classes = _check_counts(tracks or counts, folds=folds)
    train = counts["train"]
    frame = joined.withColumn(
        LABEL_COL, label_lookup("genre", {genre: float(i) for i, genre in enumerate(classes)})
    )
    if weighted:
        weights = class_weight_values(train, class_weights)
        frame = frame.withColumn(WEIGHT_COL, label_lookup("genre", weights))
    kept = ["track_id", "genre", LABEL_COL, "split"] + ([WEIGHT_COL] if weighted else [])
    return LabelledData(
        frame=frame.select(*kept, *columns, *keep), labels=classes, counts=counts, tracks=tracks
    )


def _check_counts(counts: dict[str, dict[str, int]], *, folds: int) -> list[str]:
    """The class labels (sorted training genres), or InputTableError; warns of genres with
    fewer training rows than ``folds``."""
    unknown = sorted(set(counts) - set(SPLITS), key=str)
    if unknown:
        raise InputTableError(
            f"labels: split values must be {' or '.join(SPLITS)}, got {shown_names(unknown)}"
        )
    for split in SPLITS:
        if not counts.get(split):
            raise InputTableError(f"no labelled {split} rows (split = '{split}')")
    train, test = counts["train"], counts["test"]
    untrained = sorted(set(test) - set(train))
    if untrained:
        raise InputTableError(f"test genre(s) without training rows: {shown_names(untrained)}")
    single = sorted(genre for genre, n in train.items() if n == 1)
    if single:
        raise InputTableError(
            f"genre(s) with a single training row: {shown_names(single)}; cross-validation needs"
            " two of each genre, so that every fold trains on one"
        )
    few = sorted(genre for genre, n in train.items() if n < folds)
    if few:
        log.warning(
            "genre(s) with fewer training rows than the %d folds, missing from some"
            " validation folds: %s",
            folds,
            shown_names([f"{genre} ({train[genre]})" for genre in few]),
        )
    if len(train) < 2:
        raise InputTableError(f"one genre only ({', '.join(train)}): nothing to classify")
    return sorted(train)
