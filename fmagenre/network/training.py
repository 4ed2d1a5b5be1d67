"""The network's training job, library side: plan on the driver, train with TorchDistributor.

:func:`run` checks the options and the output directory, plans the run on the driver
(:func:`fmagenre.network.data.plan_run`: genres, roles of the tracks, files of each process,
class weights), then trains with ``pyspark.ml.torch.distributor.TorchDistributor``:
``num_processes`` processes, on the driver's machine (``local_mode``) or one per Spark
barrier task on the executors, each on CPU with one thread (gloo) or on one GPU (nccl); each
reads its own Parquet files (:mod:`fmagenre.network.ranks`). Validation is a seeded share of
each genre's training tracks (whole tracks); training stops early when the validation kappa
has not improved for ``patience`` epochs, keeping the best epoch's weights. The test split
of the label table is scored with them. Under ``MODEL_DIR``::

    network/weights.pt, network/network.json     the model (fmagenre.network.model_dir)
    metrics.json, report.md, confusion_network.csv/.png
    _checkpoint/                                 while it trains: after a kill, the same
                                                 command resumes after the last epoch

Works on pyspark 3.5 and 4: only TorchDistributor's public constructor and ``run`` are used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from pyspark.sql import SparkSession

from fmagenre.errors import InputError
from fmagenre.metrics.classification import classification_summary
from fmagenre.ml.report import metrics_json, write_confusions
from fmagenre.ml.training_data import CLASS_WEIGHTS
from fmagenre.network import require_torch
from fmagenre.network.data import RunPlan, plan_run, qualified
from fmagenre.network.model_dir import FORMAT, KIND, model_kind
from fmagenre.network.report import markdown_report
from fmagenre.platform.barrier import slots_guard
from fmagenre.platform.hadoop import hadoop_fs, path_exists, read_bytes, write_output
from fmagenre.platform.threads import THREAD_VARS

log = logging.getLogger(__name__)

MODEL_NAME = "network"
CHECKPOINT_DIR = "_checkpoint"
CHECKPOINT_STATE = "state.json"


class ModelDirectoryError(InputError, ValueError):
    """An output directory that holds another kind of model or another run's checkpoint."""


@dataclass(frozen=True)
class NetworkOptions:
    """Settings of a network training run."""

    #: Most epochs (passes over the training patches).
    epochs: int = 30
    #: Patches per batch in each process.
    batch_size: int = 64
    learning_rate: float = 1e-3
    #: AdamW's weight decay.
    weight_decay: float = 1e-4
    #: Epochs without a better validation kappa before training stops.
    patience: int = 5
    #: Loss weights: "none", "balanced" or "sqrt" (:mod:`fmagenre.ml.training_data`).
    class_weights: str = "none"
    #: Share of each genre's training tracks held out for validation (whole tracks).
    validation_fraction: float = 0.1
    #: Seed of the validation split, the initial weights and the batches.
    seed: int = 0
    dropout: float = 0.3
    #: TorchDistributor processes; 0 for the session's default parallelism.
    num_processes: int = 0
    #: Processes on the driver's machine (True) or in Spark barrier tasks (False).
    local_mode: bool = True
    #: One GPU a process (nccl), else CPUs with one thread each (gloo).
    use_gpu: bool = False
    #: Stop after this many epochs of this run, leaving the checkpoint and no model: a later
    #: run with the same output goes on from there (None: train to the end).
    stop_after: int | None = None
    #: Replace an existing model, or another run's checkpoint, in the output directory.
    overwrite: bool = False

    def __post_init__(self):
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be more than 0, got {self.learning_rate}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be 0 or more, got {self.weight_decay}")
        if self.class_weights not in CLASS_WEIGHTS:
            raise ValueError(
                f"class_weights must be {' or '.join(CLASS_WEIGHTS)}, got {self.class_weights!r}"
            )
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be between 0 and 1, got {self.validation_fraction}"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.seed < 0:
            raise ValueError(f"seed must be 0 or more, got {self.seed}")
        if self.num_processes < 0:
            raise ValueError(
                f"num_processes must be 0 (automatic) or more, got {self.num_processes}"
            )
        if self.stop_after is not None and self.stop_after < 1:
            raise ValueError(f"stop_after must be at least 1, got {self.stop_after}")


def _join(path: str, *names: str) -> str:
    return "/".join((path.rstrip("/"), *names))


