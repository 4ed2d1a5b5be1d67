"""Seeded stratified folds and class-wise samples in Spark."""

from __future__ import annotations

from collections import Counter

import pytest

from fmagenre.ml.stratify import assign_folds, class_counts, sample_quotas, stratified_sample


@pytest.fixture(scope="module")
def rows(spark):
    """7 classes of 1 to 97 rows, ids with gaps, 3 partitions."""
    data = [(i * 3 + 1, f"g{i % 7}") for i in range(300) if i % 7 != 6 or i < 7]
    return spark.createDataFrame(data, "track_id long, genre string").repartition(3)


def test_folds_are_stratified_and_seeded(rows):
    folded = assign_folds(rows, label_col="genre", id_col="track_id", folds=3, seed=5)
    assignment = {r.track_id: (r.genre, r.fold) for r in folded.collect()}
    assert len(assignment) == rows.count()
    per_class = Counter(assignment.values())
    for genre, total in class_counts(rows, label_col="genre").items():
        sizes = [per_class[(genre, fold)] for fold in range(3)]
        assert sum(sizes) == total and max(sizes) - min(sizes) <= 1
    # The same seed on other partitions gives the same folds; another seed others.
    again = assign_folds(rows.repartition(5), label_col="genre", id_col="track_id", folds=3, seed=5)
    assert {r.track_id: r.fold for r in again.collect()} == {k: v[1] for k, v in assignment.items()}
    other = assign_folds(rows, label_col="genre", id_col="track_id", folds=3, seed=6)
    assert {r.track_id: r.fold for r in other.collect()} != {k: v[1] for k, v in assignment.items()}
    with pytest.raises(ValueError, match="folds must be at least 2"):
        assign_folds(rows, label_col="genre", id_col="track_id", folds=1, seed=0)


def test_sample_keeps_shares_and_a_minimum(rows):
    counts = class_counts(rows, label_col="genre")
    quotas = sample_quotas(counts, rows=60, minimum=3)
    assert quotas["g6"] == 1  # the class has a single row: it keeps it
    assert quotas["g0"] == round(60 * counts["g0"] / sum(counts.values()))
    sample = stratified_sample(rows, label_col="genre", id_col="track_id", quotas=quotas, seed=1)
    taken = sample.collect()
    assert Counter(r.genre for r in taken) == Counter(quotas)
    again = stratified_sample(rows, label_col="genre", id_col="track_id", quotas=quotas, seed=1)
    assert {r.track_id for r in again.collect()} == {r.track_id for r in taken}
    with pytest.raises(ValueError, match="rows must be at least 1"):
        sample_quotas(counts, rows=0, minimum=1)
