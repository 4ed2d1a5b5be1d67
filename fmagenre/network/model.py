"""The network: a small CNN that maps a log-mel patch to genre log-probabilities.

Input ``(batch, 1, n_mels, frames)``: uint8 patches as ``q / 255``, standardised per mel band
with the training set's mean and std (:class:`PatchNormaliser`). Four blocks of
``conv 3x3 -> batch norm -> ReLU -> max pool 2x2`` (16, 32, 64, 128 channels at the defaults),
then the mean and the max over the remaining time-frequency cells (256 values), dropout and one
linear layer to the genres' logits: 101,504 parameters for 16 genres. A track's genre is the
mean of its patches' log-probabilities (:func:`track_log_probs`).

Only the network's users import this module: it imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

#: Channels of the convolution blocks.
CHANNELS = (16, 32, 64, 128)


@dataclass(frozen=True)
class Architecture:
    """What builds a :class:`GenreCNN` (stored in ``network.json``)."""

    classes: int
    n_mels: int = 96
    frames: int = 128
    channels: tuple[int, ...] = CHANNELS
    dropout: float = 0.3

    def __post_init__(self):
        if self.classes < 2:
            raise ValueError(f"classes must be at least 2, got {self.classes}")
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels must be positive, got {self.channels}")
        smallest = 2 ** len(self.channels)
        if self.n_mels < smallest or self.frames < smallest:
            raise ValueError(
                f"patches of {self.n_mels} x {self.frames} are too small for"
                f" {len(self.channels)} pooling blocks (at least {smallest} x {smallest})"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, data: Mapping) -> Architecture:
        return cls(**{**data, "channels": tuple(data["channels"])})


class GenreCNN(nn.Module):
    """The CNN of the module's documentation; ``forward`` returns logits ``(batch, classes)``."""

    def __init__(self, architecture: Architecture):
        super().__init__()
        self.architecture = architecture
        blocks, previous = [], 1
        for width in architecture.channels:
            blocks += [
                nn.Conv2d(previous, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            previous = width
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(architecture.dropout)
        self.classifier = nn.Linear(2 * previous, architecture.classes)

    @property
    def embedding_width(self) -> int:
        """Values of :meth:`embed`: the mean and the max of each last block's channel."""
        return self.classifier.in_features

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer ``(batch, embedding_width)``: what the classifier reads."""
        cells = self.features(x).flatten(2)
        return torch.cat([cells.mean(dim=2), cells.amax(dim=2)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.embed(x)))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class PatchNormaliser:
    """``q / 255`` standardised per mel band: ``(x - mean[band]) / std[band]``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        if self.mean.ndim != 1 or self.mean.shape != self.std.shape:
            raise ValueError("mean and std are one value per mel band each")
        if not np.all(self.std > 0):
            raise ValueError("std must be positive")

    def __call__(self, patches: np.ndarray) -> torch.Tensor:
        """uint8 ``(n, n_mels, frames)`` -> float32 ``(n, 1, n_mels, frames)``."""
        patches = np.asarray(patches)
        if patches.dtype != np.uint8 or patches.ndim != 3:
            raise ValueError(
                f"patches are uint8 (n, n_mels, frames), got {patches.dtype} {patches.shape}"
            )
        if patches.shape[1] != self.mean.size:
            raise ValueError(f"patches have {patches.shape[1]} mel bands, not {self.mean.size}")
        x = patches.astype(np.float32) / np.float32(255)
        x = (x - self.mean[:, None]) / self.std[:, None]
        return torch.from_numpy(x[:, None])


def band_moments(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-band sums of ``q / 255`` and of its square over uint8 patches, and the count of
    values per band: what :func:`band_statistics` turns into mean and std."""
    x = np.asarray(patches, dtype=np.float64) / 255.0
    return x.sum(axis=(0, 2)), np.square(x).sum(axis=(0, 2)), x.shape[0] * x.shape[2]


def band_statistics(
    sums: np.ndarray, squares: np.ndarray, count: int, *, floor: float = 1e-3
) -> tuple[list[float], list[float]]:
    """Mean and std per band from :func:`band_moments` summed over every training patch."""
    if count < 1:
        raise ValueError("no training value to normalise with")
    mean = sums / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return mean.tolist(), np.maximum(std, floor).tolist()


def _patch_outputs(model, normaliser, patches, layer, width, batch, device) -> np.ndarray:
    if model.training:
        raise RuntimeError("the network scores patches in eval mode")
    out = []
    with torch.inference_mode():
        for start in range(0, len(patches), batch):
            x = normaliser(patches[start : start + batch])
            if device is not None:
                x = x.to(device)
            out.append(layer(x).cpu().numpy())
    if not out:
        return np.zeros((0, width), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)


def patch_log_probs(
    model: GenreCNN,
    normaliser: PatchNormaliser,
    patches: np.ndarray,
    *,
    batch: int = 64,
    device: torch.device | None = None,
) -> np.ndarray:
    """float32 ``(n, classes)`` log-probabilities of each patch; eval mode, no gradient; the
    model on ``device`` (None: the CPU)."""

    def layer(x):
        return torch.log_softmax(model(x), dim=1)

    classes = model.architecture.classes
    return _patch_outputs(model, normaliser, patches, layer, classes, batch, device)


def patch_embeddings(
    model: GenreCNN, normaliser: PatchNormaliser, patches: np.ndarray, *, batch: int = 64
) -> np.ndarray:
    """float32 ``(n, model.embedding_width)``: each patch's last hidden layer
    (:meth:`GenreCNN.embed`) on the CPU; eval mode, no gradient."""
    width = model.embedding_width
    return _patch_outputs(model, normaliser, patches, model.embed, width, batch, None)


def track_log_probs(log_probs: np.ndarray) -> np.ndarray:
    """float32 ``(classes,)``: the mean of a track's patch log-probabilities."""
    if len(log_probs) == 0:
        raise ValueError("a track needs at least one patch")
    return np.asarray(log_probs, dtype=np.float32).mean(axis=0, dtype=np.float32)
