"""The 518 FMA features of a track, computed fast and equal to the plain recipe.

The recipe is FMA's ``features.py`` (see :mod:`fmagenre.audio.reference`, the plain implementation):
zero-crossing rate; one |CQT| (hop 512, 84 bins, 12 per octave, tuning estimated) feeding
chroma_cqt, chroma_cens and tonnetz; one |STFT| (n_fft 2048, hop 512) feeding chroma_stft,
rmse, spectral centroid, bandwidth, contrast and rolloff, and the mel spectrogram -> dB -> 20
MFCC; seven statistics of every row over time.

Where this implementation saves time, with the same values:

- one STFT, computed in blocks of frames, serves every spectral feature and both tuning
  estimations (the plain recipe computes a second STFT inside ``librosa.cqt``);
- the tuning estimations run ``piptrack`` only on the 150-4000 Hz bins it keeps, not on the
  whole spectrum;
- centroid and bandwidth come from two spectral moments in one matrix product, contrast sorts
  contiguous rows, zero crossings are counted once per hop instead of once per frame;
- memory stays bounded: the complex STFT never exists whole, only the power spectrogram.

Low sample rates: an 84-bin CQT from C1 needs a rate above about 8.1 kHz. Below that, the CQT
families (chroma_cqt, chroma_cens, tonnetz) are computed on the signal resampled to 22,050 Hz;
every other family stays at the native rate.

Silence and very short clips give finite values except where a statistic is undefined: the
skew and kurtosis of a constant row are NaN, as in FMA's ``features.csv``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import librosa
import numpy as np
import pandas as pd
import scipy.fft
from scipy import stats

from fmagenre.audio import decode, numba_cache
from fmagenre.audio.names import FAMILY_SIZES, N_FEATURES, feature_index, flat_names
from fmagenre.audio.patches import PatchError, PatchSettings, log_mel_patches
from fmagenre.audio.windows import check_window, window_bounds

N_FFT = 2048
HOP = 512
#: STFT frames per block: bounds the float64 temporaries of one block to about 16 MiB each.
BLOCK_FRAMES = 1024
LIBROSA_DEFAULT_SR = 22050
CQT_FALLBACK_SR = 22050
#: Changes whenever the values or the output schema change.
EXTRACTOR_VERSION = f"fmagenre-{librosa.__version__}-fma2"

__all__ = [
    "EXTRACTOR_VERSION",
    "N_FEATURES",
    "TrackFeatures",
    "WindowFeatures",
    "analyse",
    "extract",
    "extract_file",
    "extract_windows",
    "feature_index",
    "feature_names",
    "flat_names",
]


def feature_names() -> pd.MultiIndex:
    """FMA's ``(feature, statistics, number)`` column index, in FMA's sorted order."""
    return feature_index()


class _TuningPeaks:
    """``librosa.estimate_tuning`` over blocks of a spectrogram, on the bins it keeps.

    ``piptrack`` interpolates every bin and then keeps local maxima between 150 and 4000 Hz;
    a peak's pitch and magnitude depend only on its bin and the two neighbours, so this
    computes them at the peaks alone, block by block, with the arithmetic of librosa's numba
    stencil (float32 sums, float64 ratios), and reduces them at the end exactly as
    ``estimate_tuning`` does (median magnitude threshold, then the residual histogram).
    Blocks are (frames, bins): the transpose of librosa's layout.
    """

    def __init__(self, sr: float, n_fft: int = N_FFT):
        freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
        fmax = min(4000.0, float(sr) / 2)
        band = np.flatnonzero((freqs >= 150.0) & (freqs < fmax))
        self.lo, self.hi = int(band[0]), int(band[-1]) + 1
        self.sr, self.n_fft = float(sr), n_fft
        self.pitches: list[np.ndarray] = []
        self.mags: list[np.ndarray] = []

    def add(self, ST: np.ndarray) -> None:
        """Collect the peaks of a non-negative (frames, bins) spectrogram block."""
        ref = 0.1 * np.max(ST, axis=1, keepdims=True)
        sub = ST[:, self.lo - 1 : self.hi + 1]
        masked = sub * (sub > ref)
        centre = masked[:, 1:-1]
        frames, bins = np.nonzero((centre > masked[:, :-2]) & (centre >= masked[:, 2:]))
        below, x0, above = sub[frames, bins], sub[frames, bins + 1], sub[frames, bins + 2]
        a = (above + below).astype(np.float64) - 2 * x0.astype(np.float64)
        b = (above - below).astype(np.float64) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            shift = np.where(np.abs(b) >= np.abs(a), 0.0, -b / a).astype(np.float32)
        gradient = (above - below) / 2.0
        pitch = (bins + self.lo + shift) * self.sr / self.n_fft
        self.pitches.append(pitch.astype(ST.dtype))
        self.mags.append(x0 + 0.5 * gradient * shift)

    def tuning(self) -> float:
        pitch = np.concatenate(self.pitches)
        mag = np.concatenate(self.mags)
        mask = pitch > 0
        threshold = np.median(mag[mask]) if mask.any() else 0.0
        return float(
            librosa.pitch_tuning(
                pitch[(mag >= threshold) & mask], resolution=0.01, bins_per_octave=12
            )
        )


def _contrast_bands(freq: np.ndarray, *, n_bands: int = 6, fmin: float = 200.0):
    """Rows (start, stop) and quantile count of each ``spectral_contrast`` band.

    The bands of ``librosa.feature.spectral_contrast``: octaves from ``fmin``, the first
    reaching down to 0 Hz and the last up to Nyquist, each with one extra bin below.
    """
    octa = np.zeros(n_bands + 2)
    octa[1:] = fmin * (2.0 ** np.arange(0, n_bands + 1))
    bands = []
    for k, (f_low, f_high) in enumerate(itertools.pairwise(octa)):
        rows = np.flatnonzero((freq >= f_low) & (freq <= f_high))
        start, stop = int(rows[0]), int(rows[-1]) + 1
        if k > 0:
            start -= 1
        if k == n_bands:
            stop = len(freq)
        count = stop - start
        quantile = int(max(np.rint(0.02 * count), 1))
        bands.append((start, stop if k == n_bands else stop - 1, quantile))
    return bands


def _zero_crossing_rate(y: np.ndarray, n_frames: int) -> np.ndarray:
    """librosa's ``zero_crossing_rate(frame_length=2048, hop_length=512)``, counted per hop."""
    padded = np.pad(y, N_FFT // 2, mode="edge")
    sign = np.signbit(np.where(np.abs(padded) <= 1e-10, 0, padded))
    crossing = np.zeros(n_frames * HOP + N_FFT, dtype=np.int32)
    crossing[1 : padded.size] = sign[1:] != sign[:-1]
    per_hop = crossing.reshape(-1, HOP).sum(axis=1)
    # Frame t covers samples [t*HOP, t*HOP + N_FFT) and counts crossings into samples 1..N_FFT-1.
    counts = sum(per_hop[k : k + n_frames] for k in range(N_FFT // HOP))
    counts = counts - crossing[: n_frames * HOP : HOP]
    return (counts / N_FFT)[np.newaxis, :]


def _frames_block(y: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Samples of STFT frames ``start:stop`` of ``y`` centred with zero padding."""
    lo, hi = start * HOP - N_FFT // 2, (stop - 1) * HOP + N_FFT // 2
    if lo >= 0 and hi <= y.size:
        return y[lo:hi]
    return np.pad(y[max(lo, 0) : min(hi, y.size)], (max(-lo, 0), max(hi - y.size, 0)))


def _stft_magnitude(samples: np.ndarray, window: np.ndarray) -> np.ndarray:
    """|STFT| of consecutive frames as a (frames, bins) float32 array.

    The arithmetic of ``librosa.stft``: float64 windowed frames, float64 FFT, rounded to
    complex64, then the magnitude; only the layout is transposed.
    """
    frames = np.lib.stride_tricks.sliding_window_view(samples, N_FFT)[::HOP]
    spectrum = scipy.fft.rfft(frames * window, axis=-1, workers=1)
    return np.abs(spectrum.astype(np.complex64))


def _spectral_rows(y: np.ndarray, sr: int, spectral_sr: float) -> tuple[dict, float]:
    """Every STFT-based family, and the tuning that the CQT of ``y`` at ``sr`` needs.

    Blocks are held as (frames, bins), so that reductions over frequency run over contiguous
    memory in the same order as librosa's Fortran-ordered spectrograms.
    """
    n_frames = 1 + y.size // HOP
    window = librosa.filters.get_window("hann", N_FFT, fftbins=True)
    freq = librosa.fft_frequencies(sr=spectral_sr, n_fft=N_FFT)
    moments = np.stack([freq, freq**2], axis=1)
    # librosa's contrast needs its 6 octave bands from 200 Hz (up to 12.8 kHz) under Nyquist.
    bands = _contrast_bands(freq) if spectral_sr > 2 * 6400 else None
    mel_basis_t = librosa.filters.mel(sr=sr, n_fft=N_FFT).T
    cqt_peaks, chroma_peaks = _TuningPeaks(sr), _TuningPeaks(spectral_sr)

    power = np.empty((n_frames, N_FFT // 2 + 1), dtype=np.float32)
    rms = np.empty(n_frames, dtype=np.float32)
    centroid, bandwidth, rolloff = np.empty(n_frames), np.empty(n_frames), np.empty(n_frames)
    valley = np.full((n_frames, 7), np.nan)
    peak = np.full((n_frames, 7), np.nan)
    mel = np.empty((n_frames, mel_basis_t.shape[1]), dtype=np.float32)
    tiny = np.finfo(np.float32).tiny

    for start in range(0, n_frames, BLOCK_FRAMES):
        stop = min(n_frames, start + BLOCK_FRAMES)
        block = slice(start, stop)
        ST = _stft_magnitude(_frames_block(y, start, stop), window)
        PT = power[block]
        np.square(ST, out=PT)
        cqt_peaks.add(ST)
        chroma_peaks.add(PT)

        halved = PT.copy()  # as librosa.feature.rms: DC and Nyquist bins count half
        halved[:, 0] *= 0.5
        halved[:, -1] *= 0.5
        rms[block] = np.sqrt(2 * halved.sum(axis=1) / N_FFT**2)

        total = ST.sum(axis=1)
        norm = np.where(total < tiny, 1.0, total)
        m1, m2 = (ST.astype(np.float64) @ moments).T / norm
        centroid[block] = m1
        bandwidth[block] = np.sqrt(np.maximum(m2 - 2 * m1 * m1 + m1 * m1 * (total / norm), 0))

        cumulative = np.cumsum(ST, axis=1)
        reached = cumulative >= 0.85 * cumulative[:, -1:]
        rolloff[block] = freq[np.argmax(reached, axis=1)]

        for k, (lo, hi, q) in enumerate(bands or ()):
            ordered = np.sort(ST[:, lo:hi], axis=1)  # SIMD sort beats partition here
            valley[block, k] = ordered[:, :q].mean(axis=1)
            peak[block, k] = ordered[:, -q:].mean(axis=1)

        np.matmul(PT, mel_basis_t, out=mel[block])

    chroma_fb = librosa.filters.chroma(
        sr=spectral_sr, n_fft=N_FFT, tuning=chroma_peaks.tuning(), n_chroma=12
    )
    rows = {
        "chroma_stft": librosa.util.normalize((power @ chroma_fb.T).T, norm=np.inf, axis=0),
        "rmse": rms[np.newaxis, :],
        "spectral_centroid": centroid[np.newaxis, :],
        "spectral_bandwidth": bandwidth[np.newaxis, :],
        "spectral_contrast": librosa.power_to_db(peak.T) - librosa.power_to_db(valley.T),
        "spectral_rolloff": rolloff[np.newaxis, :],
        "mfcc": librosa.feature.mfcc(S=librosa.power_to_db(mel.T), n_mfcc=20),
    }
    return rows, cqt_peaks.tuning()


def _cqt_rows(y: np.ndarray, sr: int, tuning: float) -> dict:
    """chroma_cqt, chroma_cens and tonnetz from one |CQT|."""
    try:
        C = np.abs(
            librosa.cqt(y, sr=sr, hop_length=HOP, bins_per_octave=12, n_bins=84, tuning=tuning)
        )
    except librosa.ParameterError as exc:
        if "Nyquist" not in str(exc):
            raise
        y = librosa.resample(y, orig_sr=sr, target_sr=CQT_FALLBACK_SR)
        C = np.abs(
            librosa.cqt(y, sr=CQT_FALLBACK_SR, hop_length=HOP, bins_per_octave=12, n_bins=84)
        )
    chroma_cqt = librosa.feature.chroma_cqt(C=C, n_chroma=12, n_octaves=7, bins_per_octave=12)
    chroma_cens = librosa.feature.chroma_cens(C=C, n_chroma=12, n_octaves=7, bins_per_octave=12)
    return {
        "chroma_cqt": chroma_cqt,
        "chroma_cens": chroma_cens,
        "tonnetz": librosa.feature.tonnetz(chroma=chroma_cens),
    }


def _statistics(rows: dict[str, np.ndarray]) -> np.ndarray:
    """The 7 statistics of every row, laid out in FMA's column order, as float32.

    Computed in float64: float32 sums depend on the SIMD width and the memory layout.
    """
    values = {}
    for family, size in FAMILY_SIZES.items():
        x = rows[family].astype(np.float64)
        if x.shape[0] != size:
            raise AssertionError(f"{family} has {x.shape[0]} rows, expected {size}")
        per_stat = {
            "mean": np.mean(x, axis=1),
            "std": np.std(x, axis=1),
            "skew": stats.skew(x, axis=1),
            "kurtosis": stats.kurtosis(x, axis=1),
            "median": np.median(x, axis=1),
            "min": np.min(x, axis=1),
            "max": np.max(x, axis=1),
        }
        for stat, v in per_stat.items():
            for i in range(size):
                values[(family, stat, f"{i + 1:02d}")] = v[i]
    return np.array([values[k] for k in feature_index()], dtype=np.float32)


def extract(y: np.ndarray, sr: int, *, fma_compat: bool = True) -> np.ndarray:
    """The 518 features of a mono signal, in FMA's column order.

    Unlike :func:`analyse` and :func:`extract_file`, this does not warm numba's cache up
    first (:func:`fmagenre.audio.numba_cache.warm_up`).

    Parameters
    ----------
    y : np.ndarray
        Mono signal, 1-D, float32 (other float types are converted).
    sr : int
        Its sample rate in Hz (at least 4000).
    fma_compat : bool
        True (default) computes chroma_stft, rmse and the spectral features on librosa's
        default 22,050 Hz frequency axis, as FMA's ``features.py`` did, so that values match
        FMA's ``features.csv``; False uses the true sample rate.

    Returns
    -------
    np.ndarray
        float32 array of 518 values ordered as :func:`feature_names`.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be mono (1-D), got shape {y.shape}")
    if y.size == 0:
        raise ValueError("y is empty")
    if not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"y must be floating point, got {y.dtype}")
    if int(sr) != sr or sr < 4000:
        raise ValueError(f"sr must be an integer of at least 4000 Hz, got {sr}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or infinite samples")
    y = np.ascontiguousarray(y, dtype=np.float32)
    sr = int(sr)
    spectral_sr = LIBROSA_DEFAULT_SR if fma_compat else sr
    with warnings.catch_warnings():
        # Tuning of silence and CQT of clips shorter than its longest filter warn; both are
        # defined (tuning 0, zero-padded filters) and documented above.
        warnings.simplefilter("ignore", UserWarning)
        # scipy warns before returning NaN skew/kurtosis for constant rows: documented above.
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        rows, cqt_tuning = _spectral_rows(y, sr, spectral_sr)
        rows["zcr"] = _zero_crossing_rate(y, rows["rmse"].shape[1])
        rows.update(_cqt_rows(y, sr, cqt_tuning))
        return _statistics(rows)


def _patches_or_error(
    y: np.ndarray, sr: int, settings: PatchSettings, **region
) -> tuple[np.ndarray | None, str | None]:
    """(patches, None) of :func:`fmagenre.audio.patches.log_mel_patches`, or (None, its error
    as ``"reason: detail"``)."""
    try:
        return log_mel_patches(y, sr, settings=settings, **region), None
    except PatchError as exc:  # "too_short: ..." or "silent: ..."
        return None, str(exc)
    except MemoryError as exc:
        return None, f"out_of_memory: {exc}"
    except ValueError as exc:
        return None, f"feature_error: {exc}"


class MusicnnValues:
    """The musicnn family of a track and of its windows, from one pass of the network over
    the track's patches (:func:`fmagenre.audio.musicnn.patch_outputs`)."""

    def __init__(self, y: np.ndarray, sr: int):
        from fmagenre.audio import musicnn

        self.error: str | None = None
        try:
            self.starts, self.embeddings, self.tags = musicnn.patch_outputs(y, sr)
        except musicnn.MusicnnError as exc:
            self.error = str(exc)
        except MemoryError as exc:
            self.error = f"out_of_memory: {exc}"
        self._summary = musicnn.summary
        self._seconds = musicnn.PATCH_SECONDS

    def track(self) -> np.ndarray | None:
        """The track's 450 values; None with :attr:`error`."""
        return None if self.error else self._summary(self.embeddings, self.tags)

    def window(self, start_s: float, end_s: float) -> tuple[np.ndarray | None, str | None]:
        """(values, None) over the patches that lie within a window, or (None, the reason)."""
        if self.error:
            return None, self.error
        inside = (self.starts >= start_s - 1e-6) & (self.starts + self._seconds <= end_s + 1e-6)
        if not inside.any():
            detail = f"no {self._seconds:.3g} s musicnn patch lies within {start_s:g}-{end_s:g} s"
            return None, f"too_short: {detail}"
        return self._summary(self.embeddings[inside], self.tags[inside]), None


def extract_windows(
    y: np.ndarray,
    sr: int,
    *,
    window: float,
    hop: float,
    fma_compat: bool = True,
    patches: PatchSettings | None = None,
    musicnn: MusicnnValues | None = None,
) -> WindowFeatures:
    """The 518 features of each window of a mono signal (:mod:`fmagenre.audio.windows`' rule).

    Each window gets the recipe of :func:`extract` on its own samples, as if it were a track;
    with ``patches``, also its log-mel patches (``patches.window_count`` of the window's
    seconds, evenly spaced inside it) or the reason it has none; with ``musicnn`` (the
    track's), the family's values over the track's musicnn patches that lie within the window.

    Raises
    ------
    ValueError
        As :func:`extract`, or when ``hop`` is not in ``(0, window]``.
    """
    bounds = window_bounds(np.asarray(y).size, sr, window=window, hop=hop)
    values = np.stack([extract(y[a:b], sr, fma_compat=fma_compat) for a, b in bounds])
    result = WindowFeatures(
        start_s=np.array([a / sr for a, _ in bounds]),
        end_s=np.array([b / sr for _, b in bounds]),
        values=values,
    )
    if patches is not None:
        found = [
            _patches_or_error(
                y, sr, patches, count=patches.window_count((b - a) / sr), start=a, stop=b
            )
            for a, b in bounds
        ]
        result.patches = [p for p, _ in found]
        result.patch_errors = [e for _, e in found]
    if musicnn is not None:
        found = [musicnn.window(a / sr, b / sr) for a, b in bounds]
        result.musicnn = [v for v, _ in found]
        result.musicnn_errors = [e for _, e in found]
    return result


@dataclass
class WindowFeatures:
    """Features of successive windows of a track: row ``k`` covers ``start_s[k]..end_s[k]``."""

    start_s: np.ndarray
    end_s: np.ndarray
    #: float32, (windows, 518), in FMA's order.
    values: np.ndarray
    #: When patches are asked: each window's uint8 (n, n_mels, frames) patches, or None.
    patches: list[np.ndarray | None] | None = None
    #: When patches are asked: why a window has no patches ("reason: detail"), else None.
    patch_errors: list[str | None] | None = None
    #: When musicnn is asked: each window's 450 values, or None.
    musicnn: list[np.ndarray | None] | None = None
    #: When musicnn is asked: why a window has no values, else None.
    musicnn_errors: list[str | None] | None = None


@dataclass
class TrackFeatures:
    """What extracting one file gives: its features, or why there are none."""

    #: 518 float32 values in FMA's order; None when ``status`` is "error".
    features: np.ndarray | None
    status: str
    #: "reason: detail" when status is "error", else None.
    error: str | None = None
    error_reason: str | None = None
    duration_s: float | None = None
    sample_rate: int | None = None
    analysed_s: float | None = None
    channels: int | None = None
    format: str | None = None
    extractor_version: str = field(default=EXTRACTOR_VERSION)
    #: The windows' features, when asked for and the track's features exist.
    windows: WindowFeatures | None = None
    #: uint8 (count, n_mels, frames) log-mel patches, when asked for and computed.
    patches: np.ndarray | None = None
    #: When patches are asked and there are none: "reason: detail" (the file's error when
    #: it has no features; too_short, silent). None otherwise.
    patch_error: str | None = None
    #: The musicnn family's 450 float32 values (:func:`fmagenre.audio.names.musicnn_names`),
    #: when asked for and computed.
    musicnn: np.ndarray | None = None
    #: When musicnn is asked and there are none: "reason: detail", as ``patch_error``.
    musicnn_error: str | None = None


def analyse(
    source: str | os.PathLike | bytes,
    *,
    max_duration: float = decode.DEFAULT_MAX_DURATION,
    fma_compat: bool = True,
    on_decoded: Callable[[float], None] | None = None,
    window: float | None = None,
    hop: float | None = None,
    patches: PatchSettings | None = None,
    musicnn: bool = False,
) -> TrackFeatures:
    """Decode and extract one file, turning every failure into a result, never an exception.

    Digital silence (all samples zero) is reported as error reason ``silent``: its features
    exist but carry no information about the music. ``on_decoded`` is called with the
    seconds to analyse once the file is decoded, before the features are computed. With
    ``window`` (seconds) the result also holds the features of the windows of ``window``
    seconds every ``hop`` seconds (default: ``window``), from the same decoded samples.

    With ``patches``, the result also holds the track's log-mel patches
    (:func:`fmagenre.audio.patches.log_mel_patches` of the same decoded samples), and each
    window's; where there are none, ``patch_error`` says why: the file's error when its
    features fail (undecodable, silent...), ``too_short`` when it is shorter than one patch.
    With ``musicnn``, likewise the musicnn family (:class:`MusicnnValues`) and
    ``musicnn_error``.
    """
    step = window if hop is None else hop
    if window is not None:
        check_window(window, step)
    if patches is not None and not isinstance(patches, PatchSettings):
        raise TypeError(f"patches must be PatchSettings or None, got {type(patches).__name__}")
    numba_cache.warm_up()

    def failed(error: str, reason: str, **meta) -> TrackFeatures:
        patch_error = error if patches is not None else None
        musicnn_error = error if musicnn else None
        return TrackFeatures(
            None,
            "error",
            error,
            reason,
            patch_error=patch_error,
            musicnn_error=musicnn_error,
            **meta,
        )

    try:
        decoded = decode.decode(source, max_duration=max_duration)
    except decode.AudioDecodeError as exc:
        return failed(str(exc), exc.reason)
    if on_decoded is not None:
        on_decoded(decoded.analysed_s)
    meta = {
        "duration_s": decoded.duration_s,
        "sample_rate": decoded.sr,
        "analysed_s": decoded.analysed_s,
        "channels": decoded.channels,
        "format": decoded.format,
    }
    if not np.any(decoded.y):
        detail = f"all {decoded.y.size} decoded samples are zero"
        return failed(f"silent: {detail}", "silent", **meta)
    try:
        values = extract(decoded.y, decoded.sr, fma_compat=fma_compat)
        network = MusicnnValues(decoded.y, decoded.sr) if musicnn else None
        windows = None
        if window is not None:
            windows = extract_windows(
                decoded.y,
                decoded.sr,
                window=window,
                hop=step,
                fma_compat=fma_compat,
                patches=patches,
                musicnn=network,
            )
    except (ValueError, librosa.ParameterError, MemoryError) as exc:
        reason = "out_of_memory" if isinstance(exc, MemoryError) else "feature_error"
        return failed(f"{reason}: {exc}", reason, **meta)
    track_patches, patch_error = None, None
    if patches is not None:
        track_patches, patch_error = _patches_or_error(decoded.y, decoded.sr, patches)
    return TrackFeatures(
        values,
        "ok",
        windows=windows,
        patches=track_patches,
        patch_error=patch_error,
        musicnn=None if network is None else network.track(),
        musicnn_error=None if network is None else network.error,
        **meta,
    )


def extract_file(
    source: str | os.PathLike | bytes,
    *,
    max_duration: float = decode.DEFAULT_MAX_DURATION,
    fma_compat: bool = True,
) -> pd.Series:
    """The 518 features of a file (path or bytes) as a Series indexed by FMA's triples.

    Raises
    ------
    fmagenre.audio.decode.AudioDecodeError
        When the file cannot be decoded.
    """
    numba_cache.warm_up()
    decoded = decode.decode(source, max_duration=max_duration)
    values = extract(decoded.y, decoded.sr, fma_compat=fma_compat)
    return pd.Series(values, index=feature_names(), dtype=np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fmagenre.audio.features",
        description="Print FMA's 518 features of audio files, one row per file, flat names.",
    )
    parser.add_argument("files", nargs="+", help="audio files (MP3, WAV, FLAC, OGG)")
    parser.add_argument("--format", choices=("csv", "json"), default="csv")
    parser.add_argument(
        "--max-duration",
        type=float,
        default=decode.DEFAULT_MAX_DURATION,
        help="analyse at most this many seconds of each file (0: all; default %(default)s)",
    )
    parser.add_argument(
        "--true-sr",
        action="store_true",
        help="spectral features on the true sample rate instead of FMA's 22,050 Hz axis",
    )
    args = parser.parse_args(argv)
    records = []
    for path in args.files:
        result = analyse(path, max_duration=args.max_duration, fma_compat=not args.true_sr)
        record = {"path": path, "status": result.status, "error": result.error}
        values = [None] * N_FEATURES if result.features is None else result.features.tolist()
        record.update(zip(flat_names(), values, strict=True))
        records.append(record)
        if result.status != "ok":
            print(f"{path}: {result.error}", file=sys.stderr)
    if args.format == "json":
        for record in records:
            print(json.dumps(record, allow_nan=True))
    else:
        pd.DataFrame(records).to_csv(sys.stdout, index=False)
    return 0 if all(r["status"] == "ok" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
