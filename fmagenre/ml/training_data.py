"""Training data: the ``ok`` feature rows joined with their labels on ``track_id``.

Features come from a feature table (``jobs/extract_features.py``,
``jobs/import_fma_features.py``: read with :func:`fmagenre.tables.feature_table.read_features`) or
from plain Parquet with the same columns; labels from ``jobs/prepare_labels.py``. Classes are
the training genres in alphabetical order, indexed 0, 1, ...; with class weights, each row of
genre ``c`` weighs ``n / (k * n_c)`` (scikit-learn's "balanced": every genre weighs the same
in total), from the training counts.

Cross-validation folds are stratified (:func:`fmagenre.ml.stratify.assign_folds`). As with
scikit-learn's ``StratifiedKFold``, a genre with fewer training rows than folds is missing
from some validation folds (with a warning); it needs two, so that the training part of every
fold holds one of its rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fmagenre.analysis.inputs import one_row_per_track
from fmagenre.ml.classifiers import LABEL_COL, WEIGHT_COL
from fmagenre.ml.stratify import label_lookup
from fmagenre.platform.hadoop import path_exists
from fmagenre.tables.feature_table import is_feature_table, read_features

log = logging.getLogger(__name__)

#: Columns the label table must have.
LABEL_COLUMNS = ("track_id", "genre_top", "split")
SPLITS = ("train", "test")


class TrainingDataError(ValueError):
    """Inputs that cannot make training data; the message says why."""


def _shown(names: Sequence[str]) -> str:
    return ", ".join(names[:10]) + (f" ... ({len(names)} in all)" if len(names) > 10 else "")


def _condition(error: AnalysisException) -> str | None:
    """The error's condition: ``getCondition`` from Spark 4, ``getErrorClass`` in Spark 3.5."""
    return (getattr(error, "getCondition", None) or error.getErrorClass)()


def read_feature_rows(spark: SparkSession, path: str) -> DataFrame:
    """One row per file of a feature table, or the rows of a plain Parquet directory.

    Raises
    ------
    TrainingDataError
        When ``path`` does not exist or is neither.
    """
    if not path_exists(spark, path):
        raise TrainingDataError(f"features: {path} does not exist")
    if is_feature_table(spark, path):
        return read_features(spark, path)
    try:
        return spark.read.parquet(path)
    except AnalysisException as error:
        raise TrainingDataError(
            f"features: {path} is neither a feature table nor Parquet"
            f" ({_condition(error) or 'unreadable'})"
        ) from None


def read_labels(spark: SparkSession, path: str) -> DataFrame:
    """The label table at ``path``.

    Raises
    ------
    TrainingDataError
        When it does not exist, is not Parquet, or lacks a column of :data:`LABEL_COLUMNS`.
    """
    if not path_exists(spark, path):
        raise TrainingDataError(f"labels: {path} does not exist")
    try:
        labels = spark.read.parquet(path)
    except AnalysisException as error:
        raise TrainingDataError(
            f"labels: {path} is not Parquet ({_condition(error) or 'unreadable'})"
        ) from None
    missing = [column for column in LABEL_COLUMNS if column not in labels.columns]
    if missing:
        raise TrainingDataError(
            f"labels: {path} lacks column(s) {', '.join(missing)}; a label table"
            f" (jobs/prepare_labels.py) has {', '.join(LABEL_COLUMNS)}"
        )
    return labels


@dataclass(frozen=True)
class LabelledData:
    """Labelled feature rows (lazy): ``track_id``, ``genre``, ``label``, ``split``, the
    ``weight`` with class weights, then the feature columns."""

    frame: DataFrame
    #: Genre of each class index.
    labels: list[str]
    #: Rows by split, then by genre.
    counts: dict[str, dict[str, int]]

    def split(self, name: str) -> DataFrame:
        return self.frame.where(F.col("split") == name)