def check_dynamic_allocation(spark: SparkSession, options: NetworkOptions) -> None:
    """Raise InputError when Spark would refuse the barrier tasks of a distributed run."""
    if options.local_mode or spark.sparkContext.master.startswith("local"):
        return
    conf = spark.sparkContext.getConf()
    if conf.get("spark.dynamicAllocation.enabled", "false").strip().lower() == "true":
        raise InputError(
            "training the network on the executors (local_mode false) runs Spark barrier"
            " tasks, which Spark refuses under dynamic allocation: run it with --conf"
            " spark.dynamicAllocation.enabled=false and a fixed number of executors"
        )


def _check_output(spark: SparkSession, output: str, options: NetworkOptions) -> bool:
    """Check the output directory before any Spark job; True when it holds a checkpoint."""
    kind = model_kind(spark, output)
    if kind == "ensemble":
        raise ModelDirectoryError(
            f"{output} holds a MIR voting ensemble (jobs/train.py): choose another --output"
        )
    checkpoint = path_exists(spark, _join(output, CHECKPOINT_DIR, CHECKPOINT_STATE))
    if checkpoint or not path_exists(spark, output):
        return checkpoint
    if not options.overwrite:
        what = "a trained network" if kind == KIND else "files"
        raise FileExistsError(f"{output} already holds {what}: pass --overwrite to replace it")
    return False


def _delete(spark: SparkSession, path: str) -> None:
    fs, hadoop_path = hadoop_fs(spark, path)
    if fs.exists(hadoop_path):
        fs.delete(hadoop_path, True)


