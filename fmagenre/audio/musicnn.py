"""musicnn's ``MSD_musicnn`` tagger in NumPy: per 3 s patch, its 200-value penultimate layer
and its 50 tag scores, without TensorFlow (or torch).

The model is Pons & Serra's musicnn (2019), trained on the Million Song Dataset's 50 top tags,
as published in the ``musicnn`` 0.1.0 package (ISC licence, ``musicnn_data/LICENSE.md``); its
weights were converted once by :mod:`fmagenre.audio.musicnn_convert` into
``musicnn_data/msd_musicnn.npz``.

Input, as musicnn's ``extractor`` computes it: the audio at 16 kHz (resampled here with soxr's
high quality, as :mod:`fmagenre.audio.patches` does; musicnn's ``librosa.load`` used resampy's
``kaiser_best``), its power mel spectrogram (librosa: n_fft 512, hop 256, Hann, centred with
reflection padding as librosa 0.8 did, 96 Slaney mel bands, 0 Hz to 8 kHz), each value rounded
to float16 and then ``log10(10000 x + 1)`` in float32 (NumPy 1.16, which musicnn required,
promotes ``10000 * float16`` to float32; NumPy 2 would keep float16 and overflow above 6.55).
Patches are 187 frames (2.99 s), back to back from frame 0 without overlap; the frames after
the last whole patch are left out. Audio shorter than one patch (47,616 samples at 16 kHz,
2.976 s) gives :class:`MusicnnError` ``too_short``: musicnn's extractor fails there with an
``UnboundLocalError``. Digital silence is computed like anything else.

Network (``musicnn.models.build_musicnn``; every batch normalisation at inference, epsilon
0.001): batch normalisation of the input; the timbral front end, two convolutions over the
time-padded input (7 frames x 38 and x 67 mel bands, 204 filters each, valid) and the temporal
one, three over time only (128, 64 and 32 frames, 51 filters each, 'same'), each followed by
ReLU, batch normalisation and the maximum over frequency: 561 channels a frame. The mid end,
three convolutions of 64 filters over 7 frames (ReLU, batch normalisation; the second and third
residual), concatenated with the front end: 753 channels. The back end: maximum and mean over
time (1,506), batch normalisation, dense 200 + ReLU + batch normalisation (the penultimate layer,
the embedding here), dense 50 + sigmoid (the tags).

Cost: convolutions are one matrix product each over sliding windows (im2col) in float32; the
maxima over frequency are taken before the bias, ReLU and normalisation, which are monotonic per
channel (a filter whose normalisation scale is negative is negated, so that its maximum gives
the minimum it needs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import librosa
import numpy as np
import soxr

from fmagenre.audio.names import MUSICNN_EMBEDDING, MUSICNN_TAGS

__all__ = [
    "EMBEDDING_SIZE",
    "MIN_SAMPLES",
    "N_MELS",
    "PATCH_FRAMES",
    "PATCH_SECONDS",
    "SAMPLE_RATE",
    "SUMMARY_SIZE",
    "TAGS",
    "MusicnnError",
    "PatchOutputs",
    "forward",
    "log_mel",
    "patch_outputs",
    "patches",
    "summary",
    "weights",
]

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
#: Frames of one patch: ``librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1``.
PATCH_FRAMES = 187
#: Seconds between the starts of consecutive patches (2.992 s).
PATCH_SECONDS = PATCH_FRAMES * HOP / SAMPLE_RATE
#: Fewest samples at 16 kHz that give one patch (centred frames: ``1 + n // HOP``).
MIN_SAMPLES = (PATCH_FRAMES - 1) * HOP
#: The embedding's size, and the Million Song Dataset tags in the model's output order, as
#: musicnn publishes them (named in :mod:`fmagenre.audio.names` with the tables' columns).
EMBEDDING_SIZE = MUSICNN_EMBEDDING
TAGS = MUSICNN_TAGS
#: Values of :func:`summary`: mean and standard deviation of the embedding, mean of the tags.
SUMMARY_SIZE = 2 * EMBEDDING_SIZE + len(TAGS)
#: The shipped weights (:mod:`fmagenre.audio.musicnn_convert`).
WEIGHTS_PATH = Path(__file__).resolve().parent / "musicnn_data" / "msd_musicnn.npz"

_EPSILON = 1e-3
_TIMBRAL = (38, 67)
_TEMPORAL = (128, 64, 32)


class MusicnnError(ValueError):
    """Audio the model cannot take; ``reason`` is ``too_short``."""

    def __init__(self, reason: str, detail: str):
        if reason != "too_short":
            raise ValueError(f"unknown reason {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class PatchOutputs(NamedTuple):
    """The model's outputs for the patches of one signal."""

    #: (n,) float64: start of each patch in seconds.
    starts: np.ndarray
    #: (n, 200) float32: the penultimate layer.
    embeddings: np.ndarray
    #: (n, 50) float32: the tag scores (sigmoid), in :data:`TAGS` order.
    tags: np.ndarray


