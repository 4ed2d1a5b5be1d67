"""What each training process runs: read its share of the patches, train, checkpoint, test.

:func:`train_process` runs in the processes that ``TorchDistributor`` starts (torchrun: one per
``num_processes``), with the job that :func:`fmagenre.network.training.run` planned. Each
process reads the Parquet files the driver gave its rank with pyarrow, keeps the patches of
its labelled tracks, and trains one replica of the network under ``DistributedDataParallel``
(gloo on CPUs, one thread a process; nccl on GPUs). Every epoch has as many steps in every
process (the largest share's batches; smaller shares go round again), then each process scores
its validation tracks, the confusion matrices are summed over the processes, and Cohen's
kappa of the sum decides the early stop. Rank 0 writes a checkpoint after every epoch; a
later run with the same job starts after the checkpoint's epoch. When training ends, every
process scores its test tracks with the best epoch's weights, and rank 0 saves the model
directory and returns what the report needs.

Only the training processes import this module: it imports torch.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fmagenre.audio.patches import PatchSettings, patches_from_bytes
from fmagenre.metrics.classification import cohen_kappa, confusion_of
from fmagenre.network import storage
from fmagenre.network.model import (
    Architecture,
    GenreCNN,
    PatchNormaliser,
    band_moments,
    band_statistics,
    patch_log_probs,
    track_log_probs,
)
from fmagenre.platform.threads import thread_env

log = logging.getLogger("fmagenre.network.training")

CHECKPOINT_DIR = "_checkpoint"
CHECKPOINT = "checkpoint.pt"
#: The driver's summary of the checkpoint (epoch, fingerprint), beside it.
CHECKPOINT_STATE = "state.json"


def checkpoint_uri(output: str, name: str = CHECKPOINT) -> str:
    return f"{output.rstrip('/')}/{CHECKPOINT_DIR}/{name}"


@dataclass
class Share:
    """One process' patches: training patches with their labels; validation and test tracks."""

    train_x: np.ndarray
    train_y: np.ndarray
    tracks: dict[str, list[tuple[int, int, np.ndarray]]]  # role -> (track id, class, patches)


def read_share(job: dict, rank: int) -> Share:
    """The patches of the labelled tracks in this rank's files."""
    settings = PatchSettings.from_dict(job["settings"])
    tracks, owners = job["tracks"], job["owners"]
    seen: set[int] = set()
    train_x, train_y = [], []
    held: dict[str, list] = {"validation": [], "test": []}
    for uri in job["files"][rank]:
        fs, path = storage.filesystem(uri)
        with fs.open_input_file(path) as handle:
            table = pq.ParquetFile(handle)
            for batch in table.iter_batches(columns=["track_id", "patches"], batch_size=256):
                for track_id, data in zip(
                    batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True
                ):
                    if track_id not in tracks or not data or track_id in seen:
                        continue
                    if owners.get(track_id, uri) != uri:
                        continue
                    seen.add(track_id)
                    label, role = tracks[track_id]
                    patches = patches_from_bytes(data, settings=settings)
                    if role == "train":
                        train_x.append(patches)
                        train_y.append(np.full(len(patches), label, dtype=np.int64))
                    else:
                        held[role].append((track_id, label, patches))
    shape = (0, settings.n_mels, settings.frames)
    return Share(
        train_x=np.concatenate(train_x) if train_x else np.zeros(shape, dtype=np.uint8),
        train_y=np.concatenate(train_y) if train_y else np.zeros(0, dtype=np.int64),
        tracks=held,
    )


