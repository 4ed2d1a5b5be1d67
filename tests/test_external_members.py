"""External members of the voting ensemble (fmagenre.ml.external): votes, abstentions,
persistence, the vote choice on arrays, and a training run with a synthetic member.

The ensemble tests use sub-models that copy their votes and margins from input columns (as
tests/test_ensemble.py does) and an external member ``net`` whose margins are an input
array, null on the rows it cannot score. The training test's member ``network`` reads its
margins from a table built from the labels with noise (reversed genre order: the run must
reorder them), and scores two thirds of the tracks.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from pyspark.ml.feature import SQLTransformer
from pyspark.ml.linalg import Vectors
from pyspark.sql import functions as F

from fmagenre.ml import voting
from fmagenre.ml.ensemble import VotingEnsembleModel
from fmagenre.ml.external import ExternalMember, ExternalMemberError
from fmagenre.ml.prediction import PredictionError, predictions

LABELS = ["Blues", "Jazz", "Rock", "Pop"]
NAMES = ["a", "b", "c"]
ORDER = ["b", "c", "a"]
N_ROWS = 24


def _ensemble() -> VotingEnsembleModel:
    """Models a, b, c vote ``v_<name>`` and write the margins ``m_<name>`` to ``raw_<name>``;
    the external member ``net`` reads ``margins_net``."""
    packing = SQLTransformer(statement="SELECT *, array(v_a, v_b, v_c) AS features FROM __THIS__")
    models = [
        SQLTransformer(
            statement=f"SELECT *, CAST(features[{i}] AS DOUBLE) AS prediction_{name},"
            f" _input.m_{name} AS raw_{name} FROM __THIS__"
        )
        for i, name in enumerate(NAMES)
    ]
    return VotingEnsembleModel(
        preprocessing=packing,
        models=models,
        modelNames=NAMES,
        labels=LABELS,
        featureCols=[f"v_{n}" for n in NAMES] + [f"m_{n}" for n in NAMES],
        tieBreakOrder=ORDER,
        externalModels=["net"],
    )


def _arrays() -> tuple[dict, dict]:
    """Random margins of a, b, c and net (NaN rows: net abstains), and their votes (-1)."""
    rng = np.random.default_rng(7)
    margins = {name: rng.normal(scale=2.0, size=(N_ROWS, 4)) for name in [*NAMES, "net"]}
    margins["net"][::3] = np.nan
    # Hand-made rows: all disagree (b breaks the tie) unless net sides with c; a 2-2 tie.
    margins["a"][0], margins["b"][0], margins["c"][0] = np.eye(4)[0], np.eye(4)[1], np.eye(4)[2]
    margins["net"][0] = np.nan  # row 0: b's vote
    margins["a"][1], margins["b"][1], margins["c"][1] = np.eye(4)[0], np.eye(4)[1], np.eye(4)[2]
    margins["net"][1] = np.log([0.1, 0.1, 0.7, 0.1])  # row 1: c and net
    margins["a"][2], margins["b"][2], margins["c"][2] = np.eye(4)[0], np.eye(4)[0], np.eye(4)[1]
    margins["net"][2] = np.log([0.1, 0.7, 0.1, 0.1])  # row 2: a, b against c, net: b's
    # The member's margins travel as floats.
    margins["net"] = margins["net"].astype(np.float32).astype(float)
    votes = {
        name: np.where(voting.scored(m), np.argmax(np.nan_to_num(m), axis=1), -1)
        for name, m in margins.items()
    }
    return margins, votes


@pytest.fixture(scope="module")
def rows(spark):
    margins, votes = _arrays()
    data = []
    for i in range(N_ROWS):
        net = margins["net"][i]
        data.append(
            (
                i,
                *(int(votes[n][i]) for n in NAMES),
                *(Vectors.dense(margins[n][i]) for n in NAMES),
                None if np.isnan(net).any() else [float(x) for x in net],
            )
        )
    frame = spark.createDataFrame(
        data, ["id", "v_a", "v_b", "v_c", "m_a", "m_b", "m_c", "margins_net"]
    )
    return frame.withColumn("margins_net", F.col("margins_net").cast("array<float>"))


def _expected(model: VotingEnsembleModel) -> list[int]:
    """What :func:`fmagenre.ml.voting.predict` votes with the model's settings."""
    margins, votes = _arrays()
    settings = voting.VoteSettings(
        model.getVoting(),
        tuple(model.getModelWeights()),
        tuple(model.getTemperatures()),
        tuple(model.getClassBias()),
    )
    names = model.voters()
    return voting.predict(
        settings, names, votes, margins, 4, priority=model.vote_priority()
    ).tolist()


