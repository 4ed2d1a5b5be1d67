"""Feature selection, the thesis' three strategies, on the training tracks only.

All three work on one bounded, seeded sample of the training tracks (``sample_rows``, drawn
by Spark), so the driver never holds the table.

* PCA on standardized features: the eigenvalues of the sample's correlation matrix (PCA of
  standardized columns is the eigen-decomposition of their correlation matrix; with 20,000
  tracks for 518 columns the spectrum is estimated closely). Gives the explained-variance
  curve and the components needed for 90/95/99% of the variance.
* Permutation importance ("mean decrease in accuracy"): a random forest fitted on the sample
  less a held-out part, each column permuted on the held-out part; the columns whose mean
  decrease exceeds the thesis' 0.001 make the column list.
* MIR family combinations: greedy forward selection over the 11 families, each candidate
  scored by its mean Cohen's kappa over stratified k folds of the sample; the candidates of a
  step are evaluated in parallel on Spark (:mod:`fmagenre.analysis.grid_runner`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from sklearn.ensemble import RandomForestClassifier
from sklearn.inspection import permutation_importance
from sklearn.model_selection import StratifiedKFold, train_test_split

from fmagenre.analysis.algorithms import check_algorithms
from fmagenre.analysis.cells import DEFAULT_CELL_TIMEOUT, GridData, make_cells
from fmagenre.analysis.grid_runner import run_cells
from fmagenre.analysis.sampling import labelled_features, sample_groups
from fmagenre.audio.feature_sets import FAMILIES, FeatureSet, family_columns, format_column_list
from fmagenre.audio.names import family_of, flat_names
from fmagenre.platform.figures import new_figure, png_bytes
from fmagenre.platform.hadoop import write_output
from fmagenre.tables.inputs import InputTableError, read_feature_rows, read_labels

DEFAULT_THRESHOLD = 0.001
VARIANCE_TARGETS = (0.90, 0.95, 0.99)
DEFAULT_SAMPLE_ROWS = 20_000
STEP_COLUMNS = [
    "step",
    "added",
    "families",
    "n_columns",
    "kappa_mean",
    "kappa_std",
    "accuracy_mean",
]
FILES = {
    "pca_csv": "pca_variance.csv",
    "pca_png": "pca_variance.png",
    "ranking": "importance.csv",
    "columns": "columns.txt",
    "greedy_csv": "greedy_steps.csv",
    "candidates_csv": "greedy_candidates.csv",
    "greedy_png": "greedy_kappa.png",
    "summary": "summary.json",
}


def explained_variance(correlation: np.ndarray) -> np.ndarray:
    """Explained-variance ratios of the principal components of standardized features.

    From the features' correlation matrix, largest first; a constant column (NaN
    correlations) adds nothing.
    """
    matrix = np.where(np.isfinite(correlation), correlation, 0.0)
    eigenvalues = np.clip(np.linalg.eigvalsh(matrix)[::-1], 0.0, None)
    total = eigenvalues.sum()
    if total <= 0:
        raise ValueError("every column is constant: no variance to explain")
    return eigenvalues / total


def components_for(ratios: np.ndarray, targets: Sequence[float]) -> dict[float, int]:
    """Fewest leading components whose ratios sum to at least each target (in (0, 1])."""
    if any(not 0 < target <= 1 for target in targets):
        raise ValueError(f"variance targets must be in (0, 1], got {list(targets)}")
    cumulative = np.cumsum(ratios)
    return {
        target: min(int(np.searchsorted(cumulative, target - 1e-9)) + 1, len(ratios))
        for target in targets
    }


def _variance_plot(ratios: np.ndarray, needed: dict[float, int]) -> bytes:
    figure = new_figure(11, 4)
    scree, curve = figure.subplots(1, 2)
    shown = min(len(ratios), 40)
    scree.bar(np.arange(1, shown + 1), 100 * ratios[:shown], color="#4c72b0")
    scree.set_xlabel("principal component")
    scree.set_ylabel("explained variance (%)")
    scree.set_title(f"Scree plot (first {shown})")
    cumulative = 100 * np.cumsum(ratios)
    curve.plot(np.arange(1, len(ratios) + 1), cumulative, color="#4c72b0")
    for target, count in needed.items():
        curve.axhline(100 * target, color="grey", linestyle="--", linewidth=0.8)
        curve.annotate(f"{100 * target:g}%: {count}", (count, 100 * target), fontsize=8)
    curve.set_xlabel("components")
    curve.set_ylabel("cumulative explained variance (%)")
    curve.set_title("Explained variance")
    return png_bytes(figure)


def _stratify(labels: np.ndarray, holdout: float) -> np.ndarray | None:
    """``labels`` when a stratified split is possible, else None (a plain random split).

    Possible when every class has two members and each part can hold one row per class.
    """
    _, counts = np.unique(labels, return_counts=True)
    held = math.ceil(holdout * len(labels))
    possible = counts.min() >= 2 and min(held, len(labels) - held) >= len(counts)
    return labels if possible else None


@dataclass(frozen=True)
class Ranking:
    """Outcome of :func:`permutation_ranking`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per column, most important first: ``rank``, ``column``, ``family``,
        ``importance_mean``, ``importance_std`` (decrease in held-out accuracy).
    holdout_accuracy : float
        The forest's accuracy on the held-out part, unpermuted.
    n_fit, n_holdout : int
        Tracks the forest was fitted and permuted on.
    """

    table: pd.DataFrame
    holdout_accuracy: float
    n_fit: int
    n_holdout: int


def permutation_ranking(
    x: np.ndarray,
    y: np.ndarray,
    columns: Sequence[str],
    *,
    trees: int = 100,
    repeats: int = 5,
    holdout: float = 0.25,
    seed: int = 0,
    n_jobs: int = 1,
) -> Ranking:
    """Rank columns by permutation importance of a random forest.

    Parameters
    ----------
    x, y : numpy.ndarray
        Features (one column per name of ``columns``) and class codes.
    columns : sequence of str
    trees : int
        Trees of the forest.
    repeats : int
        Permutations of each column.
    holdout : float
        Share of the rows held out (stratified when every class has two rows) to permute on.
    seed : int
        Seed of the split, the forest and the permutations.
    n_jobs : int
        Cores of the forest and of the permutations (-1: all).
    """
    if trees < 1 or repeats < 1 or not 0 < holdout < 1:
        raise ValueError(
            f"need trees, repeats >= 1 and 0 < holdout < 1: {trees}, {repeats}, {holdout}"
        )
    if x.shape != (len(y), len(columns)):
        raise ValueError(f"x is {x.shape}, expected {len(y)} rows and {len(columns)} columns")
    x_fit, x_held, y_fit, y_held = train_test_split(
        x, y, test_size=holdout, random_state=seed, stratify=_stratify(y, holdout)
    )
    forest = RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=n_jobs)
    forest.fit(x_fit, y_fit)
    result = permutation_importance(
        forest, x_held, y_held, scoring="accuracy", n_repeats=repeats, random_state=seed,
        n_jobs=n_jobs,
    )  # fmt: skip
    table = pd.DataFrame(
        {
            "column": list(columns),
            "family": [family_of(name) for name in columns],
            "importance_mean": result.importances_mean,
            "importance_std": result.importances_std,
        }
    )
    table = table.sort_values("importance_mean", ascending=False, kind="stable")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return Ranking(
        table.reset_index(drop=True),
        float(forest.score(x_held, y_held)),
        len(y_fit),
        len(y_held),
    )


def greedy_families(
    spark: SparkSession,
    data: GridData,
    *,
    algorithm: str = "lr",
    max_families: int = len(FAMILIES),
    cell_timeout: float = DEFAULT_CELL_TIMEOUT,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Greedy forward selection of MIR families by cross-validated Cohen's kappa.

    Each step adds the family whose union with those chosen has the best mean kappa over the
    folds of ``data`` (its ``fold`` array); a candidate with a failed fold is not eligible.
    Every candidate x fold of a step is one cell of one Spark job.

    Returns
    -------
    steps : pandas.DataFrame
        One row per step: ``step``, ``added``, ``families``, ``n_columns``, ``kappa_mean``,
        ``kappa_std``, ``accuracy_mean``, ``best`` (the step of the largest kappa).
    candidates : pandas.DataFrame
        Every candidate of every step with its scores, folds ok and first error.
    """
    check_algorithms([algorithm])
    if not 1 <= max_families <= len(FAMILIES):
        raise ValueError(f"max_families must be in 1-{len(FAMILIES)}, got {max_families}")
    folds = np.unique(data.fold)
    chosen: list[str] = []
    steps, candidates = [], []
    for step in range(1, max_families + 1):
        remaining = [family for family in FAMILIES if family not in chosen]
        sets = [
            FeatureSet("+".join([*chosen, family]), family_columns([*chosen, family]))
            for family in remaining
        ]
        cells = []
        for fold in folds:
            cells += make_cells(
                sets, [algorithm], data.columns, test_fold=int(fold), first_id=len(cells)
            )
        results = run_cells(spark, data, cells, timeout=cell_timeout, seed=seed)
        ok = results["status"] == "ok"
        names = [feature_set.name for feature_set in sets]
        scores = (
            results.assign(
                kappa=results["kappa"].where(ok), accuracy=results["accuracy"].where(ok), ok=ok
            )
            .groupby("feature_set")
            .agg(
                kappa_mean=("kappa", "mean"),
                kappa_std=("kappa", lambda values: values.std(ddof=0)),
                accuracy_mean=("accuracy", "mean"),
                folds_ok=("ok", "sum"),
                error=("error", "first"),
            )
            .reindex(names)
        )
        table = scores.reset_index(names="families")
        table.insert(0, "family", remaining)
        table.insert(0, "step", step)
        table.insert(3, "n_columns", [len(feature_set.columns) for feature_set in sets])
        candidates.append(table)
        eligible = table[(table["folds_ok"] == len(folds)) & table["kappa_mean"].notna()]
        if eligible.empty:
            break
        best = eligible.loc[eligible["kappa_mean"].idxmax()]
        chosen.append(best["family"])
        steps.append(best.rename({"family": "added"})[STEP_COLUMNS])
    steps_table = pd.DataFrame(steps, columns=STEP_COLUMNS).reset_index(drop=True).infer_objects()
    steps_table["best"] = False
    if steps:
        steps_table.loc[steps_table["kappa_mean"].idxmax(), "best"] = True
    return steps_table, pd.concat(candidates, ignore_index=True)