def _fingerprint(plan: RunPlan, architecture: Mapping, options: NetworkOptions) -> str:
    """What a checkpoint must match to be resumed: the data, the splits and the options that
    change what is learnt (not epochs, patience, processes or devices)."""
    content = {
        "files": sorted(f for files in plan.files for f in files),
        "tracks": sorted([t, c, r] for t, (c, r) in plan.tracks.items()),
        "owners": sorted(plan.owners.items()),
        "genres": plan.genres,
        "class_weights": plan.class_weights,
        "settings": plan.settings.to_dict(),
        "architecture": dict(architecture),
        "options": {
            name: getattr(options, name)
            for name in ("batch_size", "learning_rate", "weight_decay", "class_weights", "seed")
        },
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """The thread variables of fmagenre.platform.threads at 1 for the processes started here."""
    saved = {name: os.environ.get(name) for name in THREAD_VARS}
    os.environ.update(dict.fromkeys(THREAD_VARS, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _distribute(spark: SparkSession, options: NetworkOptions, processes: int, job: dict) -> dict:
    from pyspark.ml.torch.distributor import TorchDistributor

    distributor = TorchDistributor(
        num_processes=processes, local_mode=options.local_mode, use_gpu=options.use_gpu
    )
    from fmagenre.network.ranks import train_process

    barrier_tasks = 1 if options.local_mode else processes
    guard = slots_guard(spark, needed=barrier_tasks, what=f"--num-processes {processes}")
    with _one_thread(), guard:
        result = distributor.run(train_process, job)
    if not isinstance(result, dict):
        raise RuntimeError(f"the training processes returned {result!r}, not their results")
    return result


def run(
    spark: SparkSession,
    *,
    patches: str,
    labels: str,
    output: str,
    options: NetworkOptions | None = None,
) -> dict:
    """Train, evaluate and save the network; return the metrics.

    Parameters
    ----------
    spark : SparkSession
    patches : str
        Feature table with patches (its current view), or Parquet with ``track_id`` and
        ``patches`` columns; any Hadoop path that pyarrow also reads (see
        :mod:`fmagenre.network.storage`).
    labels : str
        Label table (``jobs/prepare_labels.py``).
    output : str
        The model directory (see the module).
    options : NetworkOptions or None

    Returns
    -------
    dict
        What ``metrics.json`` holds; with ``finished`` false (nothing but the checkpoint
        written) when ``options.stop_after`` stopped the run.

    Raises
    ------
    fmagenre.network.TorchMissingError
        Without torch.
    ModelDirectoryError, FileExistsError
        On an output of the other kind, or existing without ``overwrite``; on another run's
        checkpoint without ``overwrite``.
    fmagenre.tables.inputs.InputTableError
        On inputs that cannot train the network (see :func:`~fmagenre.network.data.plan_run`).
    """
    options = options or NetworkOptions()
    require_torch()
    from fmagenre.network.model import Architecture, GenreCNN, parameter_count

    started_at, started = datetime.now(UTC), time.perf_counter()
    check_dynamic_allocation(spark, options)
    resuming = _check_output(spark, output, options)
    processes = options.num_processes or spark.sparkContext.defaultParallelism
    timings: dict[str, float] = {}
    plan = plan_run(
        spark,
        patches=patches,
        labels=labels,
        processes=processes,
        validation_fraction=options.validation_fraction,
        class_weights=options.class_weights,
        seed=options.seed,
    )
    timings["plan"] = round(time.perf_counter() - started, 3)
    architecture = Architecture(
        classes=len(plan.genres),
        n_mels=plan.settings.n_mels,
        frames=plan.settings.frames,
        dropout=options.dropout,
    ).to_dict()
    fingerprint = _fingerprint(plan, architecture, options)
    if resuming:
        state = json.loads(read_bytes(spark, _join(output, CHECKPOINT_DIR, CHECKPOINT_STATE)))
        if state["fingerprint"] != fingerprint:
            if not options.overwrite:
                raise ModelDirectoryError(
                    f"{output} holds the checkpoint of a run with other inputs or options:"
                    " pass --overwrite to start over"
                )
            resuming = False
        else:
            log.info("resuming from %s (epoch %d)", output, state["epoch"])
    if not resuming:
        _delete(spark, output)
    log.info(
        "%d genres; tracks: %s; %d processes (%s, %s)",
        len(plan.genres),
        ", ".join(f"{role} {sum(n.values())}" for role, n in plan.counts.items()),
        processes,
        "local mode" if options.local_mode else "barrier tasks",
        "GPU" if options.use_gpu else "CPU",
    )
    uri = qualified(spark, output)
    info = {
        "kind": KIND,
        "format": FORMAT,
        "genres": plan.genres,
        "patch_settings": plan.settings.to_dict(),
        "extractor_version": plan.extractor_version,
        "architecture": architecture,
        "validation": {"tracks": len(plan.validation_ids()), "track_ids": plan.validation_ids()},
        "trained_at": started_at.isoformat(timespec="seconds"),
    }
    job = {
        "files": plan.files,
        "tracks": plan.tracks,
        "owners": plan.owners,
        "genres": plan.genres,
        "settings": plan.settings.to_dict(),
        "class_weights": plan.class_weights,
        "architecture": architecture,
        "options": {
            **{
                name: getattr(options, name)
                for name in (
                    "epochs",
                    "batch_size",
                    "learning_rate",
                    "weight_decay",
                    "patience",
                    "seed",
                    "stop_after",
                    "use_gpu",
                )
            },
        },
        "output": uri,
        "fingerprint": fingerprint,
        "info": info,
    }
    train_started = time.perf_counter()
    result = _distribute(spark, options, processes, job)
    timings["train"] = round(time.perf_counter() - train_started, 3)
    metrics = {
        "job": "train_cnn",
        "finished": result["finished"],
        "started_at": started_at.isoformat(timespec="seconds"),
        "inputs": {"patches": patches, "labels": labels},
        "model": _join(output, MODEL_NAME),
        "report": _join(output, "report.md"),
        "options": {**asdict(options), "num_processes": processes},
        "labels": plan.genres,
        "rows": {
            "tracks": plan.counts,
            "patches": plan.patches,
            "without_patches": plan.without_patches,
            "class_weights": dict(zip(plan.genres, plan.class_weights, strict=True)),
        },
        "network": {
            "architecture": architecture,
            "parameters": parameter_count(GenreCNN(Architecture.from_dict(architecture))),
            "patch_settings": plan.settings.to_dict(),
            "extractor_version": plan.extractor_version,
        },
        "training": {k: v for k, v in result.items() if k != "test_confusion"},
        "timings": timings,
    }
    if not result["finished"]:
        log.info(
            "stopped after epoch %d as asked: the same command goes on from there", result["epoch"]
        )
        return metrics
    import numpy as np

    confusion = np.asarray(result["test_confusion"], dtype=float)
    metrics["test"] = {
        MODEL_NAME: {
            **classification_summary(confusion, plan.genres),
            "confusion": confusion.tolist(),
        }
    }
    write_confusions(spark, output, {MODEL_NAME: confusion}, plan.genres)
    timings["total"] = round(time.perf_counter() - started, 3)
    write_output(spark, output, "report.md", markdown_report(metrics))
    write_output(spark, output, "metrics.json", metrics_json(metrics))
    _delete(spark, _join(output, CHECKPOINT_DIR))
    return metrics
