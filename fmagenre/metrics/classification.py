"""Classification metrics from a confusion matrix: accuracy, Cohen's kappa, F1, recall.

A confusion matrix ``C`` has the true classes as rows and the predicted classes as columns:
``C[i, j]`` is the number (or total weight) of rows of class ``i`` predicted as ``j``. Every
metric here is a function of it, so that Spark only has to aggregate the matrix
(:func:`fmagenre.ml.kappa.confusion_matrix`); the definitions are scikit-learn's
(``cohen_kappa_score``, ``f1_score``, ``recall_score``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_of(labels, predicted, classes: int) -> np.ndarray:
    """The confusion matrix (int64 counts) of class-index arrays ``labels`` and
    ``predicted``, indices in ``[0, classes)``."""
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    counts = np.bincount(labels * classes + predicted, minlength=classes * classes)
    return counts.reshape(classes, classes)


def check_confusion(confusion) -> np.ndarray:
    """``confusion`` as a float64 square matrix, or raise ValueError saying what is wrong."""
    matrix = np.asarray(confusion, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"a confusion matrix must be square and non-empty, got {matrix.shape}")
    if not np.all(np.isfinite(matrix)) or np.any(matrix < 0):
        raise ValueError("a confusion matrix holds finite non-negative counts")
    if matrix.sum() == 0:
        raise ValueError("the confusion matrix is empty: no rows were evaluated")
    return matrix


def cohen_kappa(confusion) -> float:
    """Cohen's kappa: agreement between labels and predictions beyond chance.

    ``(p_o - p_e) / (1 - p_e)`` with ``p_o`` the accuracy and ``p_e`` the agreement expected
    from the row and column totals. NaN when ``p_e`` is 1 (labels and predictions are all
    one class), as scikit-learn.
    """
    matrix = check_confusion(confusion)
    total = matrix.sum()
    observed = np.trace(matrix) / total
    expected = float(matrix.sum(axis=1) @ matrix.sum(axis=0)) / total**2
    if expected >= 1.0:
        return float("nan")
    return float((observed - expected) / (1.0 - expected))


def classification_summary(confusion, labels: Sequence[str]) -> dict:
    """Accuracy, kappa, macro and weighted F1 and per-class figures of a confusion matrix.

    Parameters
    ----------
    confusion : array-like, shape (k, k)
        True classes as rows, predictions as columns.
    labels : sequence of str
        Name of each class, in index order.

    Returns
    -------
    dict
        ``rows`` (an int for a matrix of counts), ``accuracy``, ``kappa``, ``f1_macro``
        (over the classes that occur in the labels or the predictions, as scikit-learn),
        ``f1_weighted`` (by support), and
        ``per_class``: for each label, ``support``, ``recall`` (None when the class has no
        row), ``precision`` and ``f1`` (0 when undefined, as scikit-learn).
    """
    matrix = check_confusion(confusion)
    if len(labels) != matrix.shape[0]:
        raise ValueError(f"{len(labels)} labels for a {matrix.shape[0]}-class confusion matrix")
    total = matrix.sum()
    hits = np.diag(matrix)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, hits / support, 0.0)
        precision = np.where(predicted > 0, hits / predicted, 0.0)
        both = precision + recall
        f1 = np.where(both > 0, 2 * precision * recall / both, 0.0)
    occurring = (support > 0) | (predicted > 0)
    count = int if np.array_equal(matrix, np.round(matrix)) else float
    per_class = {
        label: {
            "support": count(support[i]),
            "recall": float(recall[i]) if support[i] > 0 else None,
            "precision": float(precision[i]),
            "f1": float(f1[i]),
        }
        for i, label in enumerate(labels)
    }
    return {
        "rows": count(total),
        "accuracy": float(hits.sum() / total),
        "kappa": cohen_kappa(matrix),
        "f1_macro": float(f1[occurring].mean()),
        "f1_weighted": float((f1 * support).sum() / support.sum()),
        "per_class": per_class,
    }
