"""random_search's parallel fits, and the search settings of the classifiers."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.linalg import Vectors
from pyspark.ml.util import DefaultParamsReader

from fmagenre.ml.classifiers import (
    LABEL_COL,
    VECTOR_COL,
    ClassifierSettings,
    make_classifier,
    prediction_col,
    training_pipeline,
)
from fmagenre.ml.kappa import KappaEvaluator
from fmagenre.ml.linear_svc import OneVsRestLinearSVC
from fmagenre.ml.search import random_search
from fmagenre.ml.search_space import LogUniform


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("svc", ["lockstep", "spark"])
def test_either_svc_pipeline_saves_and_loads_as_the_ensemble_does(spark, svc, tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, size=120)
    X = labels[:, None] * 1.5 + rng.normal(size=(120, 4))
    rows = [(float(y), Vectors.dense(x)) for y, x in zip(labels, X, strict=True)]
    data = spark.createDataFrame(rows, [LABEL_COL, VECTOR_COL])
    settings = ClassifierSettings(svc=svc)
    fitted = training_pipeline("svc", {"maxIter": 10, "regParam": 0.01}, settings).fit(data)
    fitted.write().save(str(tmp_path / "svc"))
    # VotingEnsembleModel's reader loads each sub-model by the class its metadata names.
    loaded = DefaultParamsReader.loadParamsInstance(str(tmp_path / "svc"), spark.sparkContext)
    column = prediction_col("svc")
    before = fitted.transform(data).select(LABEL_COL, VECTOR_COL, column).collect()
    after = loaded.transform(data).select(LABEL_COL, VECTOR_COL, column).collect()
    assert [tuple(r) for r in after] == [tuple(r) for r in before]
    # A model that learnt something, not a constant: the classes are 1.5 deviations apart.
    assert np.mean([r[LABEL_COL] == r[column] for r in before]) > 0.6
