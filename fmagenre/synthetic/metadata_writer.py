"""Write FMA's ``tracks.csv`` and ``genres.csv`` from a short description of each track.

For sample corpora and tests: the files are in the exact format that
:mod:`fmagenre.labels.metadata` reads; the columns not described get constant FMA-like
values or blanks.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from fmagenre.labels.genre_tree import GenreTree
from fmagenre.labels.metadata import (
    GENRES_COLUMNS,
    GENRES_FILE,
    GENRES_INDEX,
    INDEX_NAME,
    SPLITS,
    SUBSETS,
    TRACKS_COLUMNS,
    TRACKS_FILE,
)

# Values for the columns that write_fma_metadata is not given; None writes an empty cell.
_DATE = "2017-04-01 00:00:00"  # when FMA was frozen
_DEFAULTS: Mapping[tuple[str, str], object] = {
    ("album", "comments"): 0, ("album", "date_created"): _DATE,
    ("album", "date_released"): _DATE, ("album", "engineer"): None,
    ("album", "favorites"): 0, ("album", "information"): "<p></p>", ("album", "listens"): 0,
    ("album", "producer"): None, ("album", "tags"): [], ("album", "type"): "Album",
    ("artist", "active_year_begin"): None, ("artist", "active_year_end"): None,
    ("artist", "associated_labels"): None, ("artist", "bio"): None, ("artist", "comments"): 0,
    ("artist", "date_created"): _DATE, ("artist", "favorites"): 0,
    ("artist", "latitude"): None, ("artist", "location"): None, ("artist", "longitude"): None,
    ("artist", "members"): None, ("artist", "related_projects"): None,
    ("artist", "tags"): [], ("artist", "website"): None, ("artist", "wikipedia_page"): None,
    ("track", "comments"): 0, ("track", "composer"): None, ("track", "date_created"): _DATE,
    ("track", "date_recorded"): None, ("track", "favorites"): 0,
    ("track", "information"): None, ("track", "interest"): 0, ("track", "language_code"): "en",
    ("track", "license"): "Attribution-NonCommercial-ShareAlike 3.0 International",
    ("track", "listens"): 0, ("track", "lyricist"): None, ("track", "publisher"): None,
    ("track", "tags"): [],
}  # fmt: skip
_TRACK_KEYS = frozenset(
    ("track_id", "title", "artist", "album", "genres", "genre_top", "duration", "bit_rate",
     "split", "subset")
)  # fmt: skip


def _cell(value: object) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, list) else str(value)


def _check_track(track: Mapping, tree: GenreTree, top_titles: set[str]) -> None:
    keys = set(track)
    if keys != _TRACK_KEYS:
        raise ValueError(
            f"track {track.get('track_id')}: keys must be {sorted(_TRACK_KEYS)},"
            f" missing {sorted(_TRACK_KEYS - keys)}, unexpected {sorted(keys - _TRACK_KEYS)}"
        )
    unknown = [g for g in track["genres"] if g not in tree]
    if unknown:
        raise ValueError(f"track {track['track_id']}: genre ids {unknown} are not in genres")
    if track["genre_top"] is not None and track["genre_top"] not in top_titles:
        raise ValueError(
            f"track {track['track_id']}: genre_top {track['genre_top']!r} is not the title of"
            " a top-level genre"
        )
    if track["split"] not in SPLITS or track["subset"] not in SUBSETS:
        raise ValueError(
            f"track {track['track_id']}: split must be one of {SPLITS} and subset one of"
            f" {SUBSETS}, got {track['split']!r} and {track['subset']!r}"
        )


def write_fma_metadata(
    directory: str | os.PathLike,
    tracks: Sequence[Mapping],
    genres: Sequence[tuple[int, int, str]],
) -> tuple[Path, Path]:
    """Write ``tracks.csv`` and ``genres.csv`` in FMA's exact formats.

    Parameters
    ----------
    directory : str or path-like
        Where to write; created if missing. Existing files are replaced.
    tracks : sequence of mapping
        One mapping per track with exactly the keys ``track_id`` (int), ``title``, ``artist``,
        ``album`` (str), ``genres`` (list of int, the track's own genres), ``genre_top`` (str,
        the title of a top-level genre, or None for an empty cell), ``duration`` (int seconds),
        ``bit_rate`` (int, bits/s), ``split`` ('training', 'validation' or 'test') and
        ``subset`` ('small', 'medium' or 'large').
    genres : sequence of (int, int, str)
        ``(genre_id, parent_id, title)``, parent 0 for a top-level genre.

    Returns
    -------
    tracks_path, genres_path : pathlib.Path

    Notes
    -----
    ``track.genres_all`` is derived as the genres plus all their ancestors, ``genres.csv``'s
    ``#tracks`` as the number of tracks whose ``genres_all`` holds the genre and ``top_level``
    as the genre's root. Album and artist ids number the distinct (artist, album) pairs and
    artists in track id order, ``album.tracks`` and ``track.number`` count and number the
    album's tracks, and the other columns get constant FMA-like values or blanks.

    Raises
    ------
    ValueError
        On a malformed track (keys, unknown genre id, genre_top not a top-level title, split
        or subset value), a repeated track id, or a genre table that is not a tree.
    """
    tree = GenreTree(genres)
    top_titles = {tree.title(g) for g in tree.top_level}
    for track in tracks:
        _check_track(track, tree, top_titles)
    ordered = sorted(tracks, key=lambda track: track["track_id"])
    repeated = [tid for tid, n in Counter(t["track_id"] for t in ordered).items() if n > 1]
    if repeated:
        raise ValueError(f"track ids {repeated} appear more than once")

    artist_ids: dict[str, int] = {}
    album_ids: dict[tuple[str, str], int] = {}
    album_sizes: Counter = Counter()
    rows = []
    genre_counts: Counter = Counter()
    for track in ordered:
        album_key = (track["artist"], track["album"])
        artist_ids.setdefault(track["artist"], len(artist_ids) + 1)
        album_ids.setdefault(album_key, len(album_ids) + 1)
        album_sizes[album_key] += 1
        genres_all = tree.with_ancestors(track["genres"])
        genre_counts.update(genres_all)
        row = dict(_DEFAULTS)
        row.update(
            {
                ("album", "id"): album_ids[album_key],
                ("album", "title"): track["album"],
                ("artist", "id"): artist_ids[track["artist"]],
                ("artist", "name"): track["artist"],
                ("set", "split"): track["split"],
                ("set", "subset"): track["subset"],
                ("track", "bit_rate"): int(track["bit_rate"]),
                ("track", "duration"): int(track["duration"]),
                ("track", "genre_top"): track["genre_top"],
                ("track", "genres"): [int(g) for g in track["genres"]],
                ("track", "genres_all"): genres_all,
                ("track", "number"): album_sizes[album_key],
                ("track", "title"): track["title"],
            }
        )
        rows.append((track["track_id"], album_key, row))

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tracks_path, genres_path = directory / TRACKS_FILE, directory / GENRES_FILE
    with open(tracks_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["", *(group for group, _ in TRACKS_COLUMNS)])
        writer.writerow(["", *(name for _, name in TRACKS_COLUMNS)])
        writer.writerow([INDEX_NAME, *([""] * len(TRACKS_COLUMNS))])
        for track_id, album_key, row in rows:
            row["album", "tracks"] = album_sizes[album_key]
            writer.writerow([track_id, *(_cell(row[column]) for column in TRACKS_COLUMNS)])
    with open(genres_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([GENRES_INDEX, *GENRES_COLUMNS])
        for genre_id in sorted(tree.parents):
            parent, title, root = tree.parents[genre_id], tree.title(genre_id), tree.root(genre_id)
            writer.writerow([genre_id, genre_counts[genre_id], parent, title, root])
    return tracks_path, genres_path
