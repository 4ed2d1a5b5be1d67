"""Stratified, seeded row assignment in Spark: cross-validation folds and class-wise samples.

Within each class, rows are ordered by a hash of ``(seed, id)`` (``xxhash64``, the id breaking
the rare ties) and numbered 0, 1, 2...: that order is a seeded shuffle that does not depend on
partitioning, so results are the same on one core or a cluster. Fold ``r mod k`` of the row
numbered ``r`` deals each class out over the folds in turn: every fold holds ``n_c / k`` rows
of class ``c``, give or take one. A sample keeps the first rows of each class in that order.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

_RANK = "_class_rank"


def _with_class_rank(data: DataFrame, *, label_col: str, id_col: str, seed: int) -> DataFrame:
    order = Window.partitionBy(label_col).orderBy(F.xxhash64(F.lit(seed), id_col), id_col)
    return data.withColumn(_RANK, F.row_number().over(order) - 1)


def label_lookup(label_col: str, values: Mapping) -> Column:
    """A column holding ``values[label]`` for each row's label."""
    pairs = [item for label, value in values.items() for item in (F.lit(label), F.lit(value))]
    return F.create_map(*pairs)[F.col(label_col)]


def class_counts(data: DataFrame, *, label_col: str) -> dict:
    """Rows per label, with labels as keys."""
    return {row[0]: row[1] for row in data.groupBy(label_col).count().collect()}


def assign_folds(
    data: DataFrame,
    *,
    label_col: str,
    id_col: str,
    folds: int,
    seed: int,
    fold_col: str = "fold",
) -> DataFrame:
    """``data`` with an integer column ``fold_col`` in ``[0, folds)``, stratified by label.

    ``id_col`` must identify rows (the track id).
    """
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    ranked = _with_class_rank(data, label_col=label_col, id_col=id_col, seed=seed)
    return ranked.withColumn(fold_col, (F.col(_RANK) % folds).cast("int")).drop(_RANK)


def sample_quotas(counts: Mapping, *, rows: int, minimum: int) -> dict:
    """Rows to keep per class for a sample of about ``rows``: proportional, at least ``minimum``.

    A class with fewer than ``minimum`` rows keeps them all.
    """
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    total = sum(counts.values())
    return {
        label: min(count, max(minimum, round(rows * count / total)))
        for label, count in counts.items()
    }


def stratified_sample(
    data: DataFrame, *, label_col: str, id_col: str, quotas: Mapping, seed: int
) -> DataFrame:
    """The first ``quotas[label]`` rows of each class in the seeded order."""
    ranked = _with_class_rank(data, label_col=label_col, id_col=id_col, seed=seed)
    return ranked.where(F.col(_RANK) < label_lookup(label_col, quotas)).drop(_RANK)
