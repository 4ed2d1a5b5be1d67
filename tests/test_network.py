"""The spectrogram network: its model, its model directory, its training on Spark (real
TorchDistributor processes, real torch), resume after a stop, and the job's bad inputs."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stdout

import numpy as np
import pyarrow.parquet as pq
import pytest
from job_loader import ROOT, load_job

torch = pytest.importorskip("torch")

from fmagenre.audio.patches import PatchSettings, patches_from_bytes  # noqa: E402
from fmagenre.metrics.classification import confusion_of  # noqa: E402
from fmagenre.network.model import (  # noqa: E402
    Architecture,
    GenreCNN,
    parameter_count,
)
from fmagenre.network.model_dir import (  # noqa: E402
    NetworkModel,
    is_network_model,
    model_kind,
)
from fmagenre.network.training import NetworkOptions, run  # noqa: E402
from fmagenre.synthetic.patch_tables import genre_patches, write_patch_tables  # noqa: E402

GENRES = ("Electronic", "Folk", "Hip-Hop", "Rock")


def _info(classes: int = 4) -> dict:
    return {
        "kind": "network",
        "format": 1,
        "genres": list(GENRES[:classes]),
        "patch_settings": PatchSettings().to_dict(),
        "extractor_version": "test",
        "architecture": Architecture(classes=classes).to_dict(),
        "normalisation": {"mean": [0.4] * 96, "std": [0.2] * 96},
    }


def _weights(classes: int = 4, seed: int = 0) -> bytes:
    torch.manual_seed(seed)
    buffer = io.BytesIO()
    torch.save(GenreCNN(Architecture(classes=classes)).state_dict(), buffer)
    return buffer.getvalue()


def _patches(genre: int, count: int = 16, seed: int = 0) -> np.ndarray:
    return genre_patches(genre, count, np.random.default_rng(seed), PatchSettings())


def test_the_network_is_small_and_maps_patches_to_genres():
    model = GenreCNN(Architecture(classes=16))
    assert 50_000 < parameter_count(model) < 300_000
    out = model.eval()(torch.zeros(3, 1, 96, 128))
    assert out.shape == (3, 16)


def test_a_track_is_the_mean_of_its_patches_log_probabilities():
    model = NetworkModel(_info(), _weights())
    patches = _patches(1, count=5)
    per_patch = model.patch_log_probs(patches)
    assert per_patch.dtype == np.float32 and per_patch.shape == (5, 4)
    np.testing.assert_allclose(np.exp(per_patch).sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(model.track_log_probs(patches), per_patch.mean(axis=0))
    with pytest.raises(ValueError, match="at least one patch"):
        model.track_log_probs(patches[:0])
    with pytest.raises(ValueError, match="uint8"):
        model.patch_log_probs(patches.astype(np.float32))


def test_a_model_shipped_as_bytes_predicts_bitwise_the_same():
    model = NetworkModel(_info(), _weights(seed=3))
    copy = NetworkModel.from_bytes(model.to_bytes())
    patches = _patches(2)
    assert copy.genres == model.genres and copy.settings == PatchSettings()
    assert model.patch_log_probs(patches).tobytes() == copy.patch_log_probs(patches).tobytes()
    with pytest.raises(ValueError, match="not the bytes"):
        NetworkModel.from_bytes(b"something else")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"class_weights": "heavy"}, "class_weights must be"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"stop_after": 0}, "stop_after"),
        ({"learning_rate": 0.0}, "learning_rate"),
    ],
)
def test_options_are_checked_first(change, message):
    with pytest.raises(ValueError, match=message):
        NetworkOptions(**change)


# -- training on Spark ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def network_run(spark, tmp_path_factory):
    """100 generated tracks (4 patches each) in 4 files, trained by 2 local processes: first
    stopped after 2 of 4 epochs (as a kill would leave it), then finished by the job with the
    same output."""
    root = tmp_path_factory.mktemp("network")
    patches, labels = write_patch_tables(root, tracks=100, seed=2)
    output = root / "model"
    options = NetworkOptions(
        epochs=4, num_processes=2, stop_after=2, patience=4, batch_size=16, validation_fraction=0.2
    )
    stopped = run(spark, patches=patches, labels=labels, output=str(output), options=options)
    checkpoint = sorted(p.name for p in (output / "_checkpoint").iterdir())
    had_model = (output / "network").exists()
    argv = ["--patches", patches, "--labels", labels, "--output", str(output)]
    argv += ["--epochs", "4", "--patience", "4", "--num-processes", "2", "--local-mode"]
    argv += ["--batch-size", "16", "--validation-fraction", "0.2"]
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = load_job("train_cnn").main(argv, spark=spark)
    metrics = json.loads((output / "metrics.json").read_text())
    return {
        "root": root,
        "patches": patches,
        "labels": labels,
        "output": output,
        "stopped": stopped,
        "checkpoint": checkpoint,
        "had_model": had_model,
        "code": code,
        "printed": printed.getvalue(),
        "metrics": metrics,
    }


@pytest.mark.slow
def test_a_stopped_run_leaves_a_checkpoint_and_no_model(network_run):
    stopped = network_run["stopped"]
    assert stopped["finished"] is False and "test" not in stopped
    assert [h["epoch"] for h in stopped["training"]["history"]] == [1, 2]
    assert "checkpoint.pt" in network_run["checkpoint"]
    assert not network_run["had_model"]


@pytest.mark.slow
def test_the_rerun_resumes_after_the_saved_epoch(network_run):
    assert network_run["code"] == 0
    training = network_run["metrics"]["training"]
    assert training["resumed_from"] == 2 and training["first_epoch"] == 3
    assert [(h["epoch"], h["run"]) for h in training["history"]] == [(1, 1), (2, 1), (3, 2), (4, 2)]
    assert "resumed after 2" in network_run["printed"]
    assert not (network_run["output"] / "_checkpoint").exists()


@pytest.mark.slow
def test_the_network_learns_the_generated_genres(network_run):
    test = network_run["metrics"]["test"]["network"]
    assert test["rows"] == 24
    print(network_run["printed"])
    assert test["accuracy"] > 0.6 and test["kappa"] > 0.45  # chance: 0.25 and 0
    assert network_run["metrics"]["network"]["parameters"] < 300_000


@pytest.mark.slow
def test_the_model_directory_holds_the_model_and_the_report(network_run, spark):
    output = network_run["output"]
    names = {p.name for p in output.iterdir()}
    assert {"network", "metrics.json", "report.md", "confusion_network.csv"} <= names
    assert "confusion_network.png" in names
    assert is_network_model(spark, str(output)) and model_kind(spark, str(output)) == "network"
    info = json.loads((output / "network" / "network.json").read_text())
    assert info["genres"] == list(GENRES) and info["patch_settings"] == PatchSettings().to_dict()
    assert info["validation"]["tracks"] == len(info["validation"]["track_ids"]) > 0
    assert 1 <= info["epoch"] <= 4
    report = (output / "report.md").read_text()
    assert "## Test scores" in report and "resumed after epoch 2" in report


def _test_tracks(network_run) -> list[tuple[int, int, np.ndarray]]:
    labels = pq.read_table(network_run["labels"]).to_pylist()
    genre_of = {r["track_id"]: GENRES.index(r["genre_top"]) for r in labels if r["split"] == "test"}
    rows = pq.read_table(network_run["patches"], columns=["track_id", "patches"]).to_pylist()
    return [
        (
            r["track_id"],
            genre_of[r["track_id"]],
            patches_from_bytes(r["patches"], settings=PatchSettings()),
        )
        for r in rows
        if r["track_id"] in genre_of and r["patches"]
    ]


@pytest.mark.slow
def test_predictions_are_identical_after_reload(network_run, spark):
    output = str(network_run["output"])
    first, second = NetworkModel.load(spark, output), NetworkModel.load(spark, output)
    shipped = NetworkModel.from_bytes(first.to_bytes())
    tracks = _test_tracks(network_run)
    labels, predicted = [], []
    for _, genre, patches in tracks:
        scores = first.track_log_probs(patches)
        assert scores.tobytes() == second.track_log_probs(patches).tobytes()
        assert scores.tobytes() == shipped.track_log_probs(patches).tobytes()
        labels.append(genre)
        predicted.append(int(np.argmax(scores)))
    # The training processes scored the test split with the same weights.
    confusion = confusion_of(labels, predicted, len(GENRES))
    assert confusion.tolist() == network_run["metrics"]["test"]["network"]["confusion"]


@pytest.mark.slow
def test_training_in_barrier_tasks_outside_local_mode(spark, tmp_path):
    patches, labels = write_patch_tables(tmp_path, tracks=40, files=2, seed=4)
    argv = ["--patches", patches, "--labels", labels, "--output", str(tmp_path / "m")]
    argv += ["--epochs", "1", "--num-processes", "2", "--no-local-mode", "--batch-size", "32"]
    with redirect_stdout(io.StringIO()):
        assert load_job("train_cnn").main(argv, spark=spark) == 0
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["training"]["processes"] == 2 and metrics["options"]["local_mode"] is False
    assert metrics["test"]["network"]["rows"] == 8


# -- bad input -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_tables(tmp_path_factory):
    return write_patch_tables(tmp_path_factory.mktemp("small"), tracks=40, files=2, seed=5)


def _job_error(spark, argv, capsys) -> str:
    code = load_job("train_cnn").main(argv, spark=spark)
    error = capsys.readouterr().err
    assert code == 2, error
    assert error.startswith("train_cnn: ") and error.count("\n") == 1
    return error


def test_a_table_without_patches_exits_2(spark, small_tables, tmp_path, training_tables, capsys):
    argv = ["--patches", training_tables.features, "--labels", small_tables[1]]
    error = _job_error(spark, [*argv, "--output", str(tmp_path / "m")], capsys)
    assert "has no patches column" in error


def test_a_genre_without_training_patches_exits_2(spark, tmp_path, capsys):
    patches, labels = write_patch_tables(tmp_path, tracks=24, without_patches=["Folk"], seed=6)
    argv = ["--patches", patches, "--labels", labels, "--output", str(tmp_path / "m")]
    error = _job_error(spark, argv, capsys)
    assert "genre(s) without patches in the training split: Folk" in error
    assert not (tmp_path / "m").exists()


def test_a_model_directory_of_the_other_kind_exits_2(spark, small_tables, tmp_path, capsys):
    (tmp_path / "m" / "model").mkdir(parents=True)
    argv = [
        "--patches",
        small_tables[0],
        "--labels",
        small_tables[1],
        "--output",
        str(tmp_path / "m"),
    ]
    error = _job_error(spark, [*argv, "--overwrite"], capsys)
    assert "holds a MIR voting ensemble" in error
    assert (tmp_path / "m" / "model").exists()


def test_an_existing_model_directory_needs_overwrite(spark, small_tables, tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "notes.txt").write_text("mine")
    argv = [
        "--patches",
        small_tables[0],
        "--labels",
        small_tables[1],
        "--output",
        str(tmp_path / "m"),
    ]
    assert "pass --overwrite" in _job_error(spark, argv, capsys)
    assert (tmp_path / "m" / "notes.txt").exists()


def test_another_runs_checkpoint_is_not_resumed(spark, small_tables, tmp_path, capsys):
    checkpoint = tmp_path / "m" / "_checkpoint"
    checkpoint.mkdir(parents=True)
    (checkpoint / "state.json").write_text(json.dumps({"epoch": 3, "fingerprint": "other"}))
    argv = [
        "--patches",
        small_tables[0],
        "--labels",
        small_tables[1],
        "--output",
        str(tmp_path / "m"),
    ]
    assert "checkpoint of a run with other inputs" in _job_error(spark, argv, capsys)


def test_more_processes_than_files_exits_2(spark, small_tables, tmp_path, capsys):
    argv = [
        "--patches",
        small_tables[0],
        "--labels",
        small_tables[1],
        "--output",
        str(tmp_path / "m"),
    ]
    error = _job_error(spark, [*argv, "--num-processes", "3"], capsys)
    assert "use at most 2" in error


#: Makes ``import torch`` fail as it does where torch is not installed (``sys.modules['torch'] =
#: None`` would not do: scipy looks torch up in sys.modules and expects a module there).
NO_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _NoTorch())
"""


def _without_torch(code: str) -> subprocess.CompletedProcess:
    prelude = NO_TORCH + f"sys.path.insert(0, {str(ROOT)!r})\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def test_without_torch_the_job_says_what_to_install_before_spark(tmp_path):
    code = (
        f"sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        "from job_loader import load_job\n"
        "import fmagenre.platform.jobs as jobs\n"
        "def no_session(*a, **k): raise AssertionError('a session was built')\n"
        "jobs.build_session = no_session\n"
        "argv = ['--patches', 'p', '--labels', 'l', '--output', 'o']\n"
        "sys.exit(load_job('train_cnn').main(argv))\n"
    )
    result = _without_torch(code)
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith('train_cnn: the spectrogram network needs PyTorch: pip install "fmagenre[dl]"')
    )
