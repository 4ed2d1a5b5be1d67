"""Training data: genres with fewer training rows than folds, or a single training row."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from fmagenre.ml.stratify import assign_folds
from fmagenre.ml.training_data import labelled_data
from fmagenre.tables.inputs import InputTableError


def _tables(spark, train: dict[str, int], test: dict[str, int]):
    """Feature rows (``track_id``, ``x``) and labels of ``train`` and ``test`` rows per genre."""
    rows = [
        (split, genre)
        for split, counts in (("train", train), ("test", test))
        for genre, n in counts.items()
        for _ in range(n)
    ]
    labels = spark.createDataFrame(
        [(i, genre, split) for i, (split, genre) in enumerate(rows)],
        "track_id long, genre_top string, split string",
    )
    features = spark.createDataFrame(
        [(i, float(i)) for i in range(len(rows))], "track_id long, x double"
    )
    return features, labels


def _labelled(features, labels):
    return labelled_data(features, labels, columns=["x"], class_weights=False, folds=3)


def test_a_genre_with_fewer_rows_than_folds_is_missing_from_some_validation_folds(spark, caplog):
    features, labels = _tables(spark, {"Rock": 9, "Country": 2}, {"Rock": 3, "Country": 1})
    with caplog.at_level(logging.WARNING, logger="fmagenre.ml.training_data"):
        data = _labelled(features, labels)
    assert data.labels == ["Country", "Rock"]
    assert (
        "fewer training rows than the 3 folds, missing from some validation folds: Country (2)"
        in caplog.text
    )
    folded = assign_folds(
        data.split("train"), label_col="genre", id_col="track_id", folds=3, seed=0
    )
    per_fold = Counter((row.genre, row.fold) for row in folded.collect())
    assert [per_fold[("Rock", fold)] for fold in range(3)] == [3, 3, 3]
    # Two of the three folds validate one Country row each, and every fold trains on one.
    assert sorted(per_fold[("Country", fold)] for fold in range(3)) == [0, 1, 1]


def test_a_genre_needs_two_training_rows(spark, caplog):
    features, labels = _tables(spark, {"Rock": 9, "Country": 1}, {"Rock": 3})
    with pytest.raises(InputTableError, match=r"single training row: Country; cross-valid"):
        _labelled(features, labels)
    features, labels = _tables(spark, {"Rock": 9, "Jazz": 3}, {"Rock": 3, "Country": 1})
    with pytest.raises(InputTableError, match=r"test genre\(s\) without training rows: Country"):
        _labelled(features, labels)
    with caplog.at_level(logging.WARNING, logger="fmagenre.ml.training_data"):
        assert _labelled(features.where("track_id != 15"), labels).labels == ["Jazz", "Rock"]
    assert "folds" not in caplog.text
