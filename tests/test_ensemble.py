"""VotingEnsemble and VotingEnsembleModel: vote, tie-break, fit, persistence, real models.

A preprocessing that packs the vote columns ``v_<name>`` into an array and sub-models that
copy one element into ``prediction_<name>`` (SQLTransformers; as sub-estimators, pipelines of
one) make every vote pattern easy to write down. The model jobs/train.py trains once per
session (tests/conftest.py) checks the persistence of the imputer and assembler,
LogisticRegression, OneVsRestLinearSVC and SparkXGBClassifier models inside the ensemble.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from pyspark.ml import Estimator, Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import (
    Imputer,
    ImputerModel,
    SQLTransformer,
    StandardScalerModel,
    StringIndexer,
    VectorAssembler,
)
from pyspark.sql import functions as F
from xgboost.spark import SparkXGBClassifierModel

from fmagenre.ml import voting
from fmagenre.ml.classifiers import MODEL_NAMES
from fmagenre.ml.ensemble import VotingEnsemble, VotingEnsembleModel
from fmagenre.ml.linear_svc import OneVsRestLinearSVCModel

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


def _fitting(name: str, index: int) -> Pipeline:
    """A sub-estimator whose model votes element ``index`` of ``features``."""
    return Pipeline(stages=[_copy(name, index)])


def _voting(names, **kwargs) -> VotingEnsemble:
    return VotingEnsemble(
        preprocessing=_packing(names),
        estimators=[_fitting(name, i) for i, name in enumerate(names)],
        modelNames=names,
        featureCols=[f"v_{name}" for name in names],
        **kwargs,
    )


@pytest.fixture(scope="module")
def named_votes(votes):
    """The votes and a class name per row (``truth``), each of LABELS on some row."""
    names = F.array(*map(F.lit, LABELS))
    return votes.withColumn("truth", F.element_at(names, (F.col("id") % 4 + 1).cast("int")))


@pytest.mark.slow
def test_estimator_in_a_pipeline_takes_the_class_names_of_a_string_indexer(named_votes, tmp_path):
    indexer = StringIndexer(inputCol="truth", outputCol="label", stringOrderType="alphabetAsc")
    ensemble = _voting(["a", "b", "c"], tieBreakOrder=["b", "c", "a"])
    fitted = Pipeline(stages=[indexer, ensemble]).fit(named_votes)
    model = fitted.stages[-1]
    assert isinstance(model, VotingEnsembleModel)
    names = sorted(LABELS)  # the indexer's order
    assert model.getLabels() == names and model.getTieBreakOrder() == ["b", "c", "a"]
    expected = {
        row[0]: (None, None) if row[4] is None else (float(row[4]), names[row[4]]) for row in VOTES
    }
    assert _predicted(fitted.transform(named_votes)) == expected
    path = str(tmp_path / "pipeline")
    fitted.save(path)
    loaded = PipelineModel.load(path)
    assert isinstance(loaded.stages[-1], VotingEnsembleModel)
    assert loaded.stages[-1].uid == model.uid
    assert (
        loaded.transform(named_votes).orderBy("id").collect()
        == fitted.transform(named_votes).orderBy("id").collect()
    )


class _Spy(Estimator):
    """Records the rows it is fitted on; its model votes class 0."""

    def _fit(self, dataset):
        self.rows = dataset
        self.columns = dataset.columns
        self.cached = dataset.storageLevel.useMemory
        return SQLTransformer(statement="SELECT *, 0D AS prediction_spy FROM __THIS__")


def test_estimator_fits_the_preprocessing_and_each_model_on_cached_vectors(spark):
    # Class = id % 2, which x1 shows; x2 has missing values for the imputer.
    rows = [
        (
            i,
            float(i % 2),
            4.0 * (i % 2) + i % 5 / 10,
            float("nan") if i % 7 == 0 else i / 40,
            1.0 + i % 3,
        )
        for i in range(40)
    ]
    frame = spark.createDataFrame(rows, "id long, label double, x1 double, x2 double, w double")
    columns = ["x1", "x2"]
    spy = _Spy()
    model = VotingEnsemble(
        preprocessing=Pipeline(
            stages=[
                Imputer(inputCols=columns, outputCols=columns),
                VectorAssembler(inputCols=columns, outputCol="features"),
            ]
        ),
        estimators=[LogisticRegression(predictionCol="prediction_lr", weightCol="w"), spy],
        modelNames=["lr", "spy"],
        featureCols=columns,
        labels=["even", "odd"],
        weightCol="w",
    ).fit(frame)
    assert spy.columns == ["label", "w", "features"]
    assert spy.cached and not spy.rows.storageLevel.useMemory  # released after the fits
    assert isinstance(model.preprocessing.stages[0], ImputerModel)
    assert list(model.fit_seconds) == ["preprocessing", "lr", "spy"]
    # No label needed to predict; lr learns the classes and wins the ties with spy (first).
    predicted = model.transform(frame.drop("label", "w")).collect()
    assert [(row.prediction_lr, row.prediction, row.genre) for row in predicted] == [
        (float(i % 2), float(i % 2), ["even", "odd"][i % 2]) for i in range(40)
    ]


def test_estimator_refuses_parts_that_do_not_fit(named_votes):
    labelled = named_votes.withColumn("label", F.lit(0.0))
    with pytest.raises(ValueError, match="2 models for 3 names"):
        VotingEnsemble(
            preprocessing=_packing(["a", "b"]),
            estimators=[_fitting("a", 0), _fitting("b", 1)],
            modelNames=["a", "b", "c"],
            featureCols=[],
            labels=LABELS,
        ).fit(labelled)
    with pytest.raises(ValueError, match="must list each of"):
        _voting(["a", "b"], tieBreakOrder=["a"], labels=LABELS).fit(labelled)
    with pytest.raises(ValueError, match="lacks 1 feature column"):
        _voting(["a", "b"], labels=LABELS).fit(labelled.drop("v_b"))
    with pytest.raises(ValueError, match="no class names: set labels, or index label with"):
        _voting(["a"]).fit(labelled)
    with pytest.raises(ValueError, match="labels must be unique"):
        _voting(["a"], labels=["x", "x"]).fit(labelled)


def test_estimator_save_load_and_copy(named_votes, tmp_path):
    labelled = named_votes.withColumn("label", F.lit(0.0))
    ensemble = _voting(["a", "b", "c"], labels=LABELS, tieBreakOrder=["c", "a", "b"])
    ensemble.setParams(labelNameCol="style")
    path = str(tmp_path / "estimator")
    ensemble.save(path)
    assert {p.name for p in (tmp_path / "estimator").iterdir()} == {
        "metadata",
        "preprocessing",
        "estimators",
    }
    loaded = VotingEnsemble.load(path)
    assert loaded.uid == ensemble.uid and loaded.getModelNames() == ["a", "b", "c"]
    assert loaded.getLabels() == LABELS and loaded.getTieBreakOrder() == ["c", "a", "b"]
    assert loaded.getLabelNameCol() == "style"
    assert all(isinstance(estimator, Pipeline) for estimator in loaded.getEstimators())
    columns = ["id", "prediction", "style"]
    assert (
        loaded.fit(labelled).transform(named_votes).select(*columns).orderBy("id").collect()
        == ensemble.fit(labelled).transform(named_votes).select(*columns).orderBy("id").collect()
    )
    Pipeline(stages=[ensemble]).save(str(tmp_path / "pipeline"))
    assert isinstance(Pipeline.load(str(tmp_path / "pipeline")).getStages()[0], VotingEnsemble)
    with pytest.raises(ValueError, match=r"holds a fmagenre\.ml\.ensemble\.VotingEnsemble, not"):
        VotingEnsembleModel.load(path)
    copy = ensemble.copy({ensemble.predictionCol: "vote"})
    assert copy.getPredictionCol() == "vote" and ensemble.getPredictionCol() == "prediction"
    assert copy.getPreprocessing() is not ensemble.getPreprocessing()
    assert copy.getEstimators()[0] is not ensemble.getEstimators()[0]


def test_real_models_predict_the_same_after_reloading(
    spark, trained_model, training_tables, tmp_path
):
    # The ensemble jobs/train.py saved, saved again and reloaded; test_train_job checks that
    # the saved model gives the test scores of the one that was fitted.
    model = VotingEnsembleModel.load(str(trained_model.output / "model"))
    assert isinstance(model.preprocessing, PipelineModel)
    assert all(isinstance(sub_model, PipelineModel) for sub_model in model.models)
    assert isinstance(model.models[1].stages[0], StandardScalerModel)
    assert isinstance(model.models[1].stages[1], OneVsRestLinearSVCModel)
    assert isinstance(model.models[2].stages[1], SparkXGBClassifierModel)
    path = str(tmp_path / "model")
    model.save(path)
    loaded = VotingEnsembleModel.load(path)
    outputs = ["track_id", *(f"prediction_{n}" for n in MODEL_NAMES), "prediction", "genre"]
    raw = spark.read.parquet(training_tables.features)
    before = model.transform(raw).select(*outputs).orderBy("track_id").collect()
    after = loaded.transform(raw).select(*outputs).orderBy("track_id").collect()
    assert before == after
    assert set(raw.columns) < set(loaded.transform(raw).columns)
    # Separable data (see test_train_job), 80% of it seen in training; chance is 30%.
    labels = pq.read_table(training_tables.labels).to_pandas()
    truth = dict(zip(labels["track_id"], labels["genre_top"], strict=True))
    accuracy = np.mean([truth[row.track_id] == row.genre for row in after])
    assert accuracy > 0.8


# Vote schemes. One row where each scheme elects another class, one where all agree: models
# a, b, c vote the class of their largest margin; weights 0.5, 0.2, 0.2; ties to b, c, a.
SCHEME_ROWS = [
    # a: 0 (2 nearly), b: 1 (2 nearly), c: 3 (2 nearly): no majority, b breaks the tie (hard);
    # a outweighs b and c together (kappa); every model's second choice, 2, has the largest
    # mean probability (soft); a bias of +2 on Pop (3) tips it there (soft with bias).
    (1, [2.0, 0.0, 1.9, -5.0], [0.0, 2.0, 1.9, -5.0], [0.0, 0.0, 1.9, 2.0]),
    (2, [3.0, 0.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0]),
]
SCHEME_WINNERS = {
    "hard": {1: 1, 2: 0},
    "kappa": {1: 0, 2: 0},
    "soft": {1: 2, 2: 0},
    "soft_bias": {1: 3, 2: 0},
}
BIAS = [0.0, 0.0, 0.0, 2.0]


@pytest.fixture(scope="module")
def margins(spark):
    from pyspark.ml.linalg import Vectors

    rows = [
        (i, *(int(np.argmax(m)) for m in ms), *(Vectors.dense(m) for m in ms))
        for i, *ms in SCHEME_ROWS
    ]
    return spark.createDataFrame(rows, ["id", "v_a", "v_b", "v_c", "m_a", "m_b", "m_c"])


def _scored(names=("a", "b", "c")) -> VotingEnsembleModel:
    """Sub-models that vote ``v_<name>`` and write the margins ``m_<name>`` to ``raw_<name>``."""
    models = [
        SQLTransformer(
            statement=f"SELECT *, CAST(features[{i}] AS DOUBLE) AS prediction_{name},"
            f" _input.m_{name} AS raw_{name} FROM __THIS__"
        )
        for i, name in enumerate(names)
    ]
    return VotingEnsembleModel(
        preprocessing=_packing(names),
        models=models,
        modelNames=list(names),
        labels=LABELS,
        featureCols=[f"v_{n}" for n in names] + [f"m_{n}" for n in names],
        tieBreakOrder=["b", "c", "a"],
    )


def _set_scheme(model: VotingEnsembleModel, key: str) -> VotingEnsembleModel:
    voting = "soft" if key.startswith("soft") else key
    return model.setVote(
        voting,
        modelWeights=[0.5, 0.2, 0.2] if key != "hard" else [],
        rawPredictionCols=["raw_a", "raw_b", "raw_c"],
        classBias=BIAS if key == "soft_bias" else [],
    )


def _winners(frame) -> dict:
    return {row.id: int(row.prediction) for row in frame.collect()}


def test_each_vote_scheme_elects_its_own_winner(margins):
    for key, expected in SCHEME_WINNERS.items():
        model = _set_scheme(_scored(), key)
        result = model.transform(margins)
        assert _winners(result) == expected, key
        assert {"raw_a", "_raw_0", "margins_a"}.isdisjoint(result.columns)
        # The same votes on arrays (what the training job scores the schemes with).
        settings = voting.VoteSettings(
            model.getVoting(),
            tuple(model.getModelWeights()),
            tuple(model.getTemperatures()),
            tuple(model.getClassBias()),
        )
        votes = {
            n: np.array([int(np.argmax(r[1 + i])) for r in SCHEME_ROWS])
            for i, n in enumerate("abc")
        }
        raws = {n: np.array([r[1 + i] for r in SCHEME_ROWS]) for i, n in enumerate("abc")}
        predicted = voting.predict(settings, "abc", votes, raws, 4, priority="bca")
        assert predicted.tolist() == [expected[1], expected[2]], key


def test_temperatures_and_kept_margins(margins):
    # A low temperature makes a's margins a certainty: its class 0 wins row 1, not 2.
    model = _scored().setVote(
        "soft",
        modelWeights=[0.5, 0.2, 0.2],
        rawPredictionCols=["raw_a", "raw_b", "raw_c"],
        temperatures=[0.01, 1.0, 1.0],
    )
    assert _winners(model.transform(margins)) == {1: 0, 2: 0}
    model.set(model.keepMargins, True)
    row = model.transform(margins).where("id = 1").first()
    assert row.margins_a == [2.0, 0.0, 1.9, -5.0] and row.margins_c == [0.0, 0.0, 1.9, 2.0]


def test_vote_parameters_are_checked(margins):
    model = _scored()
    with pytest.raises(ValueError, match="voting must be hard, kappa, soft"):
        model.setVote("majority")
    with pytest.raises(ValueError, match="modelWeights must be 3 non-negative"):
        model.setVote("kappa", modelWeights=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="needs the margins column of each of the 3"):
        model.setVote("soft")
    with pytest.raises(ValueError, match="classBias must be empty or 4"):
        model.setVote("soft", rawPredictionCols=["raw_a", "raw_b", "raw_c"], classBias=[1.0])


def test_vote_scheme_is_saved_and_loaded(margins, tmp_path):
    model = _set_scheme(_scored(), "soft_bias")
    model.save(str(tmp_path / "soft"))
    loaded = VotingEnsembleModel.load(str(tmp_path / "soft"))
    assert loaded.getVoting() == "soft" and loaded.getClassBias() == BIAS
    assert loaded.getModelWeights() == [0.5, 0.2, 0.2]
    assert loaded.getRawPredictionCols() == ["raw_a", "raw_b", "raw_c"]
    assert _winners(loaded.transform(margins)) == SCHEME_WINNERS["soft_bias"]
    # A model saved without the vote Params votes hard, with one vote per model.
    plain = _scored()
    plain.save(str(tmp_path / "plain"))
    metadata = next((tmp_path / "plain" / "metadata").glob("part-*")).read_text()
    assert '"voting"' not in metadata.split('"defaultParamMap"')[0]
    loaded = VotingEnsembleModel.load(str(tmp_path / "plain"))
    assert loaded.getVoting() == "hard" and loaded.getModelWeights() == [1.0, 1.0, 1.0]
    assert _winners(loaded.transform(margins)) == SCHEME_WINNERS["hard"]


def test_a_model_of_version_0_1_votes_hard():
    from pathlib import Path

    saved = Path(__file__).resolve().parent / "data" / "model_0.1" / "model"
    model = VotingEnsembleModel.load(str(saved))
    assert model.getVoting() == "hard" and model.getModelWeights() == [1.0, 1.0, 1.0]
    assert model.getClassBias() == [] and not model.getOrDefault(model.keepMargins)
