"""The vector space of a similarity index: feature columns, standardisation, optional PCA.

A track's vector is its feature columns standardised with the mean and standard deviation of
the table's ``ok`` rows (each column's own, over its non-missing values; a constant column
keeps a deviation of 1), a missing value (null, or NaN as FMA's undefined skew and kurtosis)
counting as the mean (0), then, with ``pca``, projected on the first principal components of
the standardised table. A row with no value at all in the columns is no point of the space:
it is left out of the index (a family that was not extracted for it, e.g. musicnn).

Both passes over the table run in the executors with NumPy (``mapInArrow``): per-partition
counts, means and squared deviations merged on the driver (Chan's update, stable whatever the
columns' offsets), then, for PCA, per-partition Gram matrices of the standardised rows summed on
the driver, whose eigenvectors are the components. That is what Spark ML's ``PCA`` computes
(``RowMatrix`` also eigendecomposes the covariance on the driver) without assembling ML
vectors, and the same NumPy code then maps the queries (:meth:`Space.vectors`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame

from fmagenre.errors import InputError, shown_names


class SimilarityError(InputError, ValueError):
    """A similarity index, option or input the job cannot use; the message says why."""


class EmptySpaceError(SimilarityError):
    """A feature table with no ``ok`` row that has a value in the space's columns."""


_STATS_SCHEMA = "rows long, empty long, n array<double>, mean array<double>, m2 array<double>"
_GRAM_SCHEMA = "rows long, gram binary"


def feature_matrix(batch: pa.RecordBatch | pa.Table, columns: Sequence[str]) -> np.ndarray:
    """The ``columns`` of ``batch`` as a float64 matrix, a row per row, null as NaN."""
    if not columns:
        raise ValueError("no column")
    return np.column_stack(
        [
            batch.column(name).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            for name in columns
        ]
    ).reshape(batch.num_rows, len(columns))


def _partition_stats(batches: Iterator[pa.RecordBatch], columns: Sequence[str]):
    rows, empty = 0, 0
    n = np.zeros(len(columns))
    mean = np.zeros(len(columns))
    m2 = np.zeros(len(columns))
    for batch in batches:
        values = feature_matrix(batch, columns)
        present = ~np.isnan(values)
        rows += len(values)
        empty += int((~present.any(axis=1)).sum())
        n, mean, m2 = merge_moments(
            (n, mean, m2), (present.sum(axis=0), *_moments(values, present))
        )
    yield pa.RecordBatch.from_pydict(
        {"rows": [rows], "empty": [empty], "n": [n], "mean": [mean], "m2": [m2]},
        schema=pa.schema(
            [
                ("rows", pa.int64()),
                ("empty", pa.int64()),
                *((name, pa.list_(pa.float64())) for name in ("n", "mean", "m2")),
            ]
        ),
    )