def _greedy_plot(steps: pd.DataFrame) -> bytes:
    figure = new_figure(8, 4)
    axes = figure.add_subplot()
    axes.errorbar(
        steps["step"], steps["kappa_mean"], yerr=steps["kappa_std"], marker="o", capsize=3
    )
    axes.set_xticks(steps["step"], [f"+{name}" for name in steps["added"]], rotation=45, ha="right")
    axes.set_ylabel("Cohen's kappa (cross-validated)")
    axes.set_title("Greedy forward selection of MIR families")
    return png_bytes(figure)


def train_sample(table: DataFrame, *, max_rows: int, seed: int) -> pd.DataFrame:
    """``split``, ``genre_top`` and the 518 features of at most ``max_rows`` training tracks.

    Raises
    ------
    InputTableError
        When fewer than 10 training tracks, or fewer than 2 genres, have features.
    """
    frame = sample_groups(
        table,
        by="split",
        limits={"train": max_rows},
        columns=["genre_top", *flat_names()],
        seed=seed,
    )
    if len(frame) < 10 or frame["genre_top"].nunique() < 2:
        raise InputTableError(
            f"{len(frame)} training tracks of {frame['genre_top'].nunique()} genres have"
            " features: selection needs at least 10 tracks of 2 genres"
        )
    return frame


