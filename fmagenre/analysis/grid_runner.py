"""Evaluate model-grid cells in parallel on Spark: one cell per task.

The grid's data (a bounded sample: ``GridData``) is broadcast once; each Python worker loads
it once and evaluates the cells of its tasks with :func:`fmagenre.analysis.cells.run_cell`, each
fit in a forked child under the cell's time limit.

The cells are the rows of ``spark.range(n, numSlices=n)``: one row per partition, hence one
cell per task, with no shuffle for adaptive query execution to coalesce (a ``groupBy`` over
a tiny cell table would be merged into a single task and run the grid serially). Tasks start
in partition order, so the cells are ordered costliest first: the long fits start early and
the short ones fill the gaps.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

from fmagenre.analysis.cells import SCORES, Cell, GridData, run_cell

RESULT_SCHEMA = StructType(
    [
        StructField("cell_id", LongType()),
        StructField("n_train", LongType()),
        StructField("n_test", LongType()),
        StructField("status", StringType()),
        StructField("error", StringType()),
        *(StructField(name, DoubleType()) for name in (*SCORES, "elapsed_s")),
    ]
)


def run_cells(
    spark: SparkSession,
    data: GridData,
    cells: Sequence[Cell],
    *,
    timeout: float,
    seed: int = 0,
) -> pd.DataFrame:
    """Evaluate every cell on ``data``, one Spark task per cell.

    Parameters
    ----------
    spark : SparkSession
    data : GridData
        Broadcast to the executors: keep it bounded.
    cells : sequence of Cell
        With distinct ``cell_id``.
    timeout : float
        Seconds each cell's fit and scoring may take (``math.inf``: no limit).
    seed : int
        Seed of the models and of the slow kernels' row samples.

    Returns
    -------
    pandas.DataFrame
        One row per cell, in the order of ``cells``: ``cell_id``, ``feature_set``,
        ``algorithm``, ``n_features``, then :data:`RESULT_SCHEMA`'s other columns.
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    ids = [cell.cell_id for cell in cells]
    if len(set(ids)) != len(ids):
        raise ValueError("cell ids must be distinct")
    if not cells:
        raise ValueError("no cell to evaluate")
    ordered = sorted(cells, key=lambda cell: -cell.cost)
    broadcast = spark.sparkContext.broadcast((data.x, data.y, data.fold))

    def evaluate(batches):
        """Executor side: the cells of this partition's ids."""
        x, y, fold = broadcast.value
        for batch in batches:
            for position in batch["id"]:
                outcome = run_cell(ordered[position], x, y, fold, timeout=timeout, seed=seed)
                yield pd.DataFrame([outcome], columns=RESULT_SCHEMA.names)

    try:
        results = (
            spark.range(0, len(ordered), 1, numPartitions=len(ordered))
            .mapInPandas(evaluate, RESULT_SCHEMA)
            .toPandas()
        )
    finally:
        broadcast.destroy()
    described = pd.DataFrame(
        {
            "cell_id": ids,
            "feature_set": [cell.feature_set for cell in cells],
            "algorithm": [cell.algorithm for cell in cells],
            "n_features": [cell.pca_components or len(cell.columns) for cell in cells],
        }
    )
    return described.merge(results, on="cell_id", how="left", validate="one_to_one")