def _winners(frame) -> list[int]:
    return [int(row.prediction) for row in frame.orderBy("id").collect()]


RAW = ["raw_a", "raw_b", "raw_c"]


def test_hard_and_kappa_votes_count_the_member_where_it_scores(rows):
    model = _ensemble()
    assert model.voters() == ["a", "b", "c", "net"]
    assert model.vote_priority() == ["b", "c", "a", "net"]
    result = model.transform(rows).orderBy("id")
    winners = _winners(result)
    assert winners[:3] == [1, 2, 0]  # b breaks the tie; c and net; b's side of a 2-2 tie
    assert winners == _expected(model)
    votes = [row.prediction_net for row in result.collect()]
    assert votes[0] is None and votes[1] == 2.0 and votes[2] == 1.0
    model.setVote("kappa", modelWeights=[1.0, 1.0, 1.0, 2.5])
    winners = _winners(model.transform(rows))
    assert winners[:3] == [1, 2, 1]  # net outweighs a and b
    assert winners == _expected(model)


@pytest.mark.parametrize(
    "weights", [[0.4, 0.1, 0.2, 0.3], [0.0, 0.0, 0.0, 1.0]], ids=["weighted", "net-only"]
)
def test_soft_vote_pools_the_members_present(rows, weights):
    # With the models' weights all 0, the rows net abstains on pool the models equally.
    model = _ensemble().setVote(
        "soft",
        modelWeights=weights,
        rawPredictionCols=RAW,
        temperatures=[1.0, 2.0, 0.5, 1.5],
        classBias=[0.0, 0.3, 0.0, 0.0],
    )
    winners = _winners(model.transform(rows))
    assert winners == _expected(model)
    margins, _ = _arrays()
    if weights[0] == 0:
        absent = np.isnan(margins["net"]).any(axis=1)
        present = np.argmax(margins["net"] / 1.5 + [0.0, 0.3, 0.0, 0.0], axis=1)
        assert np.array_equal(np.array(winners)[~absent], present[~absent])


def test_member_votes_and_scores_in_the_predictions(rows):
    model = _ensemble().setVote("soft", modelWeights=[0.4, 0.1, 0.2, 0.3], rawPredictionCols=RAW)
    model.setSubProbabilityCol("probability")
    result = predictions(model, rows.withColumnRenamed("id", "track_id")).orderBy("track_id")
    margins, votes = _arrays()
    for i, row in enumerate(result.collect()):
        if votes["net"][i] < 0:
            assert row.vote_net is None and row.scores_net is None
            continue
        assert row.vote_net == LABELS[votes["net"][i]]
        expected = np.exp(margins["net"][i]) / np.exp(margins["net"][i]).sum()
        assert [row.scores_net[g] for g in LABELS] == pytest.approx(expected.tolist())
        assert row.scores_a is None  # the copying sub-models write no probabilities
    assert {"vote_a", "vote_b", "vote_c", "vote_net"} <= set(result.columns)


def test_missing_margins_are_named(rows):
    model = _ensemble()
    without = rows.drop("margins_net")
    assert model.missing_margins(without.columns) == ["margins_net"]
    with pytest.raises(ValueError, match=r"external member.*margins_net"):
        model.transform(without)
    with pytest.raises(PredictionError, match="margins_net; add them with each member"):
        predictions(model, without)


