"""jobs/compare_models.py and its library on small synthetic tables, real local Spark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from job_loader import load_job

from fmagenre.analysis.cells import Cell, GridData, evaluate_cell, make_cells
from fmagenre.analysis.grid_runner import run_cells
from fmagenre.audio.feature_sets import build_feature_sets, format_column_list
from fmagenre.audio.names import flat_names
from fmagenre.platform.figures import PNG_SIGNATURE
from fmagenre.synthetic.feature_tables import write_synthetic_tables

pytestmark = pytest.mark.slow

GENRES = ("Rock", "Electronic", "Hip-Hop", "Folk")
SETS = ("mfcc", "zcr", "all", "selected")
ALGORITHMS = ("lr", "nb", "qda")


@pytest.fixture(scope="module")
def job():
    return load_job("compare_models")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Only MFCC separates the genres; about 45 training tracks per genre."""
    directory = tmp_path_factory.mktemp("compare")
    features, labels = write_synthetic_tables(
        directory,
        rows=240,
        genre_shares=dict.fromkeys(GENRES, 1.0),
        separation={"mfcc": 1.0},
        test_fraction=0.25,
    )
    columns = directory / "columns.txt"
    columns.write_text(
        format_column_list(
            ["mfcc_mean_01", "mfcc_mean_02", "mfcc_std_01", "zcr_mean_01"],
            comments=["a hand-made list"],
        )
    )
    return directory, features, labels, str(columns)


@pytest.fixture(scope="module")
def grid(spark, job, inputs):
    directory, features, labels, columns = inputs
    output = directory / "out"
    argv = ["--features", features, "--labels", labels, "--output", str(output)]
    argv += ["--columns-file", columns, "--feature-sets", ",".join(SETS)]
    argv += ["--algorithms", ",".join(ALGORITHMS), "--cell-timeout", "120"]
    assert job.main(argv, spark=spark) == 0
    return output


def test_grid_has_one_row_per_cell(grid):
    results = pd.read_csv(grid / "results.csv")
    assert len(results) == len(SETS) * len(ALGORITHMS)
    pairs = set(zip(results["feature_set"], results["algorithm"], strict=True))
    assert pairs == {(s, a) for s in SETS for a in ALGORITHMS}
    dims = results.drop_duplicates("feature_set").set_index("feature_set")["n_features"]
    assert dims.to_dict() == {"mfcc": 140, "zcr": 7, "all": 518, "selected": 4}
    assert (results["n_test"] > 0).all()
    assert set(results["status"]) <= {"ok", "error", "timeout"}


def test_failing_cell_is_reported_not_fatal(grid):
    results = pd.read_csv(grid / "results.csv").set_index(["feature_set", "algorithm"])
    # QDA on 140 or 518 columns with ~45 tracks per genre: singular covariances.
    failed = [("mfcc", "qda"), ("all", "qda")]
    assert (results.loc[failed, "status"] == "error").all()
    assert results.loc[failed, "error"].str.startswith("LinAlgError: ").all()
    assert results.loc[failed, "accuracy"].isna().all()
    assert (results.drop(index=failed)["status"] == "ok").all()


def test_informative_family_scores_best(grid):
    results = pd.read_csv(grid / "results.csv").set_index(["feature_set", "algorithm"])
    assert results.loc[("mfcc", "lr"), "accuracy"] > 0.8
    assert results.loc[("zcr", "lr"), "accuracy"] < 0.5
    assert results.loc[("mfcc", "lr"), "kappa"] > results.loc[("zcr", "lr"), "kappa"]


def test_tables_and_heatmap(grid):
    tables = (grid / "tables.md").read_text()
    for title in ("## Accuracy (%)", "## Cohen's kappa (%)", "## Macro F1 (%)", "## Fit time"):
        assert title in tables
    assert "| all | 518 |" in tables
    assert "- all x qda: error, LinAlgError" in tables
    assert (grid / "heatmap.png").read_bytes().startswith(PNG_SIGNATURE)


