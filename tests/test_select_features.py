"""jobs/select_features.py and its library on small synthetic tables, real local Spark."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from job_loader import load_job

from fmagenre.analysis.selection import FILES, components_for, explained_variance
from fmagenre.audio.feature_sets import parse_column_list
from fmagenre.audio.names import family_of, flat_names
from fmagenre.platform.figures import PNG_SIGNATURE
from fmagenre.synthetic.feature_tables import write_synthetic_tables

pytestmark = pytest.mark.slow

GENRES = ("Rock", "Electronic", "Hip-Hop", "Folk")


@pytest.fixture(scope="module")
def job():
    return load_job("select_features")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Only MFCC separates the genres."""
    directory = tmp_path_factory.mktemp("select")
    return directory, *write_synthetic_tables(
        directory,
        rows=300,
        genre_shares=dict.fromkeys(GENRES, 1.0),
        separation={"mfcc": 0.6},
        test_fraction=0.25,
    )


@pytest.fixture(scope="module")
def selection(spark, job, inputs):
    directory, features, labels = inputs
    output = directory / "out"
    argv = ["--features", features, "--labels", labels, "--output", str(output)]
    argv += [
        "--trees",
        "30",
        "--repeats",
        "2",
        "--max-families",
        "2",
        "--folds",
        "2",
        "--seed",
        "3",
    ]
    assert job.main(argv, spark=spark) == 0
    return output


def test_outputs_written(selection):
    for name in FILES.values():
        assert (selection / name).is_file(), name
    for name in ("pca_png", "greedy_png"):
        assert (selection / FILES[name]).read_bytes().startswith(PNG_SIGNATURE)


def test_column_list_matches_ranking(selection):
    text = (selection / FILES["columns"]).read_text()
    assert text.startswith("# ")
    columns = [line for line in text.splitlines() if not line.startswith("#")]
    assert set(columns) <= set(flat_names())
    ranking = pd.read_csv(selection / FILES["ranking"])
    assert len(ranking) == len(flat_names())
    assert sorted(ranking["column"]) == sorted(flat_names())
    assert ranking["rank"].tolist() == list(range(1, len(ranking) + 1))
    assert ranking["importance_mean"].is_monotonic_decreasing
    assert (ranking["family"] == ranking["column"].map(family_of)).all()
    assert ranking["selected"].tolist() == (ranking["importance_mean"] > 0.001).tolist()
    assert list(columns) == ranking.loc[ranking["selected"], "column"].tolist()
    assert columns and family_of(columns[0]) == "mfcc"
    # jobs/train.py and compare_models --columns-file read it in FMA's column order.
    assert parse_column_list(text) == tuple(sorted(columns, key=list(flat_names()).index))
    summary = json.loads((selection / FILES["summary"]).read_text())
    assert summary["selected_columns"] == len(columns)


def test_pca_component_counts_are_monotone(selection):
    summary = json.loads((selection / FILES["summary"]).read_text())
    counts = [summary["pca_components"][key] for key in ("0.9", "0.95", "0.99")]
    assert 1 <= counts[0] <= counts[1] <= counts[2] <= len(flat_names())
    curve = pd.read_csv(selection / FILES["pca_csv"])
    assert len(curve) == len(flat_names())
    assert curve["ratio"].is_monotonic_decreasing
    assert curve["cumulative"].iloc[-1] == pytest.approx(1.0)
    assert (curve["cumulative"] < 0.9).sum() + 1 == counts[0]


def test_greedy_picks_the_informative_family_first(selection):
    steps = pd.read_csv(selection / FILES["greedy_csv"])
    assert steps["step"].tolist() == [1, 2]
    assert steps["added"].iloc[0] == "mfcc"
    assert steps["families"].iloc[1].startswith("mfcc+")
    assert steps["kappa_mean"].iloc[0] > 0.5
    candidates = pd.read_csv(selection / FILES["candidates_csv"])
    assert len(candidates) == 11 + 10
    first = candidates[candidates["step"] == 1].set_index("family")
    assert (first["folds_ok"] == 2).all()
    assert first["kappa_mean"].idxmax() == "mfcc"
    assert first.drop(index="mfcc")["kappa_mean"].max() < 0.3


def test_explained_variance_and_component_counts():
    ratios = explained_variance(np.eye(4))
    assert ratios == pytest.approx([0.25] * 4)
    constant = np.full((3, 3), np.nan)
    constant[:2, :2] = [[1.0, 1.0], [1.0, 1.0]]
    assert explained_variance(constant) == pytest.approx([1.0, 0.0, 0.0])
    rng = np.random.default_rng(0)
    ratios = np.sort(rng.dirichlet(np.ones(50)))[::-1]
    counts = components_for(ratios, (0.5, 0.9, 0.95, 0.99, 1.0))
    assert list(counts.values()) == sorted(counts.values())
    assert counts[1.0] <= 50
    with pytest.raises(ValueError, match="variance targets"):
        components_for(ratios, (0.0,))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--greedy-algorithm", "forest"], "--greedy-algorithm: invalid choice: 'forest'"),
        (["--variance-targets", "0.9,1.5"], "--variance-targets: must be a number > 0 and <= 1"),
        (["--folds", "1"], "--folds: must be an integer >= 2, got 1"),
        (["--max-families", "12"], "--max-families: must be an integer from 1 to 11, got 12"),
        (["--n-jobs", "0"], "--n-jobs: must be an integer >= 1, or -1 for all cores, got 0"),
        (["--holdout", "1"], "--holdout: must be a number > 0 and < 1, got 1"),
    ],
)
def test_bad_options_are_usage_errors(job, tmp_path, capsys, options, message):
    argv = ["--features", "f", "--labels", "l", "--output", str(tmp_path), *options]
    with pytest.raises(SystemExit) as done:
        job.main(argv)
    assert done.value.code == 2
    assert f"select_features: error: argument {message}" in capsys.readouterr().err


def test_missing_labels_exit_2(spark, job, inputs, tmp_path, capsys):
    _, features, _ = inputs
    argv = ["--features", features, "--labels", str(tmp_path / "nope"), "--output", "x"]
    assert job.main(argv, spark=spark) == 2
    assert (
        capsys.readouterr().err == f"select_features: --labels {tmp_path / 'nope'} does not exist\n"
    )


def test_an_empty_selection_is_a_result_with_its_reason(spark, job, inputs, tmp_path, capsys):
    """No importance can exceed 1 (a decrease in accuracy): the list is empty, the rest is
    written, and the job says why."""
    _, features, labels = inputs
    output = tmp_path / "out"
    argv = ["--features", features, "--labels", labels, "--output", str(output)]
    argv += ["--threshold", "1", "--trees", "10", "--repeats", "1", "--max-families", "1"]
    assert job.main([*argv, "--folds", "2"], spark=spark) == 0
    printed = capsys.readouterr().out
    assert "the column list is empty: no column's permutation importance exceeds 1" in printed
    for name in FILES.values():
        assert (output / name).is_file(), name
    lines = (output / FILES["columns"]).read_text().splitlines()
    assert lines and all(line.startswith("# ") for line in lines)
    assert any("lower --threshold" in line for line in lines)
    summary = json.loads((output / FILES["summary"]).read_text())
    assert summary["selected_columns"] == 0 and "lower --threshold" in summary["empty_selection"]
    assert not pd.read_csv(output / FILES["ranking"])["selected"].any()
