"""Models saved by earlier versions load and predict as they did (tests/data/model_0.1)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fmagenre.ml.ensemble import VotingEnsembleModel
from fmagenre.ml.prediction import load_model, predictions

SAVED = Path(__file__).resolve().parent / "data" / "model_0.1"
COMPARED = ["genre", "prediction", "vote_lr", "vote_svc", "vote_xgb"]


def test_model_of_version_0_1_predicts_as_it_did(spark):
    metadata = next((SAVED / "model" / "metadata").glob("part-*")).read_text()
    assert '"class":"fmagenre.ensemble.VotingEnsembleModel"' in metadata  # the old class path
    model = load_model(spark, str(SAVED))
    assert isinstance(model, VotingEnsembleModel)
    assert model.getLabels() == ["Folk", "Jazz", "Rock"]
    rows = spark.read.parquet(str(SAVED / "features.parquet"))
    got = predictions(model, rows).toPandas().set_index("track_id").sort_index()
    then = pd.read_csv(SAVED / "predictions.csv").set_index("track_id").sort_index()
    assert len(got) == len(then) == 40
    # svc and xgb outvoted on some rows: each vote column is its own model's.
    assert (then["vote_svc"] != then["genre"]).any() and (then["vote_xgb"] != then["genre"]).any()
    pd.testing.assert_frame_equal(got[COMPARED], then[COMPARED], check_dtype=False)