def test_timeout_is_a_status(spark):
    rng = np.random.default_rng(0)
    data = GridData(
        rng.normal(size=(60, 3)).astype(np.float32),
        np.arange(60) % 2,
        (np.arange(60) >= 45).astype(np.int64),
        ("a", "b", "c"),
        ("x", "y"),
    )
    cells = [Cell(7, "abc", "lr", (0, 1, 2)), Cell(3, "ab", "rf", (0, 1))]
    results = run_cells(spark, data, cells, timeout=0.001)
    assert results["cell_id"].tolist() == [7, 3]
    assert results["status"].tolist() == ["timeout", "timeout"]
    assert results["error"].str.contains("0.001 s limit").all()


def test_evaluate_cell_in_process_outcomes():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 4))
    y = np.repeat([10, 20], 40)
    x[y == 20, 0] += 3
    ok = evaluate_cell("nb", x[::2], y[::2], x[1::2], y[1::2], timeout=60)
    assert ok["status"] == "ok" and ok["accuracy"] > 0.8 and ok["fit_s"] >= 0
    one_class = evaluate_cell("lr", x, np.zeros(80), x, np.zeros(80), timeout=60)
    assert one_class["status"] == "error" and one_class["error"].startswith("ValueError")


def test_slow_kernels_train_on_fewer_rows():
    sets = list(build_feature_sets(combinations=[], pca_components=0).values())[:2]
    cells = make_cells(sets, ["svc", "lr", "knn"], flat_names(), slow_kernel_rows=50)
    assert [cell.max_train_rows for cell in cells[:3]] == [50, 0, 50]
    assert [cell.cell_id for cell in cells] == list(range(6))


def test_pca_feature_set(spark):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(90, len(flat_names()))).astype(np.float32)
    y = np.arange(90) % 3
    x[:, 0] += 4 * y
    data = GridData(x, y, (np.arange(90) % 3 == 0).astype(np.int64), flat_names(), ("a", "b", "c"))
    pca = build_feature_sets(combinations=[], pca_components=3)["pca"]
    cells = make_cells([pca], ["lr"], data.columns)
    result = run_cells(spark, data, cells, timeout=120).iloc[0]
    assert result["status"] == "ok"
    assert result["n_features"] == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--algorithms", "lr,forest"], "--algorithms: invalid choice: 'forest' (choose from lr,"),
        (["--algorithms", "lr,lr"], "--algorithms: 'lr' is given twice"),
        (["--feature-sets", ""], "--feature-sets: give at least one item"),
        (["--pca-components", "-1"], "--pca-components: must be an integer >= 0, got -1"),
    ],
)
def test_bad_options_are_usage_errors(job, tmp_path, capsys, options, message):
    argv = ["--features", "f", "--labels", "l", "--output", str(tmp_path), *options]
    with pytest.raises(SystemExit) as done:
        job.main(argv)
    assert done.value.code == 2
    assert f"compare_models: error: argument {message}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--combinations", "mfcc+timbre"], "unknown feature family 'timbre'"),
        (["--feature-sets", "mfcc,selected"], "unknown feature set 'selected'"),
        (["--feature-sets", "melody"], "unknown feature set 'melody'"),
        (
            ["--columns-file", "/nonexistent/columns.txt"],
            "column list /nonexistent/columns.txt does not exist",
        ),
    ],
)
def test_bad_inputs_exit_2(spark, job, inputs, tmp_path, capsys, options, message):
    _, features, labels, _ = inputs
    argv = ["--features", features, "--labels", labels, "--output", str(tmp_path), *options]
    assert job.main(argv, spark=spark) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith("compare_models: ") and message in error


def test_missing_and_malformed_inputs_exit_2(spark, job, inputs, tmp_path, capsys):
    _, features, labels, _ = inputs
    base = ["--output", str(tmp_path)]
    argv = ["--features", str(tmp_path / "none"), "--labels", labels, *base]
    assert job.main(argv, spark=spark) == 2
    assert "--features" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_text("mfcc_mean_01\nloudness\n")
    argv = ["--features", features, "--labels", labels, "--columns-file", str(bad), *base]
    assert job.main(argv, spark=spark) == 2
    assert f"{bad}: 1 unknown feature column(s): 'loudness'" in capsys.readouterr().err
    argv = ["--features", labels, "--labels", labels, *base]
    assert job.main(argv, spark=spark) == 2
    assert f"--features {labels} lacks 518 column(s): " in capsys.readouterr().err