def _moments(values: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and sum of squared deviations over its present values."""
    count = present.sum(axis=0)
    filled = np.where(present, values, 0.0)
    mean = filled.sum(axis=0) / np.maximum(count, 1)
    m2 = (np.where(present, values - mean, 0.0) ** 2).sum(axis=0)
    return mean, m2


def merge_moments(a: tuple, b: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts, means and squared deviations of two parts merged (Chan et al.)."""
    (na, ma, sa), (nb, mb, sb) = a, b
    n = na + nb
    safe = np.maximum(n, 1)
    delta = mb - ma
    return n, ma + delta * nb / safe, sa + sb + delta**2 * na * nb / safe


@dataclass(frozen=True, eq=False)
class Space:
    """Feature columns and the map from their values to vectors.

    Attributes
    ----------
    name : str
        The families as given (``mfcc,spectral_contrast``), or ``mir`` for the 518 columns.
    columns : tuple of str
        Flat feature columns, in the table's order.
    mean, std : numpy.ndarray
        Of each column over the table's ``ok`` rows (float64).
    components : numpy.ndarray or None
        ``len(columns) x N`` principal directions, strongest first; None: no PCA.
    """

    name: str
    columns: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    components: np.ndarray | None = None

    @property
    def dim(self) -> int:
        """Dimensions of the vectors."""
        return len(self.columns) if self.components is None else self.components.shape[1]

    def standardised(self, values: np.ndarray) -> np.ndarray:
        """Rows of column values standardised, missing values 0."""
        scaled = (values - self.mean) / self.std
        return np.where(np.isnan(scaled), 0.0, scaled)

    def vectors(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The float32 vectors of rows of column values, and which rows have any value."""
        values = np.asarray(values, dtype=np.float64)
        has = ~np.isnan(values).all(axis=1)
        scaled = self.standardised(values)
        if self.components is not None:
            scaled = scaled @ self.components
        return scaled.astype(np.float32), has

    def to_json(self) -> dict:
        """The space as JSON values (the index manifest's ``space``)."""
        return {
            "name": self.name,
            "columns": list(self.columns),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "pca": None
            if self.components is None
            else {"components": self.components.shape[1], "matrix": self.components.tolist()},
        }

    @classmethod
    def from_json(cls, data: dict) -> Space:
        """The inverse of :meth:`to_json`."""
        pca = data["pca"]
        return cls(
            name=data["name"],
            columns=tuple(data["columns"]),
            mean=np.asarray(data["mean"], dtype=np.float64),
            std=np.asarray(data["std"], dtype=np.float64),
            components=None if pca is None else np.asarray(pca["matrix"], dtype=np.float64),
        )


def _partition_gram(batches: Iterator[pa.RecordBatch], space: Space):
    rows, gram = 0, np.zeros((len(space.columns), len(space.columns)))
    for batch in batches:
        values = feature_matrix(batch, space.columns)
        scaled = space.standardised(values[~np.isnan(values).all(axis=1)])
        rows += len(scaled)
        gram += scaled.T @ scaled
    yield pa.RecordBatch.from_pydict(
        {"rows": [rows], "gram": [gram.tobytes()]},
        schema=pa.schema([("rows", pa.int64()), ("gram", pa.binary())]),
    )


def fit_space(
    rows: DataFrame, *, name: str, columns: Sequence[str], pca: int = 0, source: str = "the table"
) -> tuple[Space, dict]:
    """The space of ``columns`` fitted on feature rows (all of them: pass ``ok`` rows).

    Parameters
    ----------
    rows : DataFrame
        With the ``columns``.
    name : str
        The space's name (its families).
    columns : sequence of str
    pca : int
        0, or the principal components to keep (at most ``len(columns)``).
    source : str
        The table, for the messages.

    Returns
    -------
    space : Space
    counts : dict
        ``rows`` read and ``no_values``: rows without any value in the columns.

    Raises
    ------
    SimilarityError
        On ``pca`` out of range.
    EmptySpaceError
        When no row has a value in the columns (no row, or a family not extracted).
    """
    columns = tuple(columns)
    if not 0 <= pca <= len(columns):
        raise SimilarityError(
            f"--pca {pca}: the space {name} has {len(columns)} columns; give 0 to"
            f" {len(columns)} components"
        )
    parts = (
        rows.select(*columns)
        .mapInArrow(partial(_partition_stats, columns=columns), _STATS_SCHEMA)
        .collect()
    )
    total = (np.zeros(len(columns)), np.zeros(len(columns)), np.zeros(len(columns)))
    for part in parts:
        total = merge_moments(total, tuple(np.asarray(part[key]) for key in ("n", "mean", "m2")))
    n, mean, m2 = total
    read = sum(part.rows for part in parts)
    empty = sum(part.empty for part in parts)
    if read == empty:
        raise EmptySpaceError(
            f"{source} has no ok row with a value in the space {name}"
            + (
                f" (its {len(columns)} columns are all null: extract them first, or choose other"
                " --families)"
                if read
                else ": give a table with extracted tracks"
            )
        )
    unseen = [column for column, count in zip(columns, n, strict=True) if count == 0]
    if unseen:
        raise EmptySpaceError(
            f"{source} has no value in {len(unseen)} column(s) of the space {name}:"
            f" {shown_names(unseen)}; extract them first, or choose other --families"
        )
    std = np.sqrt(m2 / np.maximum(n - 1, 1))
    std = np.where(std > 0, std, 1.0)
    space = Space(name=name, columns=columns, mean=mean, std=std)
    if pca:
        grams = (
            rows.select(*columns)
            .mapInArrow(partial(_partition_gram, space=space), _GRAM_SCHEMA)
            .collect()
        )
        gram = sum(np.frombuffer(part.gram).reshape(len(columns), len(columns)) for part in grams)
        variances, directions = np.linalg.eigh(gram / max(read - empty - 1, 1))
        top = directions[:, np.argsort(variances)[::-1][:pca]]
        # One sign per direction, for a reproducible space: its largest entry positive.
        signs = np.sign(top[np.abs(top).argmax(axis=0), np.arange(pca)])
        space = Space(name=name, columns=columns, mean=mean, std=std, components=top * signs)
    return space, {"rows": read, "no_values": empty}