@lru_cache(maxsize=1)
def weights() -> dict[str, np.ndarray]:
    """The shipped weights by name (read-only float32 arrays; loaded once per process).

    Raises
    ------
    ValueError
        When the file lacks an array or holds one of another shape.
    """
    from fmagenre.audio.musicnn_convert import EXPECTED

    with np.load(WEIGHTS_PATH) as data:
        arrays = {name: data[name] for name in data.files}
    for name, (_, shape) in EXPECTED.items():
        if name not in arrays or arrays[name].shape != shape:
            found = arrays[name].shape if name in arrays else "nothing"
            raise ValueError(f"{WEIGHTS_PATH}: {name} should be {shape}, found {found}")
    for array in arrays.values():
        array.flags.writeable = False
    return arrays


def _bn(w: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray]:
    """Scale and shift of an inference batch normalisation."""
    gamma, beta = w[f"{name}/gamma"], w[f"{name}/beta"]
    mean, var = w[f"{name}/moving_mean"], w[f"{name}/moving_variance"]
    scale = gamma / np.sqrt(var + np.float32(_EPSILON))
    return scale.astype(np.float32), (beta - mean * scale).astype(np.float32)


@dataclass(frozen=True)
class _Pooled:
    """A convolution whose output is maximised over frequency: the kernel as a matrix with the
    columns of negative-scale filters negated, their sign, bias, and normalisation."""

    kernel: np.ndarray
    sign: np.ndarray
    bias: np.ndarray
    scale: np.ndarray
    shift: np.ndarray

    @classmethod
    def make(cls, w: dict[str, np.ndarray], name: str, rows: int) -> _Pooled:
        scale, shift = _bn(w, f"{name}_bn")
        sign = np.where(scale < 0, np.float32(-1), np.float32(1))
        kernel = np.ascontiguousarray(w[f"{name}/kernel"].reshape(rows, -1) * sign)
        return cls(kernel, sign, w[f"{name}/bias"], scale, shift)

    def finish(self, maxima: np.ndarray) -> np.ndarray:
        """Bias, ReLU and normalisation of the (signed) maxima over frequency."""
        out = maxima * self.sign + self.bias
        np.maximum(out, 0, out=out)
        out *= self.scale
        out += self.shift
        return out


@lru_cache(maxsize=1)
def _model() -> dict:
    w = weights()
    model: dict = {"input": _bn(w, "input_bn")}
    model["timbral"] = [_Pooled.make(w, f"timbral{k}", 7 * k) for k in _TIMBRAL]
    model["temporal"] = [_Pooled.make(w, f"temporal{n}", n) for n in _TEMPORAL]
    mid = []
    for k in (1, 2, 3):
        kernel = w[f"mid{k}/kernel"][:, :, 0, :]  # (7, channels, 64)
        # Windows come as (channel, frame): the kernel's rows in that order.
        matrix = np.ascontiguousarray(kernel.transpose(1, 0, 2).reshape(-1, kernel.shape[2]))
        mid.append((matrix, w[f"mid{k}/bias"], *_bn(w, f"mid{k}_bn")))
    model["mid"] = mid
    model["pool"] = _bn(w, "pool_bn")
    model["dense200"] = (w["dense200/kernel"], w["dense200/bias"], *_bn(w, "dense200_bn"))
    model["dense50"] = (w["dense50/kernel"], w["dense50/bias"])
    return model


def _check_signal(y: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"y must be a 1-D floating point signal, got {y.dtype} {y.shape}")
    if isinstance(sr, bool) or not isinstance(sr, int | np.integer) or sr < 1:
        raise ValueError(f"sr must be a positive integer, got {sr!r}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or infinite samples")
    return y, int(sr)


