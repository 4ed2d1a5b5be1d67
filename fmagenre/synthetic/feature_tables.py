"""Synthetic feature and label tables shaped like FMA's, for tests and benchmarks.

Each row's features are ``offset_j + scale_j * (z + mu[c, j])`` with ``z`` standard normal
noise, ``mu[c, j] ~ N(0, separation)`` a mean shift per genre ``c`` and column ``j``, and
column offsets and scales of very different sizes (as the 518 MIR statistics have), so that
standardisation matters. Two genres' means lie ``separation * sqrt(2 * columns)`` noise
standard deviations apart on average: the knob that sets how learnable the table is.
Genres follow given shares; the test split takes ``test_fraction`` of each genre.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fmagenre.audio.names import flat_names

#: Top-level genres of the thesis' 104,343 tracks with about their shares (FMA full after
#: imputing genre_top): Experimental about 21% down to Easy Listening about 0.4%.
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


def synthetic_tables(
    *,
    rows: int,
    genre_shares: Mapping[str, float],
    columns: Sequence[str] | None = None,
    separation: float = 0.05,
    test_fraction: float = THESIS_TEST_FRACTION,
    nan_fraction: float = 0.0,
    seed: int = 0,
) -> tuple[pa.Table, pa.Table]:
    """A feature table and a label table (Arrow) for ``rows`` tracks.

    Parameters
    ----------
    rows : int
        Number of tracks, ids 1 to ``rows``.
    genre_shares : mapping of str to float
        Genre names and their shares (normalised to sum 1).
    columns : sequence of str or None
        Feature columns; None for the 518.
    separation : float
        Standard deviation of the genre mean shifts, in noise units.
    test_fraction : float
        Share of each genre in the test split.
    nan_fraction : float
        Share of feature values replaced by NaN (FMA's undefined statistics).
    seed : int

    Returns
    -------
    features, labels : pyarrow.Table
        Features as the extraction job writes them (``track_id``, ``path``, ``status`` "ok",
        ``error``, float32 columns); labels with ``track_id``, ``genre_top``, ``split``.
    """
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if not genre_shares or min(genre_shares.values()) <= 0:
        raise ValueError("genre_shares must hold positive shares")
    if separation < 0 or not 0 <= test_fraction < 1 or not 0 <= nan_fraction < 1:
        raise ValueError("need separation >= 0, test_fraction and nan_fraction in [0, 1)")
    names = list(flat_names() if columns is None else columns)
    rng = np.random.default_rng(seed)
    genres = list(genre_shares)
    shares = np.array([genre_shares[g] for g in genres], dtype=float)
    classes = rng.choice(len(genres), size=rows, p=shares / shares.sum())
    shifts = rng.normal(0.0, separation, size=(len(genres), len(names))).astype(np.float32)
    scales = np.exp(rng.normal(0.0, 2.0, size=len(names))).astype(np.float32)
    offsets = rng.normal(0.0, 10.0, size=len(names)).astype(np.float32)
    values = rng.standard_normal((rows, len(names)), dtype=np.float32)
    values += shifts[classes]
    values *= scales
    values += offsets
    if nan_fraction:
        values[rng.random(values.shape) < nan_fraction] = np.nan
    ids = np.arange(1, rows + 1, dtype=np.int64)
    features = pa.table(
        {
            "track_id": ids,
            "path": [f"synthetic/{i:06d}.mp3" for i in ids],
            "status": pa.array(["ok"] * rows),
            "error": pa.nulls(rows, pa.string()),
            **{name: values[:, j] for j, name in enumerate(names)},
        }
    )
    split = np.full(rows, "train", dtype=object)
    for c in range(len(genres)):
        members = rng.permutation(np.flatnonzero(classes == c))
        split[members[: round(test_fraction * len(members))]] = "test"
    labels = pa.table(
        {
            "track_id": ids,
            "genre_top": pa.array([genres[c] for c in classes]),
            "split": pa.array(split.tolist()),
        }
    )
    return features, labels


def write_synthetic_tables(directory: str | Path, **kwargs) -> tuple[str, str]:
    """Write :func:`synthetic_tables` as Parquet in ``directory``/features and /labels.

    Returns the two directories.
    """
    features, labels = synthetic_tables(**kwargs)
    paths = []
    for name, table in (("features", features), ("labels", labels)):
        target = Path(directory) / name
        target.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target / "part-00000.parquet")
        paths.append(str(target))
    return paths[0], paths[1]
