"""Plain librosa implementation of FMA's feature recipe: the oracle and the baseline.

This is the recipe of FMA's ``features.py`` written with librosa 0.11, call for call, with no
sharing of intermediate results. ``fmagenre.audio.features`` must reproduce its values (tests) and
beat
its speed (``python -m fmagenre.bench extract``). Not meant for production use.

Where librosa refuses a rate, this recipe substitutes, and so does ``fmagenre.audio.features``: the
CQT of a file whose rate is too low for the top bin (under about 8.1 kHz) is computed on the
signal resampled to 22,050 Hz, and spectral contrast with ``fma_compat=False`` at a rate under
12.8 kHz is NaN.

Two details are FMA's, kept on purpose so that our numbers match ``features.csv``:

- ``chroma_stft``, ``spectral_*`` and ``rmse`` are computed from the spectrogram without passing
  ``sr``, so librosa uses its default 22,050 Hz frequency axis whatever the file's rate
  (``fma_compat=False`` passes the true rate instead);
- the CQT has 12 bins per octave, so ``chroma_cqt``/``chroma_cens`` are told so explicitly
  (librosa >= 0.6 would otherwise assume 36).

One detail is not FMA's: the statistics are computed in float64, not float32, whose rounding
depends on the CPU's SIMD width and on the rows' memory layout.
"""

from __future__ import annotations

import librosa
import numpy as np
import pandas as pd
from scipy import stats

from fmagenre.audio.names import FAMILY_SIZES, STATISTICS, feature_index

LIBROSA_DEFAULT_SR = 22050


def reference_features(y: np.ndarray, sr: int, *, fma_compat: bool = True) -> pd.Series:
    """The 518 features of mono signal ``y`` at rate ``sr``, computed the plain way."""
    spectral_sr = LIBROSA_DEFAULT_SR if fma_compat else sr
    rows: dict[str, np.ndarray] = {}

    rows["zcr"] = librosa.feature.zero_crossing_rate(y, frame_length=2048, hop_length=512)
    try:
        cqt = np.abs(
            librosa.cqt(y, sr=sr, hop_length=512, bins_per_octave=12, n_bins=7 * 12, tuning=None)
        )
    except librosa.ParameterError:  # rate too low for the top CQT bin: analyse it at 22,050 Hz
        y_cqt = librosa.resample(y, orig_sr=sr, target_sr=LIBROSA_DEFAULT_SR)
        cqt = np.abs(
            librosa.cqt(y_cqt, sr=LIBROSA_DEFAULT_SR, hop_length=512, bins_per_octave=12, n_bins=84)
        )
    rows["chroma_cqt"] = librosa.feature.chroma_cqt(
        C=cqt, n_chroma=12, n_octaves=7, bins_per_octave=12
    )
    rows["chroma_cens"] = librosa.feature.chroma_cens(
        C=cqt, n_chroma=12, n_octaves=7, bins_per_octave=12
    )
    rows["tonnetz"] = librosa.feature.tonnetz(chroma=rows["chroma_cens"])
    del cqt

    stft = np.abs(librosa.stft(y, n_fft=2048, hop_length=512))
    rows["chroma_stft"] = librosa.feature.chroma_stft(S=stft**2, sr=spectral_sr, n_chroma=12)
    rows["rmse"] = librosa.feature.rms(S=stft)
    rows["spectral_centroid"] = librosa.feature.spectral_centroid(S=stft, sr=spectral_sr)
    rows["spectral_bandwidth"] = librosa.feature.spectral_bandwidth(S=stft, sr=spectral_sr)
    try:
        rows["spectral_contrast"] = librosa.feature.spectral_contrast(
            S=stft, sr=spectral_sr, n_bands=6
        )
    except librosa.ParameterError:  # bands above Nyquist (true rate under 12.8 kHz): undefined
        rows["spectral_contrast"] = np.full((7, stft.shape[1]), np.nan)
    rows["spectral_rolloff"] = librosa.feature.spectral_rolloff(S=stft, sr=spectral_sr)
    mel = librosa.feature.melspectrogram(sr=sr, S=stft**2)
    del stft
    rows["mfcc"] = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=20)

    values = {}
    for family, size in FAMILY_SIZES.items():
        x = rows[family].astype(np.float64)  # float32 sums depend on the SIMD width
        assert x.shape[0] == size, (family, x.shape)
        per_stat = {
            "mean": np.mean(x, axis=1),
            "std": np.std(x, axis=1),
            "skew": stats.skew(x, axis=1),
            "kurtosis": stats.kurtosis(x, axis=1),
            "median": np.median(x, axis=1),
            "min": np.min(x, axis=1),
            "max": np.max(x, axis=1),
        }
        for stat in STATISTICS:
            for i, v in enumerate(per_stat[stat]):
                values[(family, stat, f"{i + 1:02d}")] = v
    index = feature_index()
    return pd.Series([values[k] for k in index], index=index, dtype=np.float32)


def reference_extract_file(path: str, *, fma_compat: bool = True) -> pd.Series:
    """Load ``path`` as FMA did (``librosa.load(sr=None, mono=True)``) and compute the features."""
    y, sr = librosa.load(path, sr=None, mono=True)
    return reference_features(y, int(sr), fma_compat=fma_compat)
