"""Cohen's kappa and the other test metrics: numpy definitions and the Spark evaluator.

scikit-learn is the reference: the same predictions must give the same numbers, weighted or
not.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score, recall_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from fmagenre.metrics.classification import (
    check_confusion,
    classification_summary,
    cohen_kappa,
    confusion_of,
)
from fmagenre.ml.kappa import KappaEvaluator, confusion_matrix


def _predictions(seed: int, n: int = 400, k: int = 5):
    """Labels, predictions right about 60% of the time, and positive weights."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(k, size=n, p=np.linspace(2, 1, k) / np.linspace(2, 1, k).sum())
    predictions = np.where(rng.random(n) < 0.6, labels, rng.integers(0, k, n))
    return labels, predictions, rng.uniform(0.1, 3.0, n)


@pytest.mark.parametrize("seed", range(5))
def test_kappa_of_confusion_matches_sklearn(seed):
    labels, predictions, weights = _predictions(seed)
    for w in (None, weights):
        confusion = sk_confusion_matrix(labels, predictions, sample_weight=w)
        expected = cohen_kappa_score(labels, predictions, sample_weight=w)
        assert cohen_kappa(confusion) == pytest.approx(expected, abs=1e-12)


def test_confusion_of_class_indices_matches_sklearn():
    rng = np.random.default_rng(5)
    labels, predicted = rng.integers(0, 5, size=300), rng.integers(0, 5, size=300)
    expected = sk_confusion_matrix(labels, predicted, labels=range(6))
    assert np.array_equal(confusion_of(labels, predicted, 6), expected)
    assert confusion_of(labels, predicted, 6).dtype == np.int64


def test_kappa_edge_cases():
    assert cohen_kappa(np.eye(3) * 5) == pytest.approx(1.0)
    assert cohen_kappa([[0, 4], [4, 0]]) == pytest.approx(-1.0)
    assert cohen_kappa([[2, 2], [2, 2]]) == pytest.approx(0.0)
    # One class in labels and predictions: chance agreement is certain, kappa undefined.
    assert math.isnan(cohen_kappa([[7, 0], [0, 0]]))
    for bad in ([[1, 2, 3]], [[-1, 0], [0, 1]], [[0, 0], [0, 0]], [[np.nan, 1], [1, 1]]):
        with pytest.raises(ValueError):
            check_confusion(bad)


def test_summary_matches_sklearn():
    labels, predictions, _ = _predictions(7, k=6)
    predictions[predictions == 4] = 0  # class 4 is never predicted: precision and F1 are 0
    names = ["a", "b", "c", "d", "e", "f", "unseen"]  # one class in neither
    confusion = sk_confusion_matrix(labels, predictions, labels=range(7))
    summary = classification_summary(confusion, names)
    assert summary["rows"] == len(labels)
    assert summary["accuracy"] == pytest.approx(np.mean(labels == predictions))
    assert summary["kappa"] == pytest.approx(cohen_kappa_score(labels, predictions))
    kwargs = {"zero_division": 0}
    assert summary["f1_macro"] == pytest.approx(
        f1_score(labels, predictions, average="macro", **kwargs)
    )
    assert summary["f1_weighted"] == pytest.approx(
        f1_score(labels, predictions, average="weighted", **kwargs)
    )
    recalls = recall_score(labels, predictions, average=None, **kwargs)
    for i, name in enumerate(names[:6]):
        assert summary["per_class"][name]["recall"] == pytest.approx(recalls[i])
        assert summary["per_class"][name]["support"] == int(np.sum(labels == i))
    assert summary["per_class"]["e"]["f1"] == 0.0
    assert summary["per_class"]["unseen"] == {
        "support": 0,
        "recall": None,
        "precision": 0.0,
        "f1": 0.0,
    }
    with pytest.raises(ValueError, match="6 labels for a 7-class"):
        classification_summary(confusion, names[:6])


@pytest.fixture(scope="module")
def scored(spark):
    """A DataFrame of 400 weighted predictions and the arrays it was made from."""
    labels, predictions, weights = _predictions(11)
    rows = [
        (float(y), float(p), float(w)) for y, p, w in zip(labels, predictions, weights, strict=True)
    ]
    frame = spark.createDataFrame(rows, "label double, prediction double, weight double")
    return frame, labels, predictions, weights


def test_confusion_matrix_aggregated_in_spark(scored):
    frame, labels, predictions, weights = scored
    assert np.array_equal(confusion_matrix(frame), sk_confusion_matrix(labels, predictions))
    weighted = confusion_matrix(frame, weight_col="weight", num_classes=7)
    assert weighted.shape == (7, 7)
    expected = sk_confusion_matrix(labels, predictions, sample_weight=weights)
    np.testing.assert_allclose(weighted[:5, :5], expected, rtol=1e-12)
    assert not weighted[5:].any() and not weighted[:, 5:].any()


def test_evaluator_matches_sklearn(scored, tmp_path):
    frame, labels, predictions, weights = scored
    evaluator = KappaEvaluator()
    assert evaluator.isLargerBetter()
    assert evaluator.evaluate(frame) == pytest.approx(cohen_kappa_score(labels, predictions))
    weighted = KappaEvaluator(weightCol="weight")
    expected = cohen_kappa_score(labels, predictions, sample_weight=weights)
    assert weighted.evaluate(frame) == pytest.approx(expected, abs=1e-12)
    # Other column names, set through setParams and through evaluate's param map.
    renamed = frame.withColumnRenamed("label", "y").withColumnRenamed("prediction", "p")
    assert KappaEvaluator().setParams(labelCol="y", predictionCol="p").evaluate(
        renamed
    ) == pytest.approx(cohen_kappa_score(labels, predictions))
    assert evaluator.evaluate(
        renamed, {evaluator.labelCol: "y", evaluator.predictionCol: "p"}
    ) == pytest.approx(cohen_kappa_score(labels, predictions))
    # Saved and loaded like Spark's evaluators.
    weighted.save(str(tmp_path / "evaluator"))
    loaded = KappaEvaluator.load(str(tmp_path / "evaluator"))
    assert loaded.getWeightCol() == "weight"
    assert loaded.evaluate(frame) == pytest.approx(expected, abs=1e-12)


def test_bad_predictions_are_refused(spark):
    def frame(rows):
        return spark.createDataFrame(rows, "label double, prediction double, weight double")

    with pytest.raises(ValueError, match="prediction values must be class indices"):
        confusion_matrix(frame([(0.0, None, 1.0), (1.0, 1.0, 1.0)]))
    with pytest.raises(ValueError, match="label values must be class indices"):
        confusion_matrix(frame([(0.5, 0.0, 1.0)]))
    with pytest.raises(ValueError, match="weights must be non-negative"):
        confusion_matrix(frame([(0.0, 0.0, -1.0)]), weight_col="weight")
    with pytest.raises(ValueError, match="does not fit 2 classes"):
        confusion_matrix(frame([(2.0, 0.0, 1.0)]), num_classes=2)
    with pytest.raises(ValueError, match="no rows"):
        confusion_matrix(frame([]))
