"""Model comparison: feature sets x algorithms, the thesis' Tables 3-6, run on Spark.

The train and test rows of the label table's split are sampled to at most
``max_train_rows``/``max_test_rows`` tracks, broadcast, and every cell (one algorithm on one
feature set) is fitted in its own Spark task under a time limit
(:mod:`fmagenre.analysis.grid_runner`). A cell that fails or runs out of time is reported in its
row.

Outputs in ``output``: ``results.csv`` (one row per cell), ``tables.md`` (accuracy, kappa,
macro F1 and fit minutes per feature set and algorithm, with the thesis' means per row and
per column) and ``heatmap.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from fmagenre.analysis.algorithms import ALGORITHMS, check_algorithms
from fmagenre.analysis.cells import DEFAULT_CELL_TIMEOUT, GridData, make_cells
from fmagenre.analysis.grid_runner import run_cells
from fmagenre.analysis.sampling import labelled_features, sample_groups
from fmagenre.audio.feature_sets import (
    THESIS_COMBINATIONS,
    THESIS_PCA_COMPONENTS,
    FeatureSet,
    build_feature_sets,
    choose_feature_sets,
    read_column_list,
)
from fmagenre.audio.names import flat_names, musicnn_names, uses_musicnn
from fmagenre.platform.figures import new_figure, png_bytes
from fmagenre.platform.hadoop import read_bytes, write_output
from fmagenre.tables.inputs import InputTableError, has_musicnn, read_feature_rows, read_labels

DEFAULT_MAX_TRAIN_ROWS = 20_000
DEFAULT_MAX_TEST_ROWS = 20_000
DEFAULT_SLOW_KERNEL_ROWS = 10_000
RESULTS_FILE, TABLES_FILE, HEATMAP_FILE = "results.csv", "tables.md", "heatmap.png"
#: (column of the results, table title, scale) of the Markdown tables.
TABLES = (
    ("accuracy", "Accuracy (%)", 100.0),
    ("kappa", "Cohen's kappa (%)", 100.0),
    ("macro_f1", "Macro F1 (%)", 100.0),
    ("fit_s", "Fit time (minutes)", 1 / 60),
)


def collect_split(
    table: DataFrame,
    *,
    max_train_rows: int,
    max_test_rows: int,
    seed: int,
    columns: Sequence[str],
) -> GridData:
    """Bounded samples of the train and test rows as grid data (fold 0 train, 1 test).

    Raises
    ------
    InputTableError
        When the train or the test part is empty.
    """
    limits = {"train": max_train_rows, "test": max_test_rows}
    sample = sample_groups(
        table, by="split", limits=limits, columns=["genre_top", *columns], seed=seed
    )
    for split in limits:
        if not (sample["split"] == split).any():
            raise InputTableError(f"no labelled {split} track has features")
    return GridData.from_frame(
        sample, (sample["split"] == "test").to_numpy(np.int64), columns, label="genre_top"
    )


def compare(
    spark: SparkSession,
    table: DataFrame,
    *,
    feature_sets: Sequence[FeatureSet],
    algorithms: Sequence[str],
    max_train_rows: int = DEFAULT_MAX_TRAIN_ROWS,
    max_test_rows: int = DEFAULT_MAX_TEST_ROWS,
    slow_kernel_rows: int = DEFAULT_SLOW_KERNEL_ROWS,
    cell_timeout: float = DEFAULT_CELL_TIMEOUT,
    seed: int = 0,
) -> pd.DataFrame:
    """Evaluate every (feature set, algorithm) cell; one row per cell.

    Parameters
    ----------
    spark : SparkSession
    table : DataFrame
        ``genre_top``, ``split`` and the 518 features (:func:`labelled_features`), then the
        musicnn family's 450 when a feature set uses them.
    feature_sets : sequence of FeatureSet
    algorithms : sequence of str
        Keys of :data:`fmagenre.analysis.algorithms.ALGORITHMS`.
    max_train_rows, max_test_rows : int
        Most train and test tracks sampled (and broadcast).
    slow_kernel_rows : int
        Most training tracks of the RBF SVC and kNN cells; 0: no limit.
    cell_timeout : float
        Seconds each cell may take.
    seed : int

    Returns
    -------
    pandas.DataFrame
        :func:`fmagenre.analysis.grid_runner.run_cells`' table, in (feature set, algorithm) order.
    """
    check_algorithms(list(algorithms))
    if not feature_sets:
        raise ValueError("no feature set to compare")
    used = {column for feature_set in feature_sets for column in feature_set.columns}
    columns = (*flat_names(), *(musicnn_names() if uses_musicnn(used) else ()))
    cells = make_cells(feature_sets, algorithms, columns, slow_kernel_rows=slow_kernel_rows)
    data = collect_split(
        table,
        max_train_rows=max_train_rows,
        max_test_rows=max_test_rows,
        seed=seed,
        columns=columns,
    )
    return run_cells(spark, data, cells, timeout=cell_timeout, seed=seed)


def pivot(results: pd.DataFrame, value: str, *, scale: float = 1.0) -> pd.DataFrame:
    """``value`` x ``scale`` per feature set (rows) and algorithm (columns), with means.

    Rows and columns keep the order of ``results``; the ``mean`` column and row average the
    ok cells; a cell that is not ok is NaN.
    """
    ok = results.assign(_v=results[value].where(results["status"] == "ok") * scale)
    table = ok.pivot(index="feature_set", columns="algorithm", values="_v")
    table = table.loc[results["feature_set"].unique(), results["algorithm"].unique()]
    table["mean"] = table.mean(axis=1)
    table.loc["mean"] = table.mean(axis=0)
    table.loc["mean", "mean"] = np.nan
    return table


def _markdown(table: pd.DataFrame, results: pd.DataFrame) -> str:
    """One pivot as a Markdown table; a cell that is not ok shows its status."""
    dims = results.drop_duplicates("feature_set").set_index("feature_set")["n_features"]
    status = results.set_index(["feature_set", "algorithm"])["status"]
    header = ["", "dim", *(ALGORITHMS.get(c, c) for c in table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in table.iterrows():
        cells = [str(name), str(dims.get(name, "-"))]
        for column, value in row.items():
            if np.isfinite(value):
                cells.append(f"{value:.2f}")
            else:
                cells.append(status.get((name, column), "-"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_tables(results: pd.DataFrame) -> str:
    """The Markdown report: one table per score and for fit minutes, then the failed cells."""
    parts = ["# Model comparison\n"]
    for value, title, scale in TABLES:
        parts.append(f"## {title}\n\n{_markdown(pivot(results, value, scale=scale), results)}\n")
    failed = results[results["status"] != "ok"]
    parts.append("## Cells not ok\n")
    if failed.empty:
        parts.append("None.\n")
    for row in failed.itertuples():
        parts.append(f"- {row.feature_set} x {row.algorithm}: {row.status}, {row.error}")
    return "\n".join(parts) + "\n"


def heatmap(results: pd.DataFrame) -> bytes:
    """PNG: accuracy (%) and fit minutes per feature set and algorithm; empty cells failed."""
    panels = (
        ("accuracy", "Accuracy (%)", 100.0, "viridis"),
        ("fit_s", "Fit minutes", 1 / 60, "magma_r"),
    )
    sets, algorithms = results["feature_set"].unique(), results["algorithm"].unique()
    figure = new_figure(3 + 1.6 * len(algorithms), 1.5 + 0.38 * len(sets))
    for axes, (value, title, scale, cmap) in zip(figure.subplots(1, 2), panels, strict=True):
        table = pivot(results, value, scale=scale).drop(index="mean", columns="mean")
        image = axes.imshow(np.ma.masked_invalid(table.to_numpy(float)), cmap=cmap, aspect="auto")
        axes.set_xticks(range(len(algorithms)), [ALGORITHMS[a] for a in algorithms], rotation=45)
        axes.set_yticks(range(len(sets)), sets, fontsize=8)
        for (i, j), number in np.ndenumerate(table.to_numpy(float)):
            text = f"{number:.1f}" if np.isfinite(number) else "x"
            axes.text(j, i, text, ha="center", va="center", fontsize=7, color="white")
        axes.set_title(title)
        figure.colorbar(image, ax=axes, shrink=0.8)
    return png_bytes(figure)


def run(
    spark: SparkSession,
    *,
    features: str,
    labels: str,
    output: str,
    columns_file: str | None = None,
    combinations: Sequence[str] = THESIS_COMBINATIONS,
    pca_components: int = THESIS_PCA_COMPONENTS,
    feature_sets: Sequence[str] | None = None,
    algorithms: Sequence[str] | None = None,
    max_train_rows: int = DEFAULT_MAX_TRAIN_ROWS,
    max_test_rows: int = DEFAULT_MAX_TEST_ROWS,
    slow_kernel_rows: int = DEFAULT_SLOW_KERNEL_ROWS,
    cell_timeout: float = DEFAULT_CELL_TIMEOUT,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Run the comparison grid and write its outputs.

    Parameters
    ----------
    spark : SparkSession
    features, labels : str
        Feature table (extraction layout or plain Parquet) and label table, any Hadoop path.
    output : str
        Directory of the outputs, any Hadoop path.
    columns_file : str or None
        A column list (``select_features``' ``columns.txt``): adds the ``selected`` set.
    combinations : sequence of str
        Family combinations (``mfcc+spectral_contrast``) added as feature sets.
    pca_components : int
        Components of the ``pca`` set; 0 leaves it out.
    feature_sets : sequence of str or None
        Names of the sets to run (None: every set defined); see
        :mod:`fmagenre.audio.feature_sets`. A table that holds the musicnn family also
        defines ``musicnn`` and ``mir+musicnn``; every set is then evaluated on the tracks
        that have musicnn values.
    algorithms : sequence of str or None
        Algorithms to run (None: all nine).
    max_train_rows, max_test_rows, slow_kernel_rows, cell_timeout, seed
        See :func:`compare`.

    Returns
    -------
    results : pandas.DataFrame
        One row per cell.
    paths : dict of str to str
        ``results``, ``tables`` and ``heatmap``: where they were written.

    Raises
    ------
    InputTableError
        On a missing path or a table without the needed columns or rows.
    FeatureSetError
        On an unknown family, feature set or column, or an unreadable column list.
    ValueError
        On an unknown algorithm or a bad number.
    """
    chosen_algorithms = list(ALGORITHMS) if algorithms is None else list(algorithms)
    check_algorithms(chosen_algorithms)
    if min(max_train_rows, max_test_rows) < 1 or slow_kernel_rows < 0 or not cell_timeout > 0:
        raise ValueError(
            "need max_train_rows, max_test_rows >= 1, slow_kernel_rows >= 0, cell_timeout > 0"
        )
    selected = None
    if columns_file is not None:
        selected = read_column_list(columns_file, read=partial(read_bytes, spark))
    rows = read_feature_rows(spark, features, columns=("track_id", *flat_names()))
    musicnn = has_musicnn(rows)
    available = build_feature_sets(
        combinations=combinations,
        selected=selected,
        pca_components=pca_components,
        musicnn=musicnn or feature_sets is not None,
    )
    sets = choose_feature_sets(available, feature_sets)
    columns = (*flat_names(), *(musicnn_names() if musicnn else ()))
    if not musicnn and any(uses_musicnn(s.columns) for s in sets):
        raise InputTableError(
            f"{features} holds no musicnn values: extract them with jobs/extract_features.py"
            " --families mir,musicnn, or leave the musicnn sets out"
        )
    table = labelled_features(rows, read_labels(spark, labels), columns=columns)
    results = compare(
        spark,
        table,
        feature_sets=sets,
        algorithms=chosen_algorithms,
        max_train_rows=max_train_rows,
        max_test_rows=max_test_rows,
        slow_kernel_rows=slow_kernel_rows,
        cell_timeout=cell_timeout,
        seed=seed,
    )
    paths = {
        "results": write_output(spark, output, RESULTS_FILE, results.to_csv(index=False)),
        "tables": write_output(spark, output, TABLES_FILE, markdown_tables(results)),
        "heatmap": write_output(spark, output, HEATMAP_FILE, heatmap(results)),
    }
    return results, paths
