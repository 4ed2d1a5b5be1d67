"""jobs/train.py end to end on a small synthetic table: search, ensemble, report, bad inputs.

The job's run on the synthetic table is the session's ``trained_model`` (tests/conftest.py).
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from job_loader import load_job

from fmagenre.ml.ensemble import VotingEnsembleModel
from fmagenre.ml.kappa import confusion_matrix

MODELS = ["lr", "svc", "xgb", "ensemble"]


@pytest.fixture(scope="module")
def job():
    return load_job("train")


def test_job_writes_model_metrics_and_report(trained_model, training_tables):
    metrics, output = trained_model.metrics, trained_model.output
    genres = training_tables.genres
    assert metrics["labels"] == sorted(genres)
    assert metrics["features"]["columns"] == training_tables.columns
    assert metrics["features"]["families"] == {"rmse": 6, "spectral_contrast": 42, "zcr": 6}
    rows = metrics["rows"]
    assert rows["train_total"] + rows["test_total"] == 300
    assert rows["search"] == rows["train_total"]  # under --search-rows: every training track
    assert metrics["options"]["class_weights"] == "balanced"
    for name in ("lr", "svc", "xgb"):
        search = metrics["search"][name]
        assert len(search["candidates"]) == 2
        assert all(len(c["fold_scores"]) == 2 for c in search["candidates"])
        assert search["space"]["maxIter" if name != "xgb" else "n_estimators"] in (
            [10, 30],
            [5, 15],
            [5, 20],
        )
    best = {
        name: search["candidates"][search["best"]]["score"]
        for name, search in metrics["search"].items()
    }
    assert best[metrics["tie_break_order"][0]] == max(best.values())
    assert set(metrics["test"]) == set(MODELS)
    for model in MODELS:
        test = metrics["test"][model]
        assert np.sum(test["confusion"]) == rows["test_total"]
        assert set(test["per_class"]) == set(genres)
    stages = list(metrics["timings"])
    assert stages[0] == "prepare data" and stages[-1] == "total"
    assert {"search lr", "fit preprocessing", "fit svc", "save model", "evaluate"} <= set(stages)

    assert (output / "model" / "metadata").is_dir()
    report = (output / "report.md").read_text()
    for heading in ("## Test scores", "## Recall per genre (test)", "## Random search"):
        assert heading in report
    assert "| Jazz |" in report and "confusion_ensemble.png" in report
    for model in MODELS:
        csv = (output / f"confusion_{model}.csv").read_text().splitlines()
        assert csv[0] == "true \\ predicted," + ",".join(sorted(genres))
        assert len(csv) == 1 + len(genres)
        assert (output / f"confusion_{model}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = trained_model.printed
    assert "train: " in printed and "ensemble" in printed and str(output) in printed


def test_test_accuracy_is_well_above_chance(trained_model):
    # The genres' mean shifts put two genres about 0.6 * sqrt(2 * 63) = 6.7 noise deviations
    # apart: a linear classifier that knew the means would err on well under 1% of tracks.
    # From 240 training tracks the linear models get 95-100% of the 60 test tracks; the
    # tiny XGBoost (at most 20 trees on one-feature splits of weak features) gets less but
    # is outvoted. The bars leave room for that; chance (always Rock) is 30%.
    test = trained_model.metrics["test"]
    for model in ("lr", "svc", "ensemble"):
        assert test[model]["accuracy"] >= 0.9, model
        assert test[model]["kappa"] >= 0.85, model
    assert test["xgb"]["accuracy"] >= 0.5


def test_saved_model_reproduces_the_test_scores(spark, trained_model, training_tables):
    model = VotingEnsembleModel.load(str(trained_model.output / "model"))
    assert model.getFeatureCols() == training_tables.columns
    assert model.getTieBreakOrder() == trained_model.metrics["tie_break_order"]
    index = {genre: float(i) for i, genre in enumerate(model.getLabels())}
    labels = pq.read_table(training_tables.labels).to_pandas()
    test = labels[labels["split"] == "test"]
    rows = spark.read.parquet(training_tables.features).join(
        spark.createDataFrame(test.assign(label=test["genre_top"].map(index))), "track_id"
    )
    predicted = model.transform(rows)
    for name in ("lr", "svc", "xgb"):
        confusion = confusion_matrix(predicted, prediction_col=f"prediction_{name}", num_classes=5)
        assert confusion.tolist() == trained_model.metrics["test"][name]["confusion"]
    confusion = confusion_matrix(predicted, num_classes=5)
    assert confusion.tolist() == trained_model.metrics["test"]["ensemble"]["confusion"]


def _fail(job, spark, capsys, argv) -> str:
    """Run the job expecting exit status 2; return its one error line."""
    assert job.main(argv, spark=spark) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train:")]
    assert len(lines) == 1
    return lines[0]


@pytest.fixture()
def base(training_tables, tmp_path):
    return ["--features", training_tables.features, "--labels", training_tables.labels]


def test_unknown_family_or_column(spark, job, capsys, base, tmp_path):
    out = ["--output", str(tmp_path / "out")]
    line = _fail(job, spark, capsys, [*base, *out, "--families", "mfcc,chroma"])
    assert "unknown feature family 'chroma'; valid families: chroma_stft, chroma_cqt" in line
    bad = tmp_path / "columns.txt"
    bad.write_text("zcr_mean_01 zcr_mean_02\n")
    line = _fail(job, spark, capsys, [*base, *out, "--columns-file", str(bad)])
    assert "1 unknown feature column(s): 'zcr_mean_02'; valid columns are" in line
    space = tmp_path / "space.toml"
    space.write_text("[xgb]\ndepth = 3\n")
    line = _fail(job, spark, capsys, [*base, *out, "--search-space", str(space)])
    assert "[xgb] has no parameter 'depth'" in line
    assert not (tmp_path / "out").exists()


def test_features_missing_columns(spark, job, capsys, base, tmp_path):
    line = _fail(job, spark, capsys, [*base, "--output", str(tmp_path / "o"), "--families", "mfcc"])
    assert line.startswith("train: features: 140 column(s) missing: mfcc_kurtosis_01")


def test_labels_without_overlap(spark, job, capsys, training_tables, tmp_path):
    labels = pq.read_table(training_tables.labels).to_pandas()
    labels["track_id"] += 1_000_000
    (tmp_path / "labels").mkdir()
    labels.to_parquet(tmp_path / "labels" / "part-0.parquet")
    argv = ["--features", training_tables.features, "--labels", str(tmp_path / "labels")]
    line = _fail(job, spark, capsys, [*argv, "--output", str(tmp_path / "o"), "--families", "zcr"])
    assert line == (
        "train: no labelled track: the 300 ok feature rows and the 300 labels have no"
        " track_id in common"
    )


def test_missing_paths_existing_output_and_a_single_row_genre(
    spark, job, capsys, base, training_tables, trained_model, tmp_path
):
    zcr = ["--families", "zcr"]
    argv = ["--features", str(tmp_path / "nowhere"), "--labels", training_tables.labels]
    line = _fail(job, spark, capsys, [*argv, "--output", str(tmp_path / "o"), *zcr])
    assert line == f"train: --features {tmp_path / 'nowhere'} does not exist"
    argv = ["--features", training_tables.features, "--labels", str(tmp_path / "nowhere")]
    line = _fail(job, spark, capsys, [*argv, "--output", str(tmp_path / "o"), *zcr])
    assert line == f"train: --labels {tmp_path / 'nowhere'} does not exist"
    line = _fail(job, spark, capsys, [*base, "--output", str(trained_model.output), *zcr])
    assert line == f"train: {trained_model.output} already exists: pass --overwrite to replace it"
    labels = pq.read_table(training_tables.labels).to_pandas()
    jazz = labels.index[(labels["genre_top"] == "Jazz") & (labels["split"] == "train")]
    (tmp_path / "single").mkdir()
    labels.drop(jazz[1:]).to_parquet(tmp_path / "single" / "part-0.parquet")
    argv = ["--features", training_tables.features, "--labels", str(tmp_path / "single")]
    line = _fail(job, spark, capsys, [*argv, "--output", str(tmp_path / "o"), *zcr])
    assert line.startswith("train: genre(s) with a single training row: Jazz; cross-validation")
    bad_options = (
        ["--folds", "1"],
        ["--candidates", "0"],
        ["--class-weights", "auto"],
        ["--search-parallelism", "0"],
        ["--svc", "liblinear"],
    )
    for option in bad_options:
        with pytest.raises(SystemExit) as exit_info:
            job.main([*base, "--output", str(tmp_path / "o"), *option])
        assert exit_info.value.code == 2


def test_vote_is_chosen_on_the_out_of_fold_predictions(trained_model):
    metrics, output = trained_model.metrics, trained_model.output
    vote = metrics["vote"]
    assert metrics["options"]["vote"] == "auto" and metrics["options"]["class_bias"] == "f1"
    schemes = {"hard", "kappa", "soft", "soft_bias", "soft_f1"}
    assert set(vote["cv_kappa"]) == set(vote["test"]) == schemes
    # Schemes compared without biases; a soft vote then gets the F1 biases asked for.
    best = max(("hard", "kappa", "soft"), key=lambda key: vote["cv_kappa"][key])
    best = "soft_f1" if best == "soft" else best
    assert vote["scheme"] == best
    assert vote["test_rows_unlike_numpy"] == 0
    # The ensemble's test scores are its scheme's, computed in NumPy from the same votes.
    assert vote["test"][best]["confusion"] == metrics["test"]["ensemble"]["confusion"]
    cv = {name: s["candidates"][s["best"]]["score"] for name, s in metrics["search"].items()}
    if best == "soft_f1":  # fitted on the out-of-fold log loss: a point of the simplex
        assert min(vote["weights"].values()) >= 0
        assert sum(vote["weights"].values()) == pytest.approx(1)
    else:
        weights = dict.fromkeys(cv, 1.0) if best == "hard" else cv
        assert vote["weights"] == pytest.approx(weights, abs=1e-6)
    model = VotingEnsembleModel.load(str(output / "model"))
    assert model.getVoting() == ("soft" if best.startswith("soft") else best)
    report = (output / "report.md").read_text()
    assert "## Vote" in report and "Recall per genre (test) by scheme" in report
    assert f"vote: {best}; CV kappa hard" in trained_model.printed


def test_lr_and_xgb_margins_are_their_probabilities_at_temperature_1(
    spark, trained_model, training_tables
):
    from fmagenre.ml.classifiers import PROBABILITY_COL
    from fmagenre.ml.voting import softmax

    model = VotingEnsembleModel.load(str(trained_model.output / "model"))
    assert len(model.getRawPredictionCols()) == 3  # saved whatever the scheme
    model.set(model.keepMargins, True)
    model.setSubProbabilityCol(PROBABILITY_COL)
    rows = model.transform(spark.read.parquet(training_tables.features).limit(20)).collect()
    for name in ("lr", "xgb"):
        margins = np.array([row[f"margins_{name}"] for row in rows])
        probabilities = np.array([row[f"probability_{name}"].toArray() for row in rows])
        np.testing.assert_allclose(softmax(margins), probabilities, rtol=1e-5, atol=1e-6)
    margins = np.array([row["margins_svc"] for row in rows])
    votes = np.array([row["prediction_svc"] for row in rows])
    assert (np.argmax(margins, axis=1) == votes).all()
