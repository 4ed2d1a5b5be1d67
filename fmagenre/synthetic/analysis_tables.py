"""Synthetic labelled feature tables: FMA's 518 columns with genre-dependent means.

For the tests and the benchmark of the analysis jobs, where extracting audio would cost too
much. Every genre has a random mean per column, scaled by the signal of the column's MIR
family: families without signal do not separate the genres. Columns of a family also share
two latent factors, so that they correlate as real features do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from fmagenre.audio.feature_sets import FAMILIES
from fmagenre.audio.names import family_of, flat_names

#: FMA's 16 top-level genres, about largest first in fma_full.
TOP_GENRES: tuple[str, ...] = (
    "Experimental", "Electronic", "Rock", "Hip-Hop", "Folk", "Instrumental", "Pop",
    "International", "Classical", "Old-Time / Historic", "Jazz", "Country", "Soul-RnB",
    "Spoken", "Blues", "Easy Listening",
)  # fmt: skip
#: Signal per family, in the thesis' order of merit (Table 3: MFCC and spectral contrast best
#: overall, chroma worst), weak enough that the genres overlap as in real data.
THESIS_SIGNAL: Mapping[str, float] = {
    "mfcc": 0.1, "spectral_contrast": 0.12, "spectral_centroid": 0.2, "zcr": 0.2,
    "spectral_rolloff": 0.2, "spectral_bandwidth": 0.18, "tonnetz": 0.06, "rmse": 0.18,
    "chroma_stft": 0.05, "chroma_cens": 0.05, "chroma_cqt": 0.04,
}  # fmt: skip
LATENT_FACTORS = 2


def imbalanced_proportions(
    n_classes: int, *, majority: float = 0.21, minority: float = 0.004
) -> np.ndarray:
    """Geometric class shares, largest first, summing to 1.

    The extremes have the ratio of the thesis' largest to smallest class (21% to 0.4%).

    Raises
    ------
    ValueError
        On fewer than 2 classes, or shares not in 0 < minority <= majority < 1.
    """
    if n_classes < 2 or not 0 < minority <= majority < 1:
        raise ValueError(
            f"need n_classes >= 2 and 0 < minority <= majority < 1, got {n_classes},"
            f" {minority}, {majority}"
        )
    shares = (minority / majority) ** (np.arange(n_classes) / (n_classes - 1))
    return shares / shares.sum()


def synthetic_rows(
    track_ids: np.ndarray,
    *,
    genres: Sequence[str],
    signal: Mapping[str, float],
    proportions: Sequence[float] | None = None,
    assigned: Sequence[str] | None = None,
    test_fraction: float = 0.107,
    seed: int = 0,
) -> pd.DataFrame:
    """A labelled feature table for ``track_ids``.

    Parameters
    ----------
    track_ids : numpy.ndarray of int
        One row per id, in this order.
    genres : sequence of str
        Distinct top-level genre titles, at least 2.
    signal : mapping of str to float
        Separation of each MIR family (0 or missing: pure noise); a mean's scale in units of
        the noise's standard deviation.
    proportions : sequence of float or None
        Share of each genre (normalised); None: equal shares.
    assigned : sequence of str or None
        The genre of each row, one of ``genres``; None: drawn with ``proportions``.
    test_fraction : float
        Chance that a row is in ``split`` ``test``, in [0, 1).
    seed : int
        The genre means depend on the seed only; the rows on the seed and the ids.

    Returns
    -------
    pandas.DataFrame
        ``track_id`` (int64), ``genre_top``, ``split`` and the 518 float32 feature columns.

    Raises
    ------
    ValueError
        On bad genres, proportions, assigned genres, test fraction, or an unknown family in
        ``signal``.
    """
    unknown = sorted(set(signal) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown MIR family {unknown[0]!r} in signal")
    if len(genres) < 2 or len(set(genres)) != len(genres):
        raise ValueError(f"need at least 2 distinct genres, got {list(genres)}")
    shares = np.ones(len(genres)) if proportions is None else np.asarray(proportions, float)
    if shares.shape != (len(genres),) or (shares < 0).any() or shares.sum() <= 0:
        raise ValueError("proportions must be one non-negative share per genre")
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    ids = np.asarray(track_ids, dtype=np.int64)
    columns = flat_names()
    families = np.array([family_of(name) for name in columns])
    scale = np.array([signal.get(family, 0.0) for family in families])

    model = np.random.default_rng([seed, 1])
    means = model.standard_normal((len(genres), len(columns))) * scale
    loadings = model.normal(0.0, 0.8, (LATENT_FACTORS, len(columns)))

    rng = np.random.default_rng([seed, 2, int(ids[0]) if ids.size else 0, ids.size])
    if assigned is None:
        classes = rng.choice(len(genres), size=ids.size, p=shares / shares.sum())
    else:
        position = {genre: i for i, genre in enumerate(genres)}
        if len(assigned) != ids.size or not set(assigned) <= set(position):
            raise ValueError("assigned must give one of the genres for every track id")
        classes = np.array([position[genre] for genre in assigned], dtype=np.int64)
    values = rng.standard_normal((ids.size, len(columns)))
    for family in FAMILIES:
        at = families == family
        values[:, at] += rng.standard_normal((ids.size, LATENT_FACTORS)) @ loadings[:, at]
    values += means[classes]
    table = pd.DataFrame(values.astype(np.float32), columns=list(columns))
    table.insert(0, "split", np.where(rng.random(ids.size) < test_fraction, "test", "train"))
    table.insert(0, "genre_top", np.asarray(genres, dtype=object)[classes])
    table.insert(0, "track_id", ids)
    return table