def log_mel(y: np.ndarray, sr: int) -> np.ndarray:
    """musicnn's input representation of a signal: ``log10(10000 x + 1)`` of its float16-rounded
    mel power spectrogram at 16 kHz (see the module's documentation).

    Parameters
    ----------
    y : np.ndarray
        Mono signal, 1-D floating point, finite.
    sr : int
        Its sample rate in Hz (any: it is resampled to 16 kHz).

    Returns
    -------
    np.ndarray
        float32, ``(frames, 96)``: ``1 + n // 256`` frames for ``n`` samples at 16 kHz.

    Raises
    ------
    MusicnnError
        ``too_short`` when the signal is shorter than one patch (2.976 s).
    ValueError
        On arguments that do not fit.
    """
    y, sr = _check_signal(y, sr)
    length = y.size if sr == SAMPLE_RATE else math.ceil(y.size * SAMPLE_RATE / sr)
    if length < MIN_SAMPLES:
        raise MusicnnError(
            "too_short", f"{y.size / sr:.4g} s of audio, less than one patch of 2.976 s"
        )
    y = np.ascontiguousarray(y, dtype=np.float32)
    if sr != SAMPLE_RATE:
        y = soxr.resample(y, sr, SAMPLE_RATE, quality="soxr_hq")
    mel = librosa.feature.melspectrogram(
        y=y, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, pad_mode="reflect"
    )
    rounded = mel.T.astype(np.float16).astype(np.float32)
    rounded *= np.float32(10000)
    rounded += np.float32(1)
    return np.log10(rounded, out=rounded)


def patches(spectrogram: np.ndarray) -> np.ndarray:
    """The model's input patches of a :func:`log_mel` spectrogram: 187 frames each, back to
    back from frame 0; the frames after the last whole patch are left out.

    Parameters
    ----------
    spectrogram : np.ndarray
        ``(frames, 96)``.

    Returns
    -------
    np.ndarray
        ``(frames // 187, 187, 96)`` float32.

    Raises
    ------
    MusicnnError
        ``too_short`` when the spectrogram has fewer than 187 frames.
    ValueError
        On a spectrogram of another shape.
    """
    spectrogram = np.asarray(spectrogram)
    if spectrogram.ndim != 2 or spectrogram.shape[1] != N_MELS:
        raise ValueError(f"spectrogram must be (frames, {N_MELS}), got {spectrogram.shape}")
    count = spectrogram.shape[0] // PATCH_FRAMES
    if count == 0:
        raise MusicnnError(
            "too_short",
            f"{spectrogram.shape[0]} frames, fewer than one patch of {PATCH_FRAMES}",
        )
    whole = spectrogram[: count * PATCH_FRAMES].astype(np.float32, copy=False)
    return whole.reshape(count, PATCH_FRAMES, N_MELS)