def test_external_names_are_checked():
    model = _ensemble()
    with pytest.raises(ValueError, match="unique"):
        model.setExternalModels(["a"])
    with pytest.raises(ValueError, match="unique"):
        model.setExternalModels(["Net"])
    assert model.getExternalModels() == ["net"]
    with pytest.raises(ValueError, match="modelWeights must be 4"):
        model.setVote("kappa", modelWeights=[1.0, 1.0, 1.0])
    # The tie-break order may name the member.
    model.set(model.tieBreakOrder, ["net", "b", "c", "a"])
    model.setExternalModels(["net"])
    assert model.vote_priority() == ["net", "b", "c", "a"]


def test_save_and_load_keep_the_members_and_the_votes(rows, tmp_path):
    model = _ensemble().setVote(
        "soft",
        modelWeights=[0.4, 0.1, 0.2, 0.3],
        rawPredictionCols=RAW,
        temperatures=[1.0, 2.0, 0.5, 1.5],
    )
    model.save(str(tmp_path / "model"))
    loaded = VotingEnsembleModel.load(str(tmp_path / "model"))
    assert loaded.getExternalModels() == ["net"]
    assert loaded.getModelWeights() == [0.4, 0.1, 0.2, 0.3]
    columns = ["id", "prediction", "genre", "prediction_net", "prediction_a"]
    before = model.transform(rows).select(columns).orderBy("id").collect()
    assert loaded.transform(rows).select(columns).orderBy("id").collect() == before


def _strip(path, name: str) -> None:
    """Remove Param ``name`` from a saved model's metadata, as versions before it saved it."""
    part = next((path / "metadata").glob("part-*"))
    metadata = json.loads(part.read_text())
    for key in ("paramMap", "defaultParamMap"):
        metadata[key].pop(name, None)
    part.write_text(json.dumps(metadata) + "\n")
    for checksum in (path / "metadata").glob(".*.crc"):
        checksum.unlink()


def test_a_model_saved_without_the_param_predicts_as_before(rows, tmp_path):
    models = [
        SQLTransformer(
            statement=f"SELECT *, CAST(features[{i}] AS DOUBLE) AS prediction_{name},"
            f" _input.m_{name} AS raw_{name} FROM __THIS__"
        )
        for i, name in enumerate(NAMES)
    ]
    packing = SQLTransformer(statement="SELECT *, array(v_a, v_b, v_c) AS features FROM __THIS__")
    model = VotingEnsembleModel(
        preprocessing=packing,
        models=models,
        modelNames=NAMES,
        labels=LABELS,
        featureCols=[f"v_{n}" for n in NAMES] + [f"m_{n}" for n in NAMES],
        tieBreakOrder=ORDER,
    ).setVote("soft", modelWeights=[0.5, 0.2, 0.3], rawPredictionCols=RAW)
    path = tmp_path / "old"
    model.save(str(path))
    _strip(path, "externalModels")
    assert "externalModels" not in next((path / "metadata").glob("part-*")).read_text()
    loaded = VotingEnsembleModel.load(str(path))
    assert loaded.getExternalModels() == [] and loaded.voters() == NAMES
    old_rows = rows.drop("margins_net")
    columns = ["id", "prediction", "genre", "prediction_a", "prediction_b", "prediction_c"]
    before = model.transform(old_rows).select(columns).orderBy("id").collect()
    after = loaded.transform(old_rows).orderBy("id")
    assert after.select(columns).collect() == before
    assert "prediction_net" not in after.columns


# The vote choice on arrays.


