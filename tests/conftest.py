"""Shared fixtures: one real local SparkSession for the whole test session, a generated audio
corpus, and one ensemble trained on synthetic tables for the train, predict and ensemble tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def spark():
    from fmagenre.platform.session import build_session

    session = build_session(
        "fmagenre-tests",
        master="local[2]",
        conf={
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.task.maxFailures": "1",
            "spark.sql.session.timeZone": "UTC",
            "spark.driver.memory": "2g",
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory):
    """A small generated FMA-shaped corpus: 10 short tracks, one per style, and 5 bad files."""
    from fmagenre.synthetic.sample import generate_sample

    return generate_sample(
        tmp_path_factory.mktemp("sample"), tracks_per_genre=1, min_duration=3.0, max_duration=5.0
    )


#: The shared model's search: few iterations and trees, the data is easy and tests must be quick.
SEARCH_SPACE = """
[lr]
maxIter = [10, 30]
[svc]
maxIter = [5, 15]
[xgb]
n_estimators = [5, 20]
max_depth = [2, 4]
min_child_weight = [1, 3]
"""


@pytest.fixture(scope="session")
def training_tables(tmp_path_factory):
    """300 synthetic tracks of 5 genres (20% test), a search space file, and a columns file.

    The features are the zcr, rmse and spectral_contrast families (63 columns); the columns
    file lists them all but kurtosis (54).
    """
    from types import SimpleNamespace

    from fmagenre.audio.feature_sets import family_columns
    from fmagenre.synthetic.feature_tables import write_synthetic_tables

    genres = {"Rock": 0.3, "Electronic": 0.25, "Hip-Hop": 0.2, "Folk": 0.15, "Jazz": 0.1}
    families = family_columns(["zcr", "rmse", "spectral_contrast"])
    root = tmp_path_factory.mktemp("training")
    features, labels = write_synthetic_tables(
        root,
        rows=300,
        genre_shares=genres,
        columns=families,
        separation=0.6,
        test_fraction=0.2,
        nan_fraction=0.002,
        seed=1,
    )
    space = root / "space.toml"
    space.write_text(SEARCH_SPACE)
    columns = [c for c in families if "_kurtosis_" not in c]
    columns_file = root / "columns.txt"
    columns_file.write_text("# every statistic but kurtosis\n" + "\n".join(columns) + "\n")
    return SimpleNamespace(
        root=root,
        features=features,
        labels=labels,
        genres=genres,
        space=str(space),
        columns=columns,
        columns_file=str(columns_file),
    )


@pytest.fixture(scope="session")
def trained_model(spark, training_tables):
    """The ensemble that jobs/train.py trains on ``training_tables`` (2 candidates, 2 folds,
    balanced class weights): its output directory, printed summary and metrics.

    The train, predict and ensemble tests share it: it is trained once per test session.
    """
    import io
    import json
    from contextlib import redirect_stdout
    from types import SimpleNamespace

    from job_loader import load_job

    tables = training_tables
    output = tables.root / "model_dir"
    argv = ["--features", tables.features, "--labels", tables.labels, "--output", str(output)]
    argv += ["--columns-file", tables.columns_file, "--search-space", tables.space]
    argv += ["--candidates", "2", "--folds", "2", "--class-weights", "balanced", "--seed", "3"]
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = load_job("train").main(argv, spark=spark)
    assert code == 0
    metrics = json.loads((output / "metrics.json").read_text())
    return SimpleNamespace(output=output, printed=printed.getvalue(), metrics=metrics)


def pytest_collection_modifyitems(items):
    """A test that uses :func:`trained_model` is slow: the model takes about a minute."""
    for item in items:
        if "trained_model" in item.fixturenames:
            item.add_marker(pytest.mark.slow)