def _windows(x: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Sliding windows of ``length`` along ``axis``, last in the result (a view)."""
    return np.lib.stride_tricks.sliding_window_view(x, length, axis=axis)


def _front_end(x: np.ndarray, model: dict) -> np.ndarray:
    """(n, 187, 96) normalised input -> (n, 187, 561)."""
    n, frames, mels = x.shape
    out = []
    padded = np.pad(x, ((0, 0), (3, 3), (0, 0)))
    for width, conv in zip(_TIMBRAL, model["timbral"], strict=True):
        bands = mels - width + 1
        cols = np.lib.stride_tricks.sliding_window_view(padded, (7, width), axis=(1, 2))
        z = cols.reshape(n * frames * bands, 7 * width) @ conv.kernel
        out.append(conv.finish(z.reshape(n, frames, bands, -1).max(axis=2)))
    # Temporal: windows of 128 frames over the input padded as 'same' pads the longest kernel
    # (63 before, 64 after); the shorter kernels use the middle of each window.
    longest = _TEMPORAL[0]
    before = (longest - 1) // 2
    padded = np.pad(x.transpose(0, 2, 1), ((0, 0), (0, 0), (before, longest - 1 - before)))
    cols = _windows(padded, longest, axis=2).reshape(n * mels * frames, longest)
    for length, conv in zip(_TEMPORAL, model["temporal"], strict=True):
        first = before - (length - 1) // 2
        z = cols[:, first : first + length] @ conv.kernel
        out.append(conv.finish(z.reshape(n, mels, frames, -1).max(axis=1)))
    return np.concatenate(out, axis=2)


def _mid_end(front: np.ndarray, model: dict) -> list[np.ndarray]:
    """(n, 187, 561) -> the front end and the three mid-end layers (64 channels each)."""
    n, frames, _ = front.shape
    layers, previous = [front], front
    for k, (kernel, bias, scale, shift) in enumerate(model["mid"]):
        padded = np.pad(previous, ((0, 0), (3, 3), (0, 0)))
        cols = _windows(padded, 7, axis=1).reshape(n * frames, -1)
        out = cols @ kernel
        out += bias
        np.maximum(out, 0, out=out)
        out *= scale
        out += shift
        out = out.reshape(n, frames, -1)
        if k:  # residual from the second layer on
            out += previous
        layers.append(out)
        previous = out
    return layers


def forward(patches: np.ndarray, *, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The network on input patches: the penultimate layer and the tag scores.

    Parameters
    ----------
    patches : np.ndarray
        ``(n, 187, 96)`` floating point, as :func:`patches` gives them.
    batch : int
        Patches computed together (memory: about 50 MB a patch). One is the fastest: each
        convolution is already a product of thousands of rows, and one patch's intermediates
        stay in the caches (0.55 s of one core a minute of audio, against 0.75 s with 4).

    Returns
    -------
    embeddings : np.ndarray
        ``(n, 200)`` float32.
    tags : np.ndarray
        ``(n, 50)`` float32 in [0, 1], in :data:`TAGS` order.

    Raises
    ------
    ValueError
        On arguments that do not fit.
    """
    patches = np.asarray(patches)
    if patches.ndim != 3 or patches.shape[1:] != (PATCH_FRAMES, N_MELS):
        raise ValueError(f"patches must be (n, {PATCH_FRAMES}, {N_MELS}), got {patches.shape}")
    if not np.issubdtype(patches.dtype, np.floating):
        raise ValueError(f"patches must be floating point, got {patches.dtype}")
    if isinstance(batch, bool) or not isinstance(batch, int | np.integer) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    model = _model()
    in_scale, in_shift = model["input"]
    embeddings = np.empty((patches.shape[0], EMBEDDING_SIZE), dtype=np.float32)
    tags = np.empty((patches.shape[0], len(TAGS)), dtype=np.float32)
    for lo in range(0, patches.shape[0], batch):
        x = patches[lo : lo + batch].astype(np.float32) * in_scale + in_shift
        layers = _mid_end(_front_end(x, model), model)
        # Maximum and mean over time of each of the 753 channels, interleaved: musicnn stacks
        # them on a last axis (753, 2) and flattens.
        maxima = np.concatenate([m.max(axis=1) for m in layers], axis=1)
        means = np.concatenate([m.mean(axis=1) for m in layers], axis=1)
        pooled = np.stack([maxima, means], axis=2).reshape(len(maxima), -1)
        scale, shift = model["pool"]
        kernel, bias, scale2, shift2 = model["dense200"]
        hidden = np.maximum((pooled * scale + shift) @ kernel + bias, 0) * scale2 + shift2
        kernel, bias = model["dense50"]
        logits = hidden @ kernel + bias
        embeddings[lo : lo + batch] = hidden
        tags[lo : lo + batch] = 1 / (1 + np.exp(-logits))
    return embeddings, tags


def patch_outputs(y: np.ndarray, sr: int, *, batch: int = 1) -> PatchOutputs:
    """The model's embedding and tags for every patch of a signal.

    Parameters
    ----------
    y : np.ndarray
        Mono signal, 1-D floating point, finite.
    sr : int
        Its sample rate in Hz (any: it is resampled to 16 kHz).
    batch : int
        Patches computed together (:func:`forward`).

    Returns
    -------
    PatchOutputs
        ``starts`` (s), ``embeddings`` (n, 200) and ``tags`` (n, 50), one row a patch.

    Raises
    ------
    MusicnnError
        ``too_short`` when the signal is shorter than one patch (2.976 s).
    ValueError
        On arguments that do not fit.
    """
    if isinstance(batch, bool) or not isinstance(batch, int | np.integer) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    inputs = patches(log_mel(y, sr))
    embeddings, tags = forward(inputs, batch=batch)
    starts = np.arange(inputs.shape[0]) * PATCH_SECONDS
    return PatchOutputs(starts, embeddings, tags)


def summary(embeddings: np.ndarray, tags: np.ndarray) -> np.ndarray:
    """A track's 450 values: the mean of the embeddings over its patches, their standard
    deviation (population), then the mean of the tags.

    Parameters
    ----------
    embeddings : np.ndarray
        ``(n, 200)``, n >= 1.
    tags : np.ndarray
        ``(n, 50)``, the same n.

    Returns
    -------
    np.ndarray
        float32, ``(450,)``.

    Raises
    ------
    ValueError
        On arrays of other shapes.
    """
    embeddings, tags = np.asarray(embeddings), np.asarray(tags)
    if embeddings.ndim != 2 or embeddings.shape[1] != EMBEDDING_SIZE or not len(embeddings):
        raise ValueError(f"embeddings must be (n >= 1, {EMBEDDING_SIZE}), got {embeddings.shape}")
    if tags.shape != (embeddings.shape[0], len(TAGS)):
        raise ValueError(
            f"tags must be ({embeddings.shape[0]}, {len(TAGS)}) like embeddings, got {tags.shape}"
        )
    embeddings, tags = embeddings.astype(np.float64), tags.astype(np.float64)
    parts = (embeddings.mean(axis=0), embeddings.std(axis=0), tags.mean(axis=0))
    return np.concatenate(parts).astype(np.float32)
