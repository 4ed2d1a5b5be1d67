"""The time-limited evaluation of one cell of the model comparison's grid.

A cell is one algorithm (:mod:`fmagenre.analysis.algorithms`) fitted on one feature set of a
training part and scored on a test part (accuracy, Cohen's kappa, macro F1, fit and predict
seconds).

A cell runs in a forked child process that the parent kills at the deadline: a thread could
not be stopped, and a runaway fit would hold a core after its cell was given up. The child
inherits the data through fork (nothing is copied or pickled up front) and sends back only
the scores; it runs its BLAS/OpenMP libraries single-threaded, one core per cell. Whatever
goes wrong in a cell (an exception, a crash, the deadline) comes back as its status and
error, never as an exception.
"""

from __future__ import annotations

import math
import multiprocessing
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score
from threadpoolctl import threadpool_limits

from fmagenre.analysis.algorithms import (
    SLOW_KERNELS,
    THESIS_MINUTES_ALL,
    check_algorithms,
    make_pipeline,
)
from fmagenre.audio.feature_sets import FeatureSet

#: Seconds a cell may take unless told otherwise.
DEFAULT_CELL_TIMEOUT = 3600.0
SCORES = ("accuracy", "kappa", "macro_f1", "fit_s", "predict_s")


def fit_and_score(
    algorithm: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    pca_components: int = 0,
    seed: int = 0,
) -> dict:
    """Fit in this process and score the test rows; exceptions of the fit propagate.

    Returns ``accuracy``, ``kappa``, ``macro_f1``, ``fit_s`` and ``predict_s``. Classes are
    re-coded 0..k-1 from those of ``y_train`` (XGBoost needs it), and predictions mapped back,
    so any integer class codes work.
    """
    model = make_pipeline(algorithm, pca_components=pca_components, seed=seed)
    classes, codes = np.unique(y_train, return_inverse=True)
    start = time.perf_counter()
    model.fit(x_train, codes)
    fitted = time.perf_counter()
    predicted = classes[np.asarray(model.predict(x_test), dtype=np.int64)]
    done = time.perf_counter()
    return {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "kappa": float(cohen_kappa_score(y_test, predicted)),
        "macro_f1": float(f1_score(y_test, predicted, average="macro", zero_division=0)),
        "fit_s": fitted - start,
        "predict_s": done - fitted,
    }


def _outcome(status: str, error: str | None = None, scores: dict | None = None) -> dict:
    outcome = {"status": status, "error": error}
    outcome.update({name: (scores or {}).get(name, math.nan) for name in SCORES})
    return outcome


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}"[:500]


def _child(connection, args: tuple, options: dict) -> None:
    """Body of the forked process: fit, score, send the outcome."""
    try:
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outcome = _outcome("ok", scores=fit_and_score(*args, **options))
    except Exception as error:
        outcome = _outcome("error", _one_line(error))
    connection.send(outcome)
    connection.close()


