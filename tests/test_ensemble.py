"""VotingEnsembleModel: majority vote, tie-break, persistence, with real Spark transformers.

A preprocessing that packs the vote columns ``v_<name>`` into an array and sub-models that
copy one element into ``prediction_<name>`` (SQLTransformers) make every vote pattern easy
to write down; the three real pipelines check the persistence of the imputer and assembler,
LogisticRegression, OneVsRest(LinearSVC) and SparkXGBClassifier models inside the ensemble.
"""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.classification import OneVsRestModel
from pyspark.ml.feature import SQLTransformer, StandardScalerModel
from pyspark.sql import functions as F

from fmagenre.audio.feature_selection import columns_of_families
from fmagenre.ml.classifiers import (
    MODEL_NAMES,
    VECTOR_COL,
    ClassifierSettings,
    preprocessing,
    training_pipeline,
)
from fmagenre.ml.ensemble import VotingEnsembleModel
from fmagenre.synthetic.feature_tables import write_synthetic_tables

LABELS = ["Blues", "Jazz", "Rock", "Pop"]


def _packing(names) -> SQLTransformer:
    """A preprocessing that puts the votes ``v_<name>`` in the array column ``features``."""
    votes = ", ".join(f"v_{name}" for name in names)
    return SQLTransformer(statement=f"SELECT *, array({votes}) AS features FROM __THIS__")


def _copy(name: str, index: int) -> SQLTransformer:
    """A sub-model whose vote is element ``index`` of ``features``."""
    return SQLTransformer(
        statement=f"SELECT *, CAST(features[{index}] AS DOUBLE) AS prediction_{name} FROM __THIS__"
    )


def _ensemble(names, order=None, **kwargs) -> VotingEnsembleModel:
    return VotingEnsembleModel(
        preprocessing=_packing(names),
        models=[_copy(name, i) for i, name in enumerate(names)],
        modelNames=names,
        labels=LABELS,
        featureCols=[f"v_{name}" for name in names],
        tieBreakOrder=order,
        **kwargs,
    )


# (id, vote a, vote b, vote c, expected class with tie-break order b, c, a)
VOTES = [
    (1, 0, 0, 0, 0),  # unanimous
    (2, 0, 0, 1, 0),  # majority with the tie-breaker
    (3, 2, 1, 1, 1),  # majority of b and c
    (4, 3, 2, 3, 3),  # majority against the tie-breaker
    (5, 0, 1, 2, 1),  # all disagree: b's vote
    (6, 3, None, 2, 2),  # b abstains, a and c disagree: c's vote
    (7, 1, None, 1, 1),  # b abstains, a and c agree
    (8, None, None, None, None),  # no vote: no prediction
]


@pytest.fixture(scope="module")
def votes(spark):
    rows = [row[:4] for row in VOTES]
    return spark.createDataFrame(rows, "id long, v_a int, v_b int, v_c int")


def _predicted(frame) -> dict:
    return {row.id: (row.prediction, row.genre) for row in frame.collect()}


def test_majority_vote_and_tie_break(votes):
    ensemble = _ensemble(["a", "b", "c"], order=["b", "c", "a"])
    result = ensemble.transform(votes)
    votes_columns = ["prediction_a", "prediction_b", "prediction_c"]
    assert result.columns == [*votes.columns, *votes_columns, "prediction", "genre"]
    expected = {
        row[0]: (None, None) if row[4] is None else (float(row[4]), LABELS[row[4]]) for row in VOTES
    }
    assert _predicted(result) == expected
    # Another order changes only the rows where the tie-breaker decides.
    by_a = _predicted(_ensemble(["a", "b", "c"], order=["a", "c", "b"]).transform(votes))
    assert by_a[5] == (0.0, "Blues") and by_a[6] == (3.0, "Pop")
    assert {k: v for k, v in by_a.items() if k not in (5, 6)} == {
        k: v for k, v in expected.items() if k not in (5, 6)
    }
    # Without an order, modelNames' order breaks ties.
    assert _predicted(_ensemble(["a", "b", "c"]).transform(votes))[5] == (0.0, "Blues")


def test_two_models_and_one(votes):
    pair = _predicted(_ensemble(["a", "c"], order=["c", "a"]).transform(votes))
    assert pair[1] == (0.0, "Blues") and pair[2] == (1.0, "Jazz") and pair[3] == (1.0, "Jazz")
    single = _predicted(_ensemble(["b"]).transform(votes))
    assert single[5] == (1.0, "Jazz") and single[6] == (None, None)


def test_output_names_and_unknown_index(spark):
    frame = spark.createDataFrame([(1, 9), (2, 2)], "id long, v_a int")
    ensemble = _ensemble(["a"], predictionCol="winner", labelNameCol="name")
    rows = {row.id: (row.winner, row.name) for row in ensemble.transform(frame).collect()}
    assert rows == {1: (9.0, None), 2: (2.0, "Rock")}  # no label for class 9


