"""The labelled rows the analysis jobs work on, and what the driver takes of them.

The jobs read their inputs with :mod:`fmagenre.tables.inputs` and write their small outputs
(HTML, PNG, CSV, Markdown, column lists) with :func:`fmagenre.platform.hadoop.write_output`, so
that every path may be local, ``hdfs://`` or ``s3a://``. Nothing here collects a whole table to
the driver: :func:`sample_groups` caps the rows a job takes into pandas, and
:func:`correlation_matrix` aggregates in Spark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.stat import Correlation
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fmagenre.audio.names import flat_names
from fmagenre.tables.inputs import LABEL_COLUMNS, ok_rows, one_row_per_track


def labelled_features(
    features: DataFrame, labels: DataFrame, *, columns: Sequence[str] | None = None
) -> DataFrame:
    """``track_id``, ``genre_top``, ``split`` and the feature ``columns`` (default: the 518) of
    labelled ``ok`` rows, one row per track id.

    Rows without a track id, and rows with an undefined feature (null or NaN), are left out:
    models cannot take them.
    """
    columns = list(flat_names() if columns is None else columns)
    keys = labels.select(*LABEL_COLUMNS).where(F.col("genre_top").isNotNull())
    return (
        one_row_per_track(ok_rows(features).select("track_id", *columns))
        .dropna(subset=columns)
        .join(keys, "track_id")
        .select(*LABEL_COLUMNS, *columns)
    )


def sample_groups(
    frame: DataFrame,
    *,
    by: str,
    limits: Mapping[str, int],
    columns: Sequence[str],
    seed: int,
) -> pd.DataFrame:
    """A seeded sample of at most ``limits[value]`` rows per value of ``by``, as pandas.

    The result has the column ``by`` then ``columns``; values of ``by`` without a limit are
    left out. Spark draws each value's rows with probability ``limit / count`` (one counting
    job, one collecting job); the few rows drawn beyond a limit are dropped on the driver, so
    the driver receives about ``sum(limits)`` rows, never the table.
    """
    if any(limit < 1 for limit in limits.values()):
        raise ValueError(f"limits must be positive, got {dict(limits)}")
    wanted = frame.where(F.col(by).isin(list(limits)))
    counts = {row[0]: row[1] for row in wanted.groupBy(by).count().collect()}
    fractions = {value: min(1.0, limits[value] / n) for value, n in counts.items()}
    rows = wanted.select(by, *columns)
    if fractions:
        rows = rows.sampleBy(by, fractions, seed)
    sample = rows.toPandas()
    shuffled = sample.sample(frac=1.0, random_state=seed)
    keep = shuffled.groupby(by, sort=False).cumcount() < shuffled[by].map(limits)
    return shuffled[keep].reset_index(drop=True)


def correlation_matrix(frame: DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Pearson correlations of ``columns``, aggregated by Spark ML over the rows of ``frame``.

    Rows with a null or NaN feature are skipped. A constant column has NaN correlations.
    """
    vectors = VectorAssembler(
        inputCols=list(columns), outputCol="_features", handleInvalid="skip"
    ).transform(frame.select(*columns))
    return Correlation.corr(vectors, "_features", "pearson").head()[0].toArray()