def evaluate_cell(
    algorithm: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    timeout: float,
    pca_components: int = 0,
    seed: int = 0,
) -> dict:
    """:func:`fit_and_score` in a forked child, killed after ``timeout`` seconds.

    Returns
    -------
    dict
        ``status`` (``ok``, ``error`` or ``timeout``), ``error`` (one line, or None), the
        scores of :func:`fit_and_score` (NaN unless ok) and ``elapsed_s`` (wall seconds).
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    check_algorithms([algorithm])
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    args = (algorithm, x_train, y_train, x_test, y_test)
    options = {"pca_components": pca_components, "seed": seed}
    start = time.perf_counter()
    process = context.Process(target=_child, args=(sender, args, options), daemon=True)
    process.start()
    sender.close()  # the child holds the only writer: its death reads as end of file
    try:
        if receiver.poll(None if math.isinf(timeout) else timeout):
            try:
                outcome = receiver.recv()
            except EOFError:
                process.join()
                outcome = _outcome(
                    "error", f"the fit's process died (exit code {process.exitcode})"
                )
        else:
            process.kill()
            outcome = _outcome("timeout", f"no result within the {timeout:g} s limit")
    finally:
        process.join()
        receiver.close()
    outcome["elapsed_s"] = time.perf_counter() - start
    return outcome


@dataclass(frozen=True)
class Cell:
    """One evaluation of the grid.

    Attributes
    ----------
    cell_id : int
        Unique in a grid.
    feature_set : str
        Name of the feature set (for the report).
    algorithm : str
        A key of :data:`fmagenre.analysis.algorithms.ALGORITHMS`.
    columns : tuple of int
        Indices of the data's columns the model sees.
    pca_components : int
        0, or the components a PCA step keeps.
    test_fold : int
        Rows whose fold is this value are the test part; the other rows train.
    max_train_rows : int
        0, or the most training rows (a seeded sample), for the slow kernels.
    """

    cell_id: int
    feature_set: str
    algorithm: str
    columns: tuple[int, ...]
    pca_components: int = 0
    test_fold: int = 1
    max_train_rows: int = 0

    @property
    def cost(self) -> float:
        """Rough relative cost, to start the longest cells first."""
        return THESIS_MINUTES_ALL[self.algorithm] * (self.pca_components or len(self.columns))


def run_cell(
    cell: Cell, x: np.ndarray, y: np.ndarray, fold: np.ndarray, *, timeout: float, seed: int = 0
) -> dict:
    """Evaluate ``cell`` on the rows of ``x``/``y`` split by ``fold``.

    Returns
    -------
    dict
        :func:`evaluate_cell`'s outcome plus ``cell_id``, ``n_train`` and ``n_test``.
    """
    train = np.flatnonzero(fold != cell.test_fold)
    test = np.flatnonzero(fold == cell.test_fold)
    if 0 < cell.max_train_rows < train.size:
        rng = np.random.default_rng([seed, cell.cell_id])
        train = np.sort(rng.choice(train, size=cell.max_train_rows, replace=False))
    columns = np.asarray(cell.columns, dtype=np.int64)
    if train.size == 0 or test.size == 0:
        outcome = _outcome("error", f"no training or test rows (fold {cell.test_fold})")
        outcome["elapsed_s"] = 0.0
    else:
        outcome = evaluate_cell(
            cell.algorithm,
            x[np.ix_(train, columns)],
            y[train],
            x[np.ix_(test, columns)],
            y[test],
            timeout=timeout,
            pca_components=cell.pca_components,
            seed=seed,
        )
    return {
        "cell_id": cell.cell_id,
        "n_train": int(train.size),
        "n_test": int(test.size),
        **outcome,
    }


def make_cells(
    feature_sets: Sequence[FeatureSet],
    algorithms: Sequence[str],
    columns: Sequence[str],
    *,
    test_fold: int = 1,
    slow_kernel_rows: int = 0,
    first_id: int = 0,
) -> list[Cell]:
    """One cell per (feature set, algorithm), numbered from ``first_id`` in that order.

    ``columns`` are the data's columns, which the feature sets' columns index;
    ``slow_kernel_rows`` (0: no limit) caps the training rows of
    :data:`fmagenre.analysis.algorithms.SLOW_KERNELS`.
    """
    check_algorithms(list(algorithms))
    if slow_kernel_rows < 0:
        raise ValueError(f"slow_kernel_rows must be >= 0, got {slow_kernel_rows}")
    position = {name: i for i, name in enumerate(columns)}
    cells = []
    for feature_set in feature_sets:
        indices = tuple(position[name] for name in feature_set.columns)
        for algorithm in algorithms:
            limit = slow_kernel_rows if algorithm in SLOW_KERNELS else 0
            cells.append(
                Cell(
                    first_id + len(cells),
                    feature_set.name,
                    algorithm,
                    indices,
                    feature_set.pca_components,
                    test_fold,
                    limit,
                )
            )
    return cells


@dataclass(frozen=True)
class GridData:
    """The rows every cell of a grid draws on.

    Attributes
    ----------
    x : numpy.ndarray
        float32, one row per track, one column per name of ``columns``.
    y : numpy.ndarray
        int64 class codes, indices into ``classes``.
    fold : numpy.ndarray
        int64 part of each row: a cell tests on one fold and trains on the others.
    columns : tuple of str
    classes : tuple of str
    """

    x: np.ndarray
    y: np.ndarray
    fold: np.ndarray
    columns: tuple[str, ...]
    classes: tuple[str, ...]

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, fold: np.ndarray, columns: Sequence[str], *, label: str
    ) -> GridData:
        """From a pandas table with a ``label`` column and the feature ``columns``."""
        if len(fold) != len(frame):
            raise ValueError(f"{len(fold)} folds for {len(frame)} rows")
        classes = tuple(sorted(frame[label].unique()))
        codes = pd.Categorical(frame[label], categories=classes).codes.astype(np.int64)
        return cls(
            frame[list(columns)].to_numpy(dtype=np.float32),
            codes,
            np.asarray(fold, dtype=np.int64),
            tuple(columns),
            classes,
        )