def _all_sum(values, device) -> np.ndarray:
    tensor = torch.as_tensor(np.asarray(values, dtype=np.float64), device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy()


def _all_max(value: int, device) -> int:
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def _confusion(model, normaliser, tracks, classes: int, device) -> np.ndarray:
    """This process' confusion matrix of whole tracks (mean patch log-probabilities), summed
    over every process."""
    labels, predicted = [], []
    for _, label, patches in tracks:
        scores = track_log_probs(patch_log_probs(model, normaliser, patches, device=device))
        labels.append(label)
        predicted.append(int(np.argmax(scores)))
    return _all_sum(confusion_of(labels, predicted, classes), device)


def _average_buffers(model: nn.Module, world: int) -> None:
    """Batch norm's running statistics averaged over the processes, so that every process
    scores with the model that rank 0 saves (each updated them with its own batches)."""
    for buffer in model.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
            buffer /= world


def _kappa(confusion: np.ndarray) -> float:
    if confusion.sum() == 0:
        return float("nan")
    return cohen_kappa(confusion)


def _save_checkpoint(output: str, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    storage.write_file(checkpoint_uri(output), buffer.getvalue())
    summary = {
        "epoch": state["epoch"],
        "finished": state["finished"],
        "best_epoch": state["best_epoch"],
        "fingerprint": state["fingerprint"],
    }
    storage.write_file(checkpoint_uri(output, CHECKPOINT_STATE), json.dumps(summary).encode())


def _load_checkpoint(output: str, fingerprint: str) -> dict | None:
    data = storage.read_file(checkpoint_uri(output))
    if data is None:
        return None
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if state["fingerprint"] != fingerprint:
        raise RuntimeError(
            f"{checkpoint_uri(output)} belongs to another run (other inputs or options)"
        )
    return state


def _cpu_state(module: nn.Module) -> dict:
    return {name: value.detach().cpu().clone() for name, value in module.state_dict().items()}


def _save_model(output: str, info: dict, weights: dict) -> None:
    buffer = io.BytesIO()
    torch.save(weights, buffer)
    storage.write_file(f"{output.rstrip('/')}/network/weights.pt", buffer.getvalue())
    text = json.dumps(info, indent=2, allow_nan=False) + "\n"
    storage.write_file(f"{output.rstrip('/')}/network/network.json", text.encode())


def _setup(options: dict) -> tuple[int, int, torch.device]:
    """Pin threads, join the process group; this process' rank, the world size, the device."""
    os.environ.update(thread_env(1))
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only allowed before any parallel work
        pass
    use_gpu = options["use_gpu"]
    if use_gpu:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_gpu else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def train_process(job: dict) -> dict:
    """Train with this process' share of the job; return the run's results (rank 0's).

    ``job`` (built by :func:`fmagenre.network.training.run`): ``files`` by rank, ``tracks``
    (track id -> class, role), ``owners``, ``genres``, ``settings``, ``class_weights``,
    ``architecture``, ``options`` (epochs, batch_size, learning_rate, weight_decay, patience,
    seed, stop_after, use_gpu), ``output`` (the model directory's URI), ``fingerprint`` and
    ``info`` (what ``network.json`` adds to the network's own fields).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    options = job["options"]
    rank, world, device = _setup(options)
    try:
        result = _train(job, options, rank, world, device)
        # Every process returns rank 0's results, rebuilt from one JSON text: in local mode
        # TorchDistributor's processes all write their output to one file, so the bytes must
        # be the same whichever writes last.
        text = [json.dumps(result) if rank == 0 else None]
        dist.broadcast_object_list(text, src=0)
        return json.loads(text[0])
    finally:
        dist.destroy_process_group()


def _train(job: dict, options: dict, rank: int, world: int, device) -> dict:
    started = time.perf_counter()
    output, classes = job["output"], len(job["genres"])
    share = read_share(job, rank)
    counts = _all_sum([len(share.train_y) > 0, len(share.train_y)], device)
    if counts[0] < world:
        raise RuntimeError("a training process has no training patch: use fewer processes")
    read_s = time.perf_counter() - started
    if rank == 0:
        log.info(
            "%d processes read %d training patches (%.1f s in rank 0)", world, counts[1], read_s
        )
    state = _load_checkpoint(output, job["fingerprint"])
    if state is None:
        moments = band_moments(share.train_x)
        total = _all_sum(np.concatenate([moments[0], moments[1], [moments[2]]]), device)
        bands = len(moments[0])
        mean, std = band_statistics(total[:bands], total[bands : 2 * bands], int(total[-1]))
        state = {
            "fingerprint": job["fingerprint"],
            "epoch": 0,
            "finished": False,
            "normalisation": {"mean": mean, "std": std},
            "model": None,
            "optimizer": None,
            "best_state": None,
            "best_kappa": -math.inf,
            "best_epoch": 0,
            "bad_epochs": 0,
            "history": [],
            "runs": 0,
        }
    resumed_from = state["epoch"]
    state["runs"] += 1
    normaliser = PatchNormaliser(**state["normalisation"])
    torch.manual_seed(options["seed"])
    model = GenreCNN(Architecture.from_dict(job["architecture"])).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=options["learning_rate"], weight_decay=options["weight_decay"]
    )
    if state["model"] is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    ddp = DistributedDataParallel(
        model, device_ids=[device.index] if device.index is not None else None
    )
    loss_of = nn.CrossEntropyLoss(
        weight=torch.tensor(job["class_weights"], dtype=torch.float32, device=device)
    )
    batch = options["batch_size"]
    steps = math.ceil(_all_max(len(share.train_y), device) / batch)
    epochs_run = 0
    if rank == 0 and resumed_from:
        log.info("resuming after epoch %d (%s)", resumed_from, checkpoint_uri(output))
    while not state["finished"]:
        epoch = state["epoch"] + 1
        if options["stop_after"] is not None and epochs_run >= options["stop_after"]:
            break
        epoch_started = time.perf_counter()
        rng = np.random.default_rng([options["seed"], epoch, rank])
        order = np.resize(rng.permutation(len(share.train_y)), steps * batch)
        torch.manual_seed(options["seed"] * 7919 + epoch * 31 + rank)
        ddp.train()
        loss_sum = 0.0
        for step in range(steps):
            chosen = np.sort(order[step * batch : (step + 1) * batch])
            x = normaliser(share.train_x[chosen]).to(device)
            y = torch.from_numpy(share.train_y[chosen]).to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_of(ddp(x), y)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.item())
        train_s = time.perf_counter() - epoch_started
        _average_buffers(model, world)
        model.eval()
        confusion = _confusion(model, normaliser, share.tracks["validation"], classes, device)
        loss_mean = float(_all_sum([loss_sum / steps], device)[0]) / world
        kappa = _kappa(confusion)
        improved = not math.isnan(kappa) and kappa > state["best_kappa"] + 1e-9
        state["epoch"] = epoch
        if improved:
            state.update(best_kappa=kappa, best_epoch=epoch, bad_epochs=0)
            state["best_state"] = _cpu_state(model)
        else:
            state["bad_epochs"] += 1
        record = {
            "epoch": epoch,
            "run": state["runs"],
            "loss": round(loss_mean, 5),
            "validation_kappa": None if math.isnan(kappa) else round(kappa, 5),
            "validation_accuracy": round(float(np.trace(confusion) / max(confusion.sum(), 1)), 5),
            "seconds": round(time.perf_counter() - epoch_started, 3),
            "patches_per_second_per_process": round(steps * batch / train_s, 1),
        }
        state["history"].append(record)
        stop = state["bad_epochs"] >= options["patience"]
        state["finished"] = epoch >= options["epochs"] or stop
        state["stopped_early"] = stop and epoch < options["epochs"]
        state["model"], state["optimizer"] = _cpu_state(model), optimizer.state_dict()
        epochs_run += 1
        if rank == 0:
            log.info(
                "epoch %d/%d: loss %.4f, validation kappa %s, accuracy %.3f, %.1f s%s",
                epoch,
                options["epochs"],
                record["loss"],
                "n/a" if record["validation_kappa"] is None else f"{kappa:.4f}",
                record["validation_accuracy"],
                record["seconds"],
                " (best)" if improved else "",
            )
            _save_checkpoint(output, state)
        dist.barrier()
    result = {
        "finished": state["finished"],
        "epoch": state["epoch"],
        "resumed_from": resumed_from,
        "first_epoch": resumed_from + 1,
        "epochs_run": epochs_run,
        "history": state["history"],
        "best_epoch": state["best_epoch"],
        "best_kappa": None if math.isinf(state["best_kappa"]) else state["best_kappa"],
        "stopped_early": bool(state.get("stopped_early", False)),
        "processes": world,
        "train_patches": int(counts[1]),
        "read_seconds": round(read_s, 3),
    }
    if not state["finished"]:
        return result
    if state["best_state"] is None:  # no epoch had a kappa: keep the last
        state["best_state"], state["best_epoch"] = _cpu_state(model), state["epoch"]
    model.load_state_dict(state["best_state"])
    model.eval()
    test = _confusion(model, normaliser, share.tracks["test"], classes, device)
    if rank == 0:
        info = {
            **job["info"],
            "normalisation": state["normalisation"],
            "epoch": state["best_epoch"],
            "validation_kappa": result["best_kappa"],
        }
        _save_model(output, info, state["best_state"])
    dist.barrier()
    result["test_confusion"] = test.tolist()
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result
