"""Log-mel patches of a track: the input of the spectrogram network, in bounded storage.

One fixed setting for every file, whatever its source rate (:class:`PatchSettings`): the audio
is resampled to 22,050 Hz (soxr, high quality, as ``librosa.resample``'s default), its power
STFT (n_fft 2048, hop 512, Hann, centred with zero padding) goes through librosa's Slaney mel
bank (96 bands, 0 Hz to Nyquist), then to dB (``10 * log10(max(power, 1e-10))``, no reference,
no top-db cut). A patch is 128 frames (128 x 512 / 22,050 = 2.97 s); a track gives ``count``
(16) patches evenly spaced over its analysed audio: the first starts at frame 0, the last ends
at the last frame, so they overlap on tracks shorter than 16 patches. A track shorter than one
patch has none (error ``too_short``: no padding), digital silence has none (``silent``).

Values are quantised to uint8 over a fixed dB range, clipped: ``q = round((dB - db_min) /
step)`` with ``step = (db_max - db_min) / 255``. The default range, -80 to +47.5 dB, is
0.5 dB a step. Measured on generated music (:mod:`fmagenre.synthetic.music`, the ten styles, 10
s each at 44.1 and 22.05 kHz, raw and through MP3) the values lie between -55.4 and +31.3 dB
(0.1% quantile -47.8, 99.9% quantile +25.8); a full-scale sine reaches +39.6 dB and a
full-scale square wave +41.8 dB. So music within [-1, 1] never clips at the top (6 dB to
spare), and the bottom leaves 25 dB below the quietest generated value for fades and quiet
recordings; lower values (MP3's empty top bands, near-silence) are all 0.

Storage: ``count x n_mels x frames`` bytes, 16 x 96 x 128 = 196,608 bytes (192 KiB) a track
at the default, whatever its length.

Cost: only the audio that the patches cover is resampled and transformed, in merged runs
(a 10-minute track costs its 16 x 2.97 s, not 10 minutes). Resampling a run gives the same
samples as resampling the whole signal: a run starts on a sample where the two rates' grids
meet, with 50 ms of context on each side.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from functools import lru_cache

import librosa
import numpy as np
import scipy.fft
import soxr

__all__ = [
    "PatchError",
    "PatchSettings",
    "log_mel_patches",
    "patches_from_bytes",
    "patches_to_bytes",
]

#: Error reasons of :class:`PatchError`.
REASONS = ("too_short", "silent")
#: Context resampled on each side of a run of patches, in seconds of the target rate.
_MARGIN_S = 0.05
_AMIN = 1e-10


@dataclass(frozen=True)
class PatchSettings:
    """How log-mel patches are computed and stored (see the module's documentation)."""

    #: Every file is resampled to this rate (Hz).
    sample_rate: int = 22050
    n_fft: int = 2048
    hop: int = 512
    #: Slaney mel bands from 0 Hz to sample_rate / 2.
    n_mels: int = 96
    #: STFT frames per patch.
    frames: int = 128
    #: Patches per track, evenly spaced over its analysed audio.
    count: int = 16
    #: dB range of the uint8 quantisation; values outside are clipped.
    db_min: float = -80.0
    db_max: float = 47.5

    def __post_init__(self):
        for name in ("sample_rate", "n_fft", "hop", "n_mels", "frames", "count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_fft % 2:
            raise ValueError(f"n_fft must be even, got {self.n_fft}")
        if self.hop > self.n_fft:
            raise ValueError(f"hop must be at most n_fft ({self.n_fft}), got {self.hop}")
        if self.n_mels > self.n_fft // 2 + 1:
            raise ValueError(f"n_mels must be at most n_fft / 2 + 1, got {self.n_mels}")
        if not (math.isfinite(self.db_min) and math.isfinite(self.db_max)):
            raise ValueError(f"db_min and db_max must be finite, got {self.db_min}, {self.db_max}")
        if not self.db_min < self.db_max:
            raise ValueError(f"db_min must be below db_max, got {self.db_min}..{self.db_max}")

    @property
    def patch_samples(self) -> int:
        """Samples at :attr:`sample_rate` that one patch spans (``frames x hop``)."""
        return self.frames * self.hop

    @property
    def patch_seconds(self) -> float:
        """Seconds one patch spans (2.97 s at the defaults)."""
        return self.patch_samples / self.sample_rate

    @property
    def db_step(self) -> float:
        """dB of one quantisation step."""
        return (self.db_max - self.db_min) / 255

    @property
    def patch_bytes(self) -> int:
        """Bytes of one stored patch."""
        return self.n_mels * self.frames

    def window_count(self, seconds: float) -> int:
        """Patches of a timeline window of ``seconds``, evenly spaced inside it:
        ``max(1, round(seconds / patch_seconds))``."""
        if not seconds > 0:
            raise ValueError(f"seconds must be more than 0, got {seconds}")
        return max(1, round(seconds / self.patch_seconds))

    def key(self) -> str:
        """The settings as stored in a feature table's ``settings`` column."""
        return (
            f"patches:sr={self.sample_rate},fft={self.n_fft},hop={self.hop},mels={self.n_mels},"
            f"frames={self.frames},count={self.count},db={self.db_min:g}..{self.db_max:g}"
        )

    @classmethod
    def from_key(cls, text: str) -> PatchSettings:
        """The settings of a :meth:`key`, also found inside a table's ``settings`` string.

        Raises
        ------
        ValueError
            When ``text`` holds no patch key.
        """
        found = re.search(
            r"patches:sr=(\d+),fft=(\d+),hop=(\d+),mels=(\d+),frames=(\d+),count=(\d+),"
            r"db=([-+.\deE]+)\.\.([-+.\deE]+)",
            text or "",
        )
        if found is None:
            raise ValueError(f"no patch settings in {text!r}")
        *ints, db_min, db_max = found.groups()
        names = ("sample_rate", "n_fft", "hop", "n_mels", "frames", "count")
        values = dict(zip(names, map(int, ints), strict=True))
        return cls(**values, db_min=float(db_min), db_max=float(db_max))

    def to_dict(self) -> dict:
        """The settings as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PatchSettings:
        """Settings from :meth:`to_dict`; unknown keys raise ValueError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown patch settings {', '.join(unknown)}")
        values = {k: float(v) if k in ("db_min", "db_max") else v for k, v in data.items()}
        return cls(**values)


class PatchError(ValueError):
    """Audio that gives no patches; ``reason`` is ``too_short`` or ``silent``."""

    def __init__(self, reason: str, detail: str):
        if reason not in REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)


@lru_cache(maxsize=8)
def _window(n_fft: int) -> np.ndarray:
    return librosa.filters.get_window("hann", n_fft, fftbins=True).astype(np.float32)


def _starts(n_frames: int, frames: int, count: int) -> list[int]:
    """First frames of ``count`` patches evenly spaced over ``n_frames`` (first at 0, last at
    the end; a single patch in the middle)."""
    last = n_frames - frames
    if count == 1:
        return [last // 2]
    return [round(k * last / (count - 1)) for k in range(count)]


def _runs(spans: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """Sorted spans merged where they overlap or lie less than ``gap`` apart."""
    merged: list[list[int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1] + gap:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [(lo, hi) for lo, hi in merged]


def _resampled(x: np.ndarray, sr: int, settings: PatchSettings, lo: int, hi: int) -> np.ndarray:
    """Samples ``lo:hi`` of ``x`` resampled to the settings' rate, as
    ``librosa.resample(x, res_type="soxr_hq")[lo:hi]`` gives them (zeros past its end)."""
    target = settings.sample_rate
    if sr == target:
        part = x[lo:hi]
    else:
        total = math.ceil(x.size * (target / sr))  # librosa.resample's length
        common = math.gcd(sr, target)
        step_in, step_out = sr // common, target // common
        margin = math.ceil(_MARGIN_S * target)
        first = max(0, lo - margin) // step_out * step_out  # on both rates' grid
        end = x.size if hi + margin >= total else math.ceil((hi + margin) * sr / target)
        source = x[first // step_out * step_in : min(x.size, end)]
        part = soxr.resample(source, sr, target, quality="soxr_hq")[lo - first : hi - first]
    if part.size < hi - lo:
        part = np.pad(part, (0, hi - lo - part.size))
    return part


def _power_frames(samples: np.ndarray, settings: PatchSettings) -> np.ndarray:
    """Power STFT of consecutive frames of float32 ``samples`` (frame k starts at k x hop), as
    (frames, bins) float32.

    A float32 FFT, five times faster than ``librosa.stft``'s float64 one; its rounding is far
    below a quantisation step.
    """
    frames = np.lib.stride_tricks.sliding_window_view(samples, settings.n_fft)[:: settings.hop]
    spectrum = scipy.fft.rfft(frames * _window(settings.n_fft), axis=-1, workers=1)
    magnitude = np.abs(spectrum)
    return np.square(magnitude, out=magnitude)


def _quantise(mel_power: np.ndarray, settings: PatchSettings) -> np.ndarray:
    db = 10.0 * np.log10(np.maximum(mel_power, _AMIN))
    q = np.rint((db - settings.db_min) / settings.db_step)
    return np.clip(q, 0, 255).astype(np.uint8)


def log_mel_patches(
    y: np.ndarray,
    sr: int,
    *,
    settings: PatchSettings,
    count: int | None = None,
    start: int = 0,
    stop: int | None = None,
) -> np.ndarray:
    """The quantised log-mel patches of ``y[start:stop]``, analysed as if it were a track.

    Parameters
    ----------
    y : np.ndarray
        Mono signal, 1-D floating point, finite.
    sr : int
        Its sample rate in Hz (any: it is resampled to ``settings.sample_rate``).
    settings : PatchSettings
    count : int or None
        Patches to take, evenly spaced; None for ``settings.count``.
    start, stop : int
        The samples of ``y`` to analyse; ``stop`` None for the end.

    Returns
    -------
    np.ndarray
        uint8, ``(count, settings.n_mels, settings.frames)``.

    Raises
    ------
    PatchError
        ``too_short`` when the samples span less than one patch, ``silent`` when they are all
        zero.
    ValueError
        On parameters that do not fit.
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"y must be a 1-D floating point signal, got {y.dtype} {y.shape}")
    if isinstance(sr, bool) or int(sr) != sr or sr < 1:
        raise ValueError(f"sr must be a positive integer, got {sr}")
    count = settings.count if count is None else count
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    stop = y.size if stop is None else stop
    if not 0 <= start <= stop <= y.size:
        raise ValueError(f"need 0 <= start <= stop <= {y.size}, got start={start}, stop={stop}")
    sr, x = int(sr), y[start:stop]
    if not np.all(np.isfinite(x)):
        raise ValueError("y contains NaN or infinite samples")
    target = settings.sample_rate
    total = x.size if sr == target else math.ceil(x.size * (target / sr))
    if total < settings.patch_samples:
        raise PatchError(
            "too_short",
            f"{x.size / sr:.3g} s of audio, less than one patch of {settings.patch_seconds:.3g} s",
        )
    if not np.any(x):
        raise PatchError("silent", f"all {x.size} samples to analyse are zero")
    x = np.ascontiguousarray(x, dtype=np.float32)
    n_frames = 1 + total // settings.hop  # librosa's centred frames
    starts = _starts(n_frames, settings.frames, int(count))
    half = settings.n_fft // 2
    # Frames [f, f + frames) need samples [f*hop - n_fft/2, (f + frames - 1)*hop + n_fft/2).
    spans = [(f, f + settings.frames) for f in starts]
    basis_t = _mel_basis(target, settings.n_fft, settings.n_mels).T
    out = np.empty((len(starts), settings.n_mels, settings.frames), dtype=np.uint8)
    gap = math.ceil(2 * _MARGIN_S * target / settings.hop) + settings.n_fft // settings.hop
    for first, last in _runs(spans, gap):
        lo, hi = first * settings.hop - half, (last - 1) * settings.hop + half
        inside = _resampled(x, sr, settings, max(lo, 0), min(hi, total))
        samples = np.pad(inside, (max(-lo, 0), max(hi - total, 0)))
        mel = _power_frames(samples, settings) @ basis_t  # (frames, mels)
        q = _quantise(mel, settings).T
        for k, f in enumerate(starts):
            if first <= f < last:
                out[k] = q[:, f - first : f - first + settings.frames]
    return out


def patches_to_bytes(array: np.ndarray) -> bytes:
    """The bytes of a uint8 ``(n, n_mels, frames)`` array, in C order (the table's ``patches``)."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim != 3:
        raise ValueError(
            f"patches must be uint8 (n, n_mels, frames), got {array.dtype} {array.shape}"
        )
    return np.ascontiguousarray(array).tobytes()


def patches_from_bytes(data: bytes, *, settings: PatchSettings) -> np.ndarray:
    """The uint8 ``(n, n_mels, frames)`` array of :func:`patches_to_bytes`' bytes (read-only:
    a view of ``data``).

    Raises
    ------
    ValueError
        When the length is not a whole number of patches of ``settings``.
    """
    size = settings.patch_bytes
    if len(data) % size:
        raise ValueError(
            f"{len(data)} bytes is not a whole number of patches of {size} bytes"
            f" ({settings.n_mels} mels x {settings.frames} frames)"
        )
    array = np.frombuffer(data, dtype=np.uint8)
    return array.reshape(len(data) // size, settings.n_mels, settings.frames)
