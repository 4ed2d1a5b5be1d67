"""`python -m fmagenre.bench parity`: the regParam <-> C mapping, checked by fits; a tiny run."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from fmagenre.ml.search_space import sklearn_C, spark_reg_param


@pytest.mark.parametrize("n", [1, 300, 93_222])
@pytest.mark.parametrize("C", [1e-4, 0.5, 40.0])
def test_mapping_round_trips(C, n):
    reg_param = spark_reg_param(C, n)
    assert reg_param == pytest.approx(1 / (C * n))
    assert sklearn_C(reg_param, n) == pytest.approx(C)
    assert spark_reg_param(sklearn_C(reg_param, n), n) == pytest.approx(reg_param)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_mapping_needs_positive_values(bad):
    for call in (lambda: spark_reg_param(bad, 10), lambda: sklearn_C(1.0, bad)):
        with pytest.raises(ValueError, match="positive"):
            call()


@pytest.fixture(scope="module")
def small_problem():
    """240 standardised rows, 5 features, 3 classes that overlap."""
    rng = np.random.default_rng(0)
    y = rng.integers(3, size=240)
    x = rng.normal(size=(240, 5)) + 0.8 * np.eye(3, 5)[y]
    return (x - x.mean(axis=0)) / x.std(axis=0), y


def _frame(spark, x, y):
    from pyspark.ml.linalg import Vectors

    rows = [(float(label), Vectors.dense(row)) for label, row in zip(y, x, strict=True)]
    return spark.createDataFrame(rows, ["label", "features"])


@pytest.mark.slow
def test_mapped_logistic_regressions_agree(spark, small_problem):
    """Strong L2 regularisation: one well-conditioned optimum, which both sides reach."""
    from pyspark.ml.classification import LogisticRegression
    from sklearn.linear_model import LogisticRegression as SklearnLogisticRegression

    x, y = small_problem
    reg_param = 0.05
    spark_model = LogisticRegression(
        family="multinomial", regParam=reg_param, standardization=False, maxIter=100, tol=1e-10
    ).fit(_frame(spark, x, y))
    sklearn_model = SklearnLogisticRegression(
        C=sklearn_C(reg_param, len(y)), tol=1e-10, max_iter=1000
    ).fit(x, y)
    coef = sklearn_model.coef_
    # Neither penalises the intercepts; both sum to 0 over the classes.
    np.testing.assert_allclose(
        spark_model.coefficientMatrix.toArray(), coef, atol=1e-3 * np.abs(coef).max()
    )
    np.testing.assert_allclose(
        spark_model.interceptVector.toArray(), sklearn_model.intercept_, atol=1e-3
    )
    # A mapping off by a factor of 2 would be far from it.
    doubled = SklearnLogisticRegression(C=2 * sklearn_C(reg_param, len(y)), tol=1e-10).fit(x, y)
    assert np.abs(doubled.coef_ - coef).max() > 0.05 * np.abs(coef).max()


@pytest.mark.slow
def test_mapped_linear_svcs_agree(spark, small_problem):
    """Without intercepts (liblinear penalises its own) both minimise the same hinge objective;
    after 30 of Spark's quasi-Newton steps on the non-smooth loss, within 0.3% of liblinear."""
    from pyspark.ml.classification import LinearSVC
    from sklearn.svm import LinearSVC as SklearnLinearSVC

    x, y = small_problem
    binary = (y == 0).astype(float)
    reg_param = 0.05
    spark_model = LinearSVC(
        regParam=reg_param, standardization=False, fitIntercept=False, maxIter=30, tol=1e-12
    ).fit(_frame(spark, x, binary))
    sklearn_model = SklearnLinearSVC(
        C=sklearn_C(reg_param, len(y)), loss="hinge", fit_intercept=False, tol=1e-10
    ).fit(x, binary)
    coef = sklearn_model.coef_[0]
    np.testing.assert_allclose(
        spark_model.coefficients.toArray(), coef, atol=1e-2 * np.abs(coef).max()
    )


def test_parity_command_is_registered_and_checks_its_options():
    from fmagenre.bench.__main__ import COMMANDS
    from fmagenre.bench.parity import DEFAULT_ROWS, parse_args

    assert COMMANDS["parity"][0] == "parity"
    assert parse_args([]).rows == DEFAULT_ROWS
    with pytest.raises(SystemExit):
        parse_args(["--features", "features.csv"])


@pytest.mark.slow
def test_tiny_parity_run(spark, tmp_path):
    from fmagenre.audio.feature_sets import family_columns
    from fmagenre.bench.parity import PAIRS, max_gap, report, run_parity
    from fmagenre.synthetic.feature_tables import write_synthetic_tables

    features, labels = write_synthetic_tables(
        tmp_path,
        rows=400,
        genre_shares={"Rock": 0.4, "Electronic": 0.3, "Hip-Hop": 0.2, "Folk": 0.1},
        columns=family_columns(["zcr", "rmse"]),
        separation=0.4,
        test_fraction=0.25,
        nan_fraction=0.002,
    )
    params = {
        "lr": {"regParam": 0.05, "elasticNetParam": 0.0, "maxIter": 100, "tol": 1e-8},
        "svc": {"regParam": 0.05, "maxIter": 20, "tol": 1e-6},
        # No sampling: only the workers' quantile sketches differ.
        "xgb": {"max_depth": 2, "n_estimators": 5},
    }
    results, shape = run_parity(spark, features, labels, params=params)

    assert shape["features"] == 14 and shape["genres"] == 4
    assert shape["train"] + shape["test"] == 400 and abs(shape["test"] - 100) <= 2
    assert [result.name for result in results] == list(PAIRS)
    for result in results:
        for side in (result.spark, result.sklearn):
            assert 0.4 < side.accuracy <= 1 and side.fit_seconds > 0
    lr, svc, xgb = results
    # The same convex problem: the same predictions.
    assert lr.agreement >= 0.98 and abs(lr.gap) <= 2
    assert "Spark's objective" in lr.convergence and "Spark's objective" in svc.convergence
    assert xgb.reseeded is not None and xgb.convergence == ""
    assert max_gap(results) < 10
    lines = report(results)
    assert re.fullmatch(r"parity: max gap \d+\.\d\d points", lines[-1])
    assert float(lines[-1].split()[3]) == pytest.approx(max_gap(results), abs=0.005)
