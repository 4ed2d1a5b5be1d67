"""Synthetic labelled feature tables shaped like FMA's, for tests and benchmarks.

Column ``j`` of a track of genre ``c`` is ``offset_j + scale_j * (noise_j + mu[c, j])``:

- ``noise`` is standard normal, plus :data:`LATENT_FACTORS` factors per MIR family that the
  family's columns share (so that they correlate as real features do), scaled back to unit
  variance;
- ``mu[c, j] ~ N(0, separation)`` is a mean shift per genre and column, with one separation
  for every column or one per MIR family (a family without one does not separate the genres).
  Two genres' means lie about ``separation * sqrt(2 * columns)`` noise standard deviations
  apart: the knob that sets how learnable the table is;
- offsets and scales differ by orders of magnitude, as the 518 MIR statistics do, so that
  standardisation matters.

The model (means, loadings, offsets, scales) depends on the seed only, and each column's on
its name, not on the other columns asked for; the rows depend on the seed and the track ids,
so that a large table can be generated in batches of ids (by Spark's executors). Genres follow
given shares or are given per track; the test split takes ``test_fraction`` of each genre's
rows (of a batch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fmagenre.audio.names import FAMILY_SIZES, family_of, flat_names

#: FMA's 16 top-level genres with about their shares of the thesis' 104,343 tracks (FMA full
#: after imputing genre_top), largest first: Experimental about 21% down to Easy Listening 0.4%.
THESIS_GENRE_SHARES: dict[str, float] = {
    "Experimental": 0.213,
    "Electronic": 0.195,
    "Rock": 0.170,
    "Hip-Hop": 0.070,
    "Pop": 0.065,
    "Folk": 0.060,
    "Instrumental": 0.055,
    "International": 0.040,
    "Classical": 0.035,
    "Jazz": 0.028,
    "Old-Time / Historic": 0.018,
    "Spoken": 0.016,
    "Country": 0.013,
    "Soul-RnB": 0.010,
    "Blues": 0.008,
    "Easy Listening": 0.004,
}
#: Tracks of the thesis: 93,222 for training and 11,121 for testing.
THESIS_ROWS = 104_343
THESIS_TEST_FRACTION = 11_121 / THESIS_ROWS
LATENT_FACTORS = 2


def _column_separation(separation: float | Mapping[str, float], names: Sequence[str]) -> np.ndarray:
    """The standard deviation of the genre mean shifts of each column of ``names``."""
    if isinstance(separation, Mapping):
        unknown = sorted(set(separation) - set(FAMILY_SIZES))
        if unknown:
            raise ValueError(f"unknown MIR family {unknown[0]!r} in separation")
        values = np.array([separation.get(family_of(name), 0.0) for name in names], dtype=float)
    else:
        values = np.full(len(names), float(separation))
    if (values < 0).any():
        raise ValueError("separation must be >= 0")
    return values


def synthetic_rows(
    track_ids: np.ndarray,
    *,
    genre_shares: Mapping[str, float],
    separation: float | Mapping[str, float] = 0.05,
    columns: Sequence[str] | None = None,
    assigned: Sequence[str] | None = None,
    test_fraction: float = THESIS_TEST_FRACTION,
    nan_fraction: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """A labelled feature table for ``track_ids``.

    Parameters
    ----------
    track_ids : numpy.ndarray of int
        One row per id (non-negative), in this order.
    genre_shares : mapping of str to float
        At least 2 top-level genre titles and their positive shares (normalised), e.g.
        :data:`THESIS_GENRE_SHARES`.
    separation : float or mapping of str to float
        Standard deviation of the genre mean shifts in noise units: one for every column, or
        one per MIR family (a missing family: 0, pure noise).
    columns : sequence of str or None
        Feature columns, of FMA's 518 flat names; None for all 518.
    assigned : sequence of str or None
        The genre of each row, one of ``genre_shares``; None: drawn with the shares.
    test_fraction : float
        Share of each genre's rows in ``split`` ``test``, in [0, 1).
    nan_fraction : float
        Share of feature values replaced by NaN (FMA's undefined statistics), in [0, 1).
    seed : int

    Returns
    -------
    pandas.DataFrame
        ``track_id`` (int64), ``genre_top``, ``split`` (``train`` or ``test``) and the float32
        feature columns.

    Raises
    ------
    ValueError
        On bad genre shares, assigned genres, columns, separation or fractions.
    """
    genres = list(genre_shares)
    shares = np.array([genre_shares[genre] for genre in genres], dtype=float)
    if len(genres) < 2 or not (shares > 0).all():
        raise ValueError("genre_shares must give at least 2 genres positive shares")
    if not 0 <= test_fraction < 1 or not 0 <= nan_fraction < 1:
        raise ValueError("test_fraction and nan_fraction must be in [0, 1)")
    every = flat_names()
    names = list(every if columns is None else columns)
    position = {name: i for i, name in enumerate(every)}
    if not names or len(set(names)) != len(names):
        raise ValueError("columns must be distinct feature names, at least one")
    unknown = [name for name in names if name not in position]
    if unknown:
        raise ValueError(f"unknown feature column {unknown[0]!r}")
    at = np.array([position[name] for name in names], dtype=np.int64)
    spread = _column_separation(separation, names)

    model = np.random.default_rng([seed, 1])
    loadings = model.normal(0.0, 0.8, (LATENT_FACTORS, len(every)))[:, at]
    scales = np.exp(model.normal(0.0, 2.0, len(every)))[at]
    offsets = model.normal(0.0, 10.0, len(every))[at]
    means = model.standard_normal((len(genres), len(every)))[:, at] * spread

    ids = np.asarray(track_ids, dtype=np.int64)
    rng = np.random.default_rng([seed, 2, int(ids[0]) if ids.size else 0, ids.size])
    if assigned is None:
        classes = rng.choice(len(genres), size=ids.size, p=shares / shares.sum())
    else:
        index = {genre: i for i, genre in enumerate(genres)}
        if len(assigned) != ids.size or not set(assigned) <= set(index):
            raise ValueError("assigned must give one of the genres for every track id")
        classes = np.array([index[genre] for genre in assigned], dtype=np.int64)
    noise = rng.standard_normal((ids.size, len(names)))
    families = np.array([family_of(name) for name in names])
    for family in dict.fromkeys(families):
        shared = families == family
        noise[:, shared] += rng.standard_normal((ids.size, LATENT_FACTORS)) @ loadings[:, shared]
    noise /= np.sqrt(1.0 + (loadings**2).sum(axis=0))
    values = (offsets + scales * (noise + means[classes])).astype(np.float32)
    if nan_fraction:
        values[rng.random(values.shape) < nan_fraction] = np.nan
    split = np.full(ids.size, "train", dtype=object)
    for c in range(len(genres)):
        members = rng.permutation(np.flatnonzero(classes == c))
        split[members[: round(test_fraction * members.size)]] = "test"

    table = pd.DataFrame(values, columns=names)
    table.insert(0, "split", split)
    table.insert(0, "genre_top", np.asarray(genres, dtype=object)[classes])
    table.insert(0, "track_id", ids)
    return table


def write_synthetic_tables(directory: str | Path, *, rows: int, **options) -> tuple[str, str]:
    """Write a feature table and a label table of ``rows`` tracks as Parquet.

    Parameters
    ----------
    directory : str or path-like
        The tables go to ``directory/features`` and ``directory/labels``.
    rows : int
        Number of tracks, ids 1 to ``rows``.
    **options
        Of :func:`synthetic_rows`: ``genre_shares`` at least.

    Returns
    -------
    features, labels : str
        The two directories. The features are ``ok`` rows as the extraction job writes them
        (``track_id``, ``path``, ``status``, ``error``, ``error_reason``, float32 columns);
        the labels have ``track_id``, ``genre_top`` and ``split``.
    """
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    table = synthetic_rows(np.arange(1, rows + 1), **options)
    ids = table["track_id"].to_numpy()
    features = pa.table(
        {
            "track_id": ids,
            "path": [f"synthetic/{i:06d}.mp3" for i in ids],
            "status": pa.array(["ok"] * rows),
            "error": pa.nulls(rows, pa.string()),
            "error_reason": pa.nulls(rows, pa.string()),
            **{name: table[name].to_numpy() for name in table.columns[3:]},
        }
    )
    labels = pa.Table.from_pandas(table[["track_id", "genre_top", "split"]], preserve_index=False)
    paths = []
    for name, arrow in (("features", features), ("labels", labels)):
        target = Path(directory) / name
        target.mkdir(parents=True, exist_ok=True)
        pq.write_table(arrow, target / "part-00000.parquet")
        paths.append(str(target))
    return paths[0], paths[1]
