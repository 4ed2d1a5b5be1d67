"""OneVsRestLinearSVC: against Spark's OneVsRest(LinearSVC), weights, persistence, L-BFGS."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml.classification import LinearSVC, OneVsRest
from pyspark.ml.linalg import Vectors

from fmagenre.ml.linear_svc import (
    OneVsRestLinearSVC,
    OneVsRestLinearSVCModel,
    lockstep_lbfgs,
)


def _rows(classes: int, n: int, dims: int = 6, spread: float = 3.0, seed: int = 0):
    """Gaussian blobs, one per class, well apart: (label, features, weight) rows."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, spread, size=(classes, dims))
    labels = rng.integers(0, classes, size=n)
    X = centres[labels] + rng.normal(size=(n, dims))
    weights = rng.uniform(0.5, 2.0, size=n)
    return [
        (float(y), Vectors.dense(x), float(w)) for y, x, w in zip(labels, X, weights, strict=True)
    ]


def _frame(spark, rows, partitions: int = 2):
    return spark.createDataFrame(rows, ["label", "features", "weight"]).repartition(partitions)


def _predictions(model, frame) -> np.ndarray:
    rows = model.transform(frame).select("id", "prediction").orderBy("id").collect()
    return np.array([row.prediction for row in rows])


@pytest.mark.slow
@pytest.mark.parametrize("classes", [2, 4])
def test_agrees_with_spark_one_vs_rest(spark, classes):
    rows = _rows(classes, 600, seed=classes)
    frame = _frame(spark, [(i, *row) for i, row in enumerate(rows)]).toDF(
        "id", "label", "features", "weight"
    )
    params = {"maxIter": 50, "regParam": 0.01}
    ours = OneVsRestLinearSVC(**params).fit(frame)
    spark_model = OneVsRest(classifier=LinearSVC(standardization=False, **params)).fit(frame)
    got, expected = _predictions(ours, frame), _predictions(spark_model, frame)
    truth = np.array([row[0] for row in rows])
    assert np.mean(got == expected) >= 0.95
    assert np.mean(got == truth) >= np.mean(expected == truth) - 0.02
    assert ours.coefficients.shape == (classes, 6) and ours.numClasses == classes
    summary = ours.training_summary
    assert summary["rows"] == 600 and summary["classes"] == classes
    # One Spark job per iteration of all the classes (more only when a line search's four
    # steps all fail), not one per class and line-search step.
    assert 2 + max(summary["iterations"]) <= summary["spark_jobs"]
    assert summary["spark_jobs"] <= 2 + 1.5 * max(summary["iterations"])
    raw = ours.transform(frame).select("rawPrediction", "prediction").first()
    assert len(raw.rawPrediction) == classes
    assert raw.prediction == float(np.argmax(raw.rawPrediction.toArray()))


@pytest.mark.slow
def test_weights_change_the_fit(spark):
    rows = _rows(3, 400, spread=0.7, seed=5)
    # Rows of class 0 weigh 20 times more: the model predicts class 0 more often.
    weighted = [(y, x, 20.0 if y == 0 else 1.0) for y, x, _ in rows]
    frame = _frame(spark, weighted)
    plain = OneVsRestLinearSVC(maxIter=30, regParam=0.01).fit(frame)
    heavy = OneVsRestLinearSVC(maxIter=30, regParam=0.01, weightCol="weight").fit(frame)
    assert not np.allclose(plain.coefficients, heavy.coefficients)

    def zeros(model):
        return model.transform(frame).where("prediction = 0").count()

    assert zeros(heavy) > zeros(plain)


def test_save_and_load(spark, tmp_path):
    frame = _frame(spark, _rows(3, 200, seed=2))
    estimator = OneVsRestLinearSVC(
        maxIter=10, regParam=0.1, predictionCol="p", rawPredictionCol="raw", weightCol="weight"
    )
    estimator.save(str(tmp_path / "estimator"))
    loaded_estimator = OneVsRestLinearSVC.load(str(tmp_path / "estimator"))
    assert loaded_estimator.getRegParam() == 0.1 and loaded_estimator.getWeightCol() == "weight"
    model = loaded_estimator.fit(frame)
    model.save(str(tmp_path / "model"))
    loaded = OneVsRestLinearSVCModel.load(str(tmp_path / "model"))
    assert loaded.uid == model.uid and loaded.getPredictionCol() == "p"
    assert np.array_equal(loaded.coefficients, model.coefficients)
    assert np.array_equal(loaded.intercepts, model.intercepts)
    columns = ["label", "raw", "p"]
    assert (
        loaded.transform(frame).select(*columns).collect()
        == model.transform(frame).select(*columns).collect()
    )


def test_missing_top_class_is_never_predicted_and_bad_input_fails(spark):
    rows = [(y, x, w) for y, x, w in _rows(3, 200, seed=3) if y != 1.0]
    frame = _frame(spark, rows)
    model = OneVsRestLinearSVC(maxIter=20).fit(frame)
    assert model.numClasses == 3
    assert model.transform(frame).where("prediction = 1").count() == 0
    with pytest.raises(Exception, match="weights non-negative"):
        negative = frame.selectExpr("label", "features", "-1.0 AS weight")
        OneVsRestLinearSVC(weightCol="weight").fit(negative)


def test_lockstep_lbfgs_solves_each_problem_on_its_own():
    # Three quadratics 1/2 (x - c)' A (x - c) of different conditioning, in lockstep.
    rng = np.random.default_rng(0)
    A = [np.diag(d) for d in ([1.0, 1.0], [1.0, 50.0], [0.1, 10.0])]
    centres = rng.normal(size=(3, 2))
    calls = []

    def evaluate(W, P, steps):
        calls.append(steps.shape)
        diffs = W[:, None, :] + steps[:, :, None] * P[:, None, :] - centres[:, None, :]
        grads = np.stack([d @ a.T for a, d in zip(A, diffs, strict=True)])
        return 0.5 * np.einsum("ktd,ktd->kt", diffs, grads), grads

    W, iterations = lockstep_lbfgs(evaluate, np.zeros((3, 2)), max_iter=100, tol=1e-12)
    assert np.allclose(W, centres, atol=1e-5)
    # The well-conditioned problem stops long before the others; one call per iteration
    # while some step of the four tried decreases enough.
    assert iterations[0] < max(iterations)
    assert len(calls) <= 1 + 3 * max(iterations)