def test_hard_vote_and_pool_skip_abstentions():
    votes = [np.array([0, 1, 2]), np.array([1, 1, 2]), np.array([-1, 0, -1])]
    assert voting.hard_vote(votes, 3, priority=[2, 1, 0]).tolist() == [1, 1, 2]
    margins = [np.log([[0.8, 0.2]]), np.array([[np.nan, np.nan]])]
    pooled = voting.soft_scores(margins, [1.0, 1.0], [0.5, 0.5])
    assert np.exp(pooled)[0].tolist() == pytest.approx([0.8, 0.2])
    # The only present member weighs 0: the present members weigh 1 each.
    pooled = voting.soft_scores(margins, [1.0, 1.0], [0.0, 1.0])
    assert np.exp(pooled)[0].tolist() == pytest.approx([0.8, 0.2])


def _oof(rows: int, scored_rows: int) -> voting.OutOfFold:
    """Three noisy models and a member that is right more often, on ``scored_rows`` rows."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, size=rows)
    folds = np.arange(rows) % 2
    margins = {}
    for name, noise in (("lr", 1.5), ("svc", 2.0), ("xgb", 2.5), ("net", 0.7)):
        margins[name] = np.eye(3)[labels] * 2.0 + rng.normal(scale=noise, size=(rows, 3))
    margins["net"][scored_rows:] = np.nan
    votes = {
        n: np.where(voting.scored(m), np.argmax(np.nan_to_num(m), axis=1), -1)
        for n, m in margins.items()
    }
    return voting.OutOfFold(labels=labels, folds=folds, votes=votes, margins=margins)


def test_choose_with_external_fits_on_the_rows_every_voter_scores():
    oof = _oof(200, 120)
    settings, scores, about = voting.choose_with_external(
        oof, ["lr", "svc", "xgb"], ["net"], 3, priority=["lr", "svc", "xgb", "net"]
    )
    assert about["rows"] == 120 and about["folds"] == 2 and about["fallback"] is None
    assert set(settings) == {"hard", "kappa", "soft", "soft_bias", "soft_f1"}
    assert len(settings["soft"].weights) == 4 and len(settings["kappa"].weights) == 4
    assert about["member_cv_kappa"]["net"] == max(about["member_cv_kappa"].values())
    assert settings["soft"].weights[3] == max(settings["soft"].weights)
    assert all(np.isfinite(score) for score in scores.values())


def test_choose_with_external_falls_back_to_equal_weights_on_few_rows():
    oof = _oof(200, 10)
    settings, scores, about = voting.choose_with_external(
        oof, ["lr", "svc", "xgb"], ["net"], 3, priority=["lr", "svc", "xgb", "net"]
    )
    assert about["rows"] == 10 and "fewer than 30 rows" in about["fallback"]
    assert settings["kappa"].weights == settings["soft"].weights == (1.0,) * 4
    assert len(settings["soft"].temperatures) == 4 and not settings["soft_f1"].bias
    assert all(np.isnan(score) for score in scores.values())


# A training run with a synthetic member.


class _SyntheticMember:
    """Margins from the labels with noise, for two thirds of the tracks; held out: every
    second training track; ``save`` writes a file."""

    def __init__(self, spark, labels_path, genres):
        table = pq.read_table(labels_path).to_pandas()
        self.labels = tuple(reversed(sorted(genres)))
        rng = np.random.default_rng(5)
        rows = []
        for track, genre in zip(table["track_id"], table["genre_top"], strict=True):
            if track % 3 == 0:
                continue  # a track it cannot score: no row, null margins
            probabilities = np.full(len(self.labels), 0.1)
            right = rng.random() < 0.9
            guess = genre if right else self.labels[rng.integers(len(self.labels))]
            probabilities[self.labels.index(guess)] = 0.6
            rows.append((int(track), np.log(probabilities / probabilities.sum()).tolist()))
        self.margins = spark.createDataFrame(rows, "track_id long, margins_network array<float>")
        train = table[table["split"] == "train"]["track_id"]
        self.held_out = frozenset(int(t) for t in train if t % 2 == 0)
        self.saved = []

    def add_margins(self, rows):
        return rows.join(F.broadcast(self.margins), "track_id", "left")

    def save(self, directory):
        from pathlib import Path

        Path(directory).mkdir(parents=True)
        (Path(directory) / "member.txt").write_text("synthetic\n")
        self.saved.append(directory)

    def member(self, **changes) -> ExternalMember:
        fields = dict(
            name="network",
            labels=self.labels,
            add_margins=self.add_margins,
            held_out=self.held_out,
            save=self.save,
            source="synthetic",
        )
        return ExternalMember(**{**fields, **changes})


def _options(spark, tables, **settings):
    from fmagenre.ml.training import read_options

    return read_options(
        spark,
        columns_file=tables.columns_file,
        search_space=tables.space,
        candidates=1,
        folds=2,
        seed=3,
        **settings,
    )


def test_labels_that_differ_raise_one_line(spark, training_tables, tmp_path):
    from fmagenre.ml.training import run

    synthetic = _SyntheticMember(spark, training_tables.labels, training_tables.genres)
    labels = ("Blues", *synthetic.labels[1:])
    with pytest.raises(ExternalMemberError) as raised:
        run(
            spark,
            features=training_tables.features,
            labels=training_tables.labels,
            output=str(tmp_path / "out"),
            options=_options(spark, training_tables),
            external=[synthetic.member(labels=labels)],
        )
    message = str(raised.value)
    assert "\n" not in message
    assert f"only in network: Blues; only in the training labels: {synthetic.labels[0]}" in message
    assert message.endswith("train both on the same label table")
    with pytest.raises(ExternalMemberError, match="names must be unique"):
        run(
            spark,
            features=training_tables.features,
            labels=training_tables.labels,
            output=str(tmp_path / "out2"),
            external=[synthetic.member(name="xgb")],
        )


@pytest.mark.slow
def test_training_with_a_member(spark, training_tables, tmp_path):
    from fmagenre.ml.report import console_summary
    from fmagenre.ml.training import run

    synthetic = _SyntheticMember(spark, training_tables.labels, training_tables.genres)
    output = tmp_path / "out"
    metrics = run(
        spark,
        features=training_tables.features,
        labels=training_tables.labels,
        output=str(output),
        options=_options(spark, training_tables),
        external=[synthetic.member()],
    )
    keys = ["lr", "svc", "xgb", "network", "ensemble", "ensemble_without_network"]
    assert list(metrics["test"]) == keys
    test_total = metrics["rows"]["test_total"]
    member = metrics["external"]["network"]
    abstained = member["test_abstained"]
    assert 0 < abstained < test_total
    assert metrics["test"]["network"]["rows"] + abstained == test_total
    assert metrics["test"]["network"]["abstained"] == abstained
    assert metrics["test"]["ensemble"]["rows"] == test_total
    # The vote is tuned on the held-out training tracks the member scores.
    assert 0 < member["vote_rows"] < len(synthetic.held_out)
    vote = metrics["vote"]
    assert vote["rows"] == member["vote_rows"] and vote["fallback"] is None
    assert list(vote["weights"]) == ["lr", "svc", "xgb", "network"]
    assert list(vote["without"]["weights"]) == ["lr", "svc", "xgb"]
    assert vote["test_rows_unlike_numpy"] == 0
    # The member's margins were reordered to the training genres': it is mostly right.
    assert metrics["test"]["network"]["accuracy"] > 0.7
    assert synthetic.saved == [str(output / "members" / "network")]
    assert (output / "members" / "network" / "member.txt").is_file()
    model = VotingEnsembleModel.load(str(output / "model"))
    assert model.getExternalModels() == ["network"]
    report = (output / "report.md").read_text()
    assert "## External members" in report and "Genres at 0% recall (test):" in report
    for key in keys:
        assert f"| {key} |" in report
        assert (output / f"confusion_{key}.csv").is_file()
    printed = console_summary(metrics)
    assert "network: vote fitted on" in printed and "ensemble_without_network" in printed
    saved = json.loads((output / "metrics.json").read_text())
    assert list(saved["test"]) == keys
