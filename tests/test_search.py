"""random_search's parallel fits, and the search settings of the classifiers."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.linalg import Vectors

from fmagenre.ml.classifiers import ClassifierSettings, make_classifier
from fmagenre.ml.kappa import KappaEvaluator
from fmagenre.ml.linear_svc import OneVsRestLinearSVC
from fmagenre.ml.search import random_search
from fmagenre.ml.search_space import LogUniform


def test_parallel_fits_give_the_results_of_one_at_a_time(spark):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=300)
    X = labels[:, None] * 0.8 + rng.normal(size=(300, 4))
    rows = [
        (float(y), Vectors.dense(x), i % 3) for i, (y, x) in enumerate(zip(labels, X, strict=True))
    ]
    data = spark.createDataFrame(rows, ["label", "features", "fold"]).cache()
    kwargs = {
        "build": lambda params: LogisticRegression(**params),
        "space": {"regParam": LogUniform(1e-3, 10.0), "maxIter": LogUniform(2, 8, integer=True)},
        "evaluator": KappaEvaluator(),
        "candidates": 2,
        "folds": 3,
        "seed": 1,
    }
    one = random_search(data, parallelism=1, **kwargs)
    three = random_search(data, parallelism=3, **kwargs)
    assert [c.params for c in three.candidates] == [c.params for c in one.candidates]
    assert [c.fold_scores for c in three.candidates] == [c.fold_scores for c in one.candidates]
    # The candidates differ, so a mix-up of their folds would show.
    assert len({tuple(c.fold_scores) for c in one.candidates}) == 2
    for candidate in three.candidates:
        assert len(candidate.fold_seconds) == 3
        assert max(candidate.fold_seconds) <= candidate.seconds
    assert three.as_dict()["candidates"][0]["fold_seconds"]
    with pytest.raises(ValueError, match="parallelism"):
        random_search(data, parallelism=0, **kwargs)


def test_settings_choose_the_svc_and_the_search_xgboost_workers():
    settings = ClassifierSettings(xgb_workers=4)
    assert isinstance(make_classifier("svc", {"maxIter": 5}, settings), OneVsRestLinearSVC)
    spark_svc = make_classifier("svc", {"maxIter": 5}, ClassifierSettings(svc="spark"))
    assert type(spark_svc).__name__ == "OneVsRest"
    assert settings.for_search(2).xgb_workers == 1
    assert settings.for_search(1).xgb_workers == 4
    with pytest.raises(ValueError, match="svc must be"):
        ClassifierSettings(svc="sklearn")