def run(
    spark: SparkSession,
    *,
    features: str,
    labels: str,
    output: str,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    threshold: float = DEFAULT_THRESHOLD,
    variance_targets: Sequence[float] = VARIANCE_TARGETS,
    trees: int = 100,
    repeats: int = 5,
    holdout: float = 0.25,
    folds: int = 3,
    greedy_algorithm: str = "lr",
    max_families: int = len(FAMILIES),
    cell_timeout: float = DEFAULT_CELL_TIMEOUT,
    n_jobs: int = 1,
    seed: int = 0,
) -> dict:
    """Run the three selections and write their outputs (:data:`FILES`) in ``output``.

    Parameters
    ----------
    spark : SparkSession
    features, labels : str
        Feature table (extraction layout or plain Parquet) and label table, any Hadoop path.
    output : str
        Directory of the outputs, any Hadoop path.
    sample_rows : int
        Most training tracks sampled for the forest and the greedy selection.
    threshold : float
        Columns whose mean decrease in accuracy exceeds it are selected.
    variance_targets : sequence of float
        Shares of variance whose component counts are reported.
    trees, repeats, holdout, n_jobs
        See :func:`permutation_ranking`.
    folds : int
        Stratified folds of the greedy selection, at least 2.
    greedy_algorithm : str
        Classifier of the greedy selection (a key of ``algorithms.ALGORITHMS``).
    max_families : int
        Steps of the greedy selection.
    cell_timeout : float
        Seconds each greedy fit may take.
    seed : int

    Returns
    -------
    dict
        The summary written as ``summary.json``: component counts, selected columns,
        greedy path, and the paths written.
    """
    check_algorithms([greedy_algorithm])
    components_for(np.ones(1), variance_targets)  # validates the targets
    if sample_rows < 1 or folds < 2 or not cell_timeout > 0:
        raise ValueError(
            f"need sample_rows >= 1, folds >= 2, cell_timeout > 0: {sample_rows}, {folds},"
            f" {cell_timeout}"
        )
    rows = read_feature_rows(spark, features, columns=("track_id", *flat_names()))
    table = labelled_features(rows, read_labels(spark, labels))
    columns = flat_names()

    sample = train_sample(table, max_rows=sample_rows, seed=seed)
    data = GridData.from_frame(sample, np.zeros(len(sample)), columns, label="genre_top")
    with np.errstate(invalid="ignore", divide="ignore"):  # constant columns: NaN, handled
        ratios = explained_variance(np.corrcoef(data.x, rowvar=False))
    needed = components_for(ratios, variance_targets)

    ranking = permutation_ranking(
        data.x, data.y, columns, trees=trees, repeats=repeats, holdout=holdout, seed=seed,
        n_jobs=n_jobs,
    )  # fmt: skip
    ranked = ranking.table.assign(selected=ranking.table["importance_mean"] > threshold)
    selected = ranked.loc[ranked["selected"], "column"].tolist()
    empty = None
    if not selected:
        empty = (
            f"no column's permutation importance exceeds {threshold:g} (the largest is"
            f" {ranked['importance_mean'].max():.4g}): lower --threshold, or sample more"
            " training tracks (--sample-rows)"
        )
    comments = [
        f"{len(selected)} of {len(columns)} columns: permutation importance (mean decrease in"
        f" accuracy) > {threshold:g}",
        f"random forest of {trees} trees on {ranking.n_fit} training tracks, {repeats}"
        f" permutations on {ranking.n_holdout} held out (accuracy {ranking.holdout_accuracy:.4f}),"
        f" seed {seed}",
        "most important first; written by jobs/select_features.py",
        *([] if empty is None else [empty]),
    ]

    if np.bincount(data.y).max() < folds:
        raise InputTableError(f"no genre has {folds} sampled training tracks for {folds} folds")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold = np.empty(len(sample), dtype=np.int64)
    for index, (_, test) in enumerate(splitter.split(data.x, data.y)):
        fold[test] = index
    steps, candidates = greedy_families(
        spark,
        GridData(data.x, data.y, fold, data.columns, data.classes),
        algorithm=greedy_algorithm,
        max_families=max_families,
        cell_timeout=cell_timeout,
        seed=seed,
    )

    cumulative = np.cumsum(ratios)
    pca_table = pd.DataFrame(
        {"component": np.arange(1, len(ratios) + 1), "ratio": ratios, "cumulative": cumulative}
    )
    best = steps[steps["best"]]
    summary = {
        "train_tracks_sampled": len(sample),
        "pca_components": {f"{target:g}": count for target, count in needed.items()},
        "threshold": threshold,
        "selected_columns": len(selected),
        "empty_selection": empty,
        "holdout_accuracy": ranking.holdout_accuracy,
        "greedy_algorithm": greedy_algorithm,
        "greedy_order": steps["added"].tolist(),
        "greedy_best": None if best.empty else best.iloc[0]["families"],
        "greedy_best_kappa": None if best.empty else float(best.iloc[0]["kappa_mean"]),
    }
    writes = {
        "pca_csv": pca_table.to_csv(index=False),
        "pca_png": _variance_plot(ratios, needed),
        "ranking": ranked.to_csv(index=False),
        "columns": format_column_list(selected, comments=comments),
        "greedy_csv": steps.to_csv(index=False),
        "candidates_csv": candidates.to_csv(index=False),
    }
    if not steps.empty:
        writes["greedy_png"] = _greedy_plot(steps)
    summary["files"] = {
        key: write_output(spark, output, FILES[key], content) for key, content in writes.items()
    }
    summary["files"]["summary"] = f"{output.rstrip('/')}/{FILES['summary']}"
    write_output(spark, output, FILES["summary"], json.dumps(summary, indent=2) + "\n")
    return summary
