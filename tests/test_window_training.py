"""Training on windows of tracks (jobs/train.py --windows): whole tracks per fold, window counts."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from job_loader import load_job

from fmagenre.audio.feature_sets import family_columns
from fmagenre.ml.training import FOLD_COL, TrainOptions, _search_sample
from fmagenre.ml.training_data import labelled_data
from fmagenre.synthetic.feature_tables import write_synthetic_tables
from fmagenre.tables.inputs import InputTableError, read_feature_rows, read_labels

COLUMNS = list(family_columns(["zcr", "rmse"]))
WINDOWS = 3


@pytest.fixture(scope="module")
def window_tables(tmp_path_factory):
    """60 synthetic tracks of 3 genres, each cut into 3 noisy windows, plus an error row."""
    root = tmp_path_factory.mktemp("windows")
    features, labels = write_synthetic_tables(
        root,
        rows=60,
        genre_shares={"Rock": 0.4, "Jazz": 0.35, "Folk": 0.25},
        columns=COLUMNS,
        separation=1.0,
        test_fraction=0.25,
        seed=2,
    )
    tracks = pq.read_table(features).to_pandas()
    rng = np.random.default_rng(0)
    parts = []
    for k in range(WINDOWS):
        part = tracks.copy()
        part[COLUMNS] = part[COLUMNS] + rng.normal(0, 0.2, size=(len(part), len(COLUMNS)))
        part[COLUMNS] = part[COLUMNS].astype(np.float32)
        part["window"] = k
        parts.append(part)
    error = tracks.iloc[:1].copy()
    error[COLUMNS] = np.nan
    error[["status", "error", "window"]] = ["error", "corrupt: test", None]
    windows = pd.concat([*parts, error], ignore_index=True)
    windows["window"] = windows["window"].astype("Int32")
    target = root / "window_rows"
    target.mkdir()
    windows.to_parquet(target / "part-0.parquet", index=False)
    return str(target), labels, tracks


def _window_data(spark, features: str, labels: str):
    return labelled_data(
        read_feature_rows(spark, features),
        read_labels(spark, labels),
        columns=COLUMNS,
        class_weights=False,
        folds=3,
        windows=True,
    )


def test_windows_count_per_window_and_per_track(spark, window_tables):
    path, labels, tracks = window_tables
    data = _window_data(spark, path, labels)
    assert sum(n for split in data.tracks.values() for n in split.values()) == len(tracks)
    for split, genres in data.tracks.items():
        assert data.counts[split] == {genre: WINDOWS * n for genre, n in genres.items()}


def test_a_track_keeps_its_windows_in_one_fold(spark, window_tables):
    path, labels, _ = window_tables
    data = _window_data(spark, path, labels)

    options = TrainOptions(columns=tuple(COLUMNS), folds=3, search_rows=30, windows=True)
    sample = _search_sample(data, options).select("track_id", FOLD_COL).toPandas()
    assert (sample.groupby("track_id").size() == WINDOWS).all()  # every window of a track
    folds = sample.drop_duplicates()
    assert folds["track_id"].is_unique  # one fold per track
    assert 28 <= len(folds) <= 32  # --search-rows counts tracks
    assert sorted(folds[FOLD_COL].unique()) == [0, 1, 2]


def test_rows_without_a_window_column_are_refused(spark, window_tables, tmp_path):
    _, labels, _ = window_tables
    features, _ = write_synthetic_tables(
        tmp_path, rows=20, genre_shares={"Rock": 0.5, "Jazz": 0.5}, columns=COLUMNS
    )
    with pytest.raises(InputTableError, match="no window column"):
        _window_data(spark, features, labels)


@pytest.mark.slow
def test_the_training_job_trains_on_windows(spark, window_tables, tmp_path):
    path, labels, _ = window_tables
    output = tmp_path / "model"
    argv = ["--features", path, "--labels", labels, "--output", str(output), "--windows"]
    argv += ["--families", "zcr,rmse", "--candidates", "1", "--folds", "2"]
    argv += ["--search-space", _small_space(tmp_path)]
    with redirect_stdout(io.StringIO()):
        assert load_job("train").main(argv, spark=spark) == 0
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["options"]["windows"] is True
    test_tracks = sum(metrics["rows"]["tracks"]["test"].values())
    assert metrics["rows"]["test_total"] == WINDOWS * test_tracks
    assert (
        sum(sum(row) for row in metrics["test"]["ensemble"]["confusion"]) == WINDOWS * test_tracks
    )
    assert "rows are windows of tracks" in (output / "report.md").read_text()


def _small_space(tmp_path) -> str:
    space = tmp_path / "space.toml"
    space.write_text("[lr]\nmaxIter = 10\n[svc]\nmaxIter = 5\n[xgb]\nn_estimators = 5\n")
    return str(space)
