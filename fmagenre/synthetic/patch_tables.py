"""Synthetic patches tables: log-mel-shaped uint8 patches whose genre can be learnt, for tests.

Each genre has a signature: two horizontal bands (sustained partials) at genre-specific mel
bands and a pulse every ``period`` frames, both shifted at random per track (up to 3 bands
and any phase), on a noise floor whose level also varies per track. The table has the columns
of a feature table that the network reads (``path``, ``track_id``, ``status``, ``patches``,
``patch_error``) in several Parquet files, with a few rows without patches; the label table
has ``track_id``, ``genre_top`` and ``split``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fmagenre.audio.patches import PatchSettings, patches_to_bytes


def genre_patches(
    genre: int, count: int, rng: np.random.Generator, settings: PatchSettings
) -> np.ndarray:
    """``count`` uint8 patches of one track of genre index ``genre``."""
    mels, frames = settings.n_mels, settings.frames
    floor = rng.uniform(40, 80)
    x = floor + rng.normal(0, 12, size=(count, mels, frames))
    shift = int(rng.integers(-3, 4))
    for band in (8 + 11 * genre, 60 - 7 * genre):
        centre = (band + shift) % (mels - 4) + 2
        x[:, centre - 2 : centre + 2, :] += rng.uniform(50, 80)
    period = 6 + 4 * genre
    phase = int(rng.integers(period))
    x[:, : mels // 2, phase::period] += rng.uniform(25, 45)
    return np.clip(x, 0, 255).astype(np.uint8)


def write_patch_tables(
    directory: str | Path,
    *,
    genres: Sequence[str] = ("Electronic", "Folk", "Hip-Hop", "Rock"),
    tracks: int = 80,
    patches_per_track: int = 4,
    test_fraction: float = 0.25,
    files: int = 4,
    bad_rows: int = 3,
    without_patches: Sequence[str] = (),
    seed: int = 0,
) -> tuple[str, str]:
    """Write ``directory/patches`` (``files`` Parquet files) and ``directory/labels``.

    Tracks cycle through ``genres``; every fourth of a genre's tracks (about
    ``test_fraction``) is a test track. ``bad_rows`` extra labelled training tracks have no
    patches (``patch_error`` too_short), and so do the training tracks of the genres in
    ``without_patches``. Returns the two paths.
    """
    settings = PatchSettings()
    rng = np.random.default_rng(seed)
    root = Path(directory)
    rows, labels = [], []
    every = max(2, round(1 / test_fraction))
    for i in range(tracks + bad_rows):
        track_id = 1000 + i
        genre = i % len(genres)
        split = "test" if (i // len(genres)) % every == every - 1 else "train"
        bad = i >= tracks or (split == "train" and genres[genre] in without_patches)
        data = (
            None
            if bad
            else patches_to_bytes(genre_patches(genre, patches_per_track, rng, settings))
        )
        rows.append(
            {
                "path": f"/music/{track_id}.mp3",
                "track_id": track_id,
                "status": "ok",
                "patches": data,
                "patch_error": "too_short: 1.2 s, one patch needs 2.97 s" if bad else None,
            }
        )
        labels.append({"track_id": track_id, "genre_top": genres[genre], "split": split})
    schema = pa.schema(
        [
            ("path", pa.string()),
            ("track_id", pa.int64()),
            ("status", pa.string()),
            ("patches", pa.binary()),
            ("patch_error", pa.string()),
        ]
    )
    table_dir, label_dir = root / "patches", root / "labels"
    table_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    for part in range(files):
        chunk = rows[part::files]
        pq.write_table(
            pa.Table.from_pylist(chunk, schema=schema), table_dir / f"part-{part:05d}.parquet"
        )
    pq.write_table(pa.Table.from_pylist(labels), label_dir / "part-00000.parquet")
    return str(table_dir), str(label_dir)