def labelled_data(
    features: DataFrame,
    labels: DataFrame,
    *,
    columns: Sequence[str],
    class_weights: bool,
    folds: int,
) -> LabelledData:
    """Join the ``ok`` feature rows to their labels; index the genres; weigh them.

    A track with several ok rows (the same track id under two paths) counts once, with one
    of its rows. Only track ids and labels are read here; the features stay lazy.

    Parameters
    ----------
    features : DataFrame
        Rows with ``track_id``, the ``columns``, and ``status`` when they come from a
        feature table (only ``ok`` rows are used).
    labels : DataFrame
        With :data:`LABEL_COLUMNS`; ``split`` is ``train`` or ``test``.
    columns : sequence of str
        The feature columns.
    class_weights : bool
        Add the ``weight`` column ("balanced" weights).
    folds : int
        Cross-validation folds: a genre with fewer training rows gets a warning.

    Raises
    ------
    TrainingDataError
        On a missing column, an unknown split, no row in common, an empty split, a test genre
        without training rows, or a genre with a single training row.
    """
    missing = [column for column in ("track_id", *columns) if column not in features.columns]
    if missing:
        raise TrainingDataError(
            f"features: {len(missing)} column(s) missing: {_shown(missing)}; choose the"
            " feature set with --families or --columns-file"
        )
    ok = features.where(F.col("track_id").isNotNull())
    if "status" in features.columns:
        ok = ok.where(F.col("status") == "ok")
    keyed = labels.select("track_id", F.col("genre_top").alias("genre"), "split")
    # The label table is small: broadcast it, so that the wide feature rows never shuffle.
    joined = ok.select("track_id", *columns).join(F.broadcast(keyed), "track_id")
    # Spark prunes the feature columns from these two: they read track ids and labels only.
    if joined.groupBy("track_id").count().where(F.col("count") > 1).limit(1).count():
        joined = one_row_per_track(joined)
    counts: dict[str, dict[str, int]] = {}
    for row in joined.groupBy("split", "genre").count().collect():
        counts.setdefault(row.split, {})[row.genre] = row["count"]
    if not counts:
        raise TrainingDataError(
            f"no labelled track: the {ok.count()} ok feature rows and the {labels.count()}"
            " labels have no track_id in common"
        )
    classes = _check_counts(counts, folds=folds)
    train = counts["train"]
    frame = joined.withColumn(
        LABEL_COL, label_lookup("genre", {genre: float(i) for i, genre in enumerate(classes)})
    )
    if class_weights:
        total = sum(train.values())
        weights = {genre: total / (len(train) * n) for genre, n in train.items()}
        frame = frame.withColumn(WEIGHT_COL, label_lookup("genre", weights))
    keep = ["track_id", "genre", LABEL_COL, "split"] + ([WEIGHT_COL] if class_weights else [])
    return LabelledData(frame=frame.select(*keep, *columns), labels=classes, counts=counts)


def _check_counts(counts: dict[str, dict[str, int]], *, folds: int) -> list[str]:
    """The class labels (sorted training genres), or TrainingDataError; warns of genres with
    fewer training rows than ``folds``."""
    unknown = sorted(set(counts) - set(SPLITS), key=str)
    if unknown:
        raise TrainingDataError(
            f"labels: split values must be {' or '.join(SPLITS)}, got {_shown(unknown)}"
        )
    for split in SPLITS:
        if not counts.get(split):
            raise TrainingDataError(f"no labelled {split} rows (split = '{split}')")
    train, test = counts["train"], counts["test"]
    untrained = sorted(set(test) - set(train))
    if untrained:
        raise TrainingDataError(f"test genre(s) without training rows: {_shown(untrained)}")
    single = sorted(genre for genre, n in train.items() if n == 1)
    if single:
        raise TrainingDataError(
            f"genre(s) with a single training row: {_shown(single)}; cross-validation needs"
            " two of each genre, so that every fold trains on one"
        )
    few = sorted(genre for genre, n in train.items() if n < folds)
    if few:
        log.warning(
            "genre(s) with fewer training rows than the %d folds, missing from some"
            " validation folds: %s",
            folds,
            _shown([f"{genre} ({train[genre]})" for genre in few]),
        )
    if len(train) < 2:
        raise TrainingDataError(f"one genre only ({', '.join(train)}): nothing to classify")
    return sorted(train)