def test_save_and_load(votes, tmp_path):
    ensemble = _ensemble(["a", "b", "c"], order=["c", "a", "b"], labelNameCol="style")
    path = str(tmp_path / "ensemble")
    ensemble.save(path)
    assert {p.name for p in (tmp_path / "ensemble").iterdir()} == {
        "metadata",
        "preprocessing",
        "models",
    }
    assert {p.name for p in (tmp_path / "ensemble" / "models").iterdir()} == {"a", "b", "c"}
    loaded = VotingEnsembleModel.load(path)
    assert loaded.uid == ensemble.uid
    assert loaded.getTieBreakOrder() == ["c", "a", "b"]
    assert loaded.getLabels() == LABELS and loaded.getLabelNameCol() == "style"
    assert all(isinstance(model, SQLTransformer) for model in loaded.models)
    columns = ["id", "prediction", "style"]
    assert (
        loaded.transform(votes).select(*columns).collect()
        == ensemble.transform(votes).select(*columns).collect()
    )
    with pytest.raises(Exception, match="already exists"):
        ensemble.save(path)
    ensemble.write().overwrite().save(path)
    _copy("a", 0).save(str(tmp_path / "other"))
    with pytest.raises(
        ValueError, match=r"holds a org\.apache\.spark\.ml\.feature\.SQLTransformer, not a"
    ):
        VotingEnsembleModel.load(str(tmp_path / "other"))


def test_copy_copies_the_sub_models(votes):
    ensemble = _ensemble(["a", "b"])
    copy = ensemble.copy({ensemble.predictionCol: "vote"})
    assert copy.getPredictionCol() == "vote" and ensemble.getPredictionCol() == "prediction"
    assert copy.models[0] is not ensemble.models[0]
    assert copy.preprocessing is not ensemble.preprocessing
    assert "vote" in copy.transform(votes).columns


def test_invalid_ensembles_are_refused(votes):
    with pytest.raises(ValueError, match="2 models for 3 names"):
        VotingEnsembleModel(
            preprocessing=_packing(["a", "b"]),
            models=[_copy("a", 0), _copy("b", 1)],
            modelNames=["a", "b", "c"],
            labels=LABELS,
            featureCols=[],
        )
    with pytest.raises(ValueError, match="model names must be unique"):
        _ensemble(["a", "a"])
    with pytest.raises(ValueError, match="must list each of"):
        _ensemble(["a", "b"], order=["a"])
    with pytest.raises(ValueError, match="labels must be unique"):
        VotingEnsembleModel(
            preprocessing=_packing(["a"]),
            models=[_copy("a", 0)],
            modelNames=["a"],
            labels=["x", "x"],
            featureCols=[],
        )
    with pytest.raises(ValueError, match="lacks 1 feature column"):
        _ensemble(["a", "b"]).transform(votes.drop("v_b"))
    with pytest.raises(ValueError, match="already has output column"):
        _ensemble(["a"]).transform(votes.withColumn("genre", F.lit("x")))


def test_real_models_predict_the_same_after_reloading(spark, tmp_path):
    columns = columns_of_families(["zcr", "rmse", "spectral_centroid"])
    features, labels = write_synthetic_tables(
        tmp_path / "tables",
        rows=240,
        genre_shares=dict.fromkeys(LABELS, 1.0),
        columns=columns,
        separation=0.8,
        nan_fraction=0.01,
        seed=3,
    )
    table = spark.read.parquet(features).join(spark.read.parquet(labels), "track_id")
    index = F.create_map(*[x for i, g in enumerate(LABELS) for x in (F.lit(g), F.lit(float(i)))])
    table = table.withColumn("label", index[F.col("genre_top")]).cache()
    imputer, assembler = preprocessing(columns)
    imputer_model = imputer.fit(table)
    vectors = assembler.transform(imputer_model.transform(table)).select("label", VECTOR_COL)
    settings = ClassifierSettings(parallelism=2, xgb_workers=2, seed=1)
    params = {
        "lr": {"regParam": 0.01, "elasticNetParam": 0.1, "maxIter": 10},
        "svc": {"regParam": 0.01, "maxIter": 5},
        "xgb": {"max_depth": 3, "n_estimators": 8, "learning_rate": 0.3},
    }
    ensemble = VotingEnsembleModel(
        preprocessing=PipelineModel(stages=[imputer_model, assembler]),
        models=[training_pipeline(n, params[n], settings).fit(vectors) for n in MODEL_NAMES],
        modelNames=MODEL_NAMES,
        labels=LABELS,
        featureCols=columns,
        featuresCol=VECTOR_COL,
        tieBreakOrder=["svc", "xgb", "lr"],
    )
    path = str(tmp_path / "model")
    ensemble.save(path)
    loaded = VotingEnsembleModel.load(path)
    assert isinstance(loaded.preprocessing, PipelineModel)
    assert all(isinstance(model, PipelineModel) for model in loaded.models)
    assert isinstance(loaded.models[1].stages[0], StandardScalerModel)
    assert isinstance(loaded.models[1].stages[1], OneVsRestModel)
    outputs = ["track_id", *(f"prediction_{n}" for n in MODEL_NAMES), "prediction", "genre"]
    raw = table.select("track_id", *columns)
    before = ensemble.transform(raw).select(*outputs).orderBy("track_id").collect()
    after = loaded.transform(raw).select(*outputs).orderBy("track_id").collect()
    assert before == after
    assert set(raw.columns) < set(loaded.transform(raw).columns)
    # Separable data (genre means about 7 noise deviations apart): every model learns it,
    # even these few iterations and trees; chance is 25%.
    truth = {row.track_id: row.genre_top for row in table.select("track_id", "genre_top").collect()}
    accuracy = np.mean([truth[row.track_id] == row.genre for row in after])
    assert accuracy > 0.8
