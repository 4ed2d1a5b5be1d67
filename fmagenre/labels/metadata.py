"""Read and write FMA's metadata tables, ``tracks.csv`` and ``genres.csv``.

``tracks.csv`` (from ``fma_metadata.zip``) has a 3-line header: the top-level group of each
column (``album``, ``artist``, ``set``, ``track``), then the column names, then ``track_id``
alone, the name of the index. Its 52 columns are sorted by (group, name). List cells hold Python
literals such as ``[21, 38]`` or ``['a', 'b']``. :func:`load_tracks` returns the same frame and
dtypes as FMA's own ``utils.load``: (group, name) column MultiIndex, lists, datetimes and
categoricals. Both loaders take a local path or the file's bytes, so that the jobs can read the
files through Hadoop (:func:`fmagenre.tables.label_table.read_metadata`) and parse them here.

A blank list cell reads as an empty list (FMA writes ``[]``); any other cell that is not a list
literal of the right element type raises :class:`MetadataFormatError` naming the track and the
column, so that a damaged file is never half read.

:func:`write_fma_metadata` writes both files in FMA's exact format from a short description of
each track, for sample corpora and tests.
"""

from __future__ import annotations

import ast
import csv
import io
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from fmagenre.labels.genre_tree import GenreTree

TRACKS_FILE = "tracks.csv"
GENRES_FILE = "genres.csv"
INDEX_NAME = "track_id"

# The real tracks.csv columns, in the file's order.
_GROUP_COLUMNS = {
    "album": (
        "comments", "date_created", "date_released", "engineer", "favorites", "id",
        "information", "listens", "producer", "tags", "title", "tracks", "type",
    ),
    "artist": (
        "active_year_begin", "active_year_end", "associated_labels", "bio", "comments",
        "date_created", "favorites", "id", "latitude", "location", "longitude", "members",
        "name", "related_projects", "tags", "website", "wikipedia_page",
    ),
    "set": ("split", "subset"),
    "track": (
        "bit_rate", "comments", "composer", "date_created", "date_recorded", "duration",
        "favorites", "genre_top", "genres", "genres_all", "information", "interest",
        "language_code", "license", "listens", "lyricist", "number", "publisher", "tags",
        "title",
    ),
}  # fmt: skip
TRACKS_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (group, name) for group, names in _GROUP_COLUMNS.items() for name in names
)

LIST_COLUMNS: Mapping[tuple[str, str], type] = {
    ("album", "tags"): str,
    ("artist", "tags"): str,
    ("track", "genres"): int,
    ("track", "genres_all"): int,
    ("track", "tags"): str,
}
DATE_COLUMNS = (
    ("album", "date_created"), ("album", "date_released"), ("artist", "active_year_begin"),
    ("artist", "active_year_end"), ("artist", "date_created"), ("track", "date_created"),
    ("track", "date_recorded"),
)  # fmt: skip
CATEGORY_COLUMNS = (
    ("album", "information"), ("album", "type"), ("artist", "bio"), ("track", "genre_top"),
    ("track", "license"),
)  # fmt: skip
# Not converted by FMA's loader, but the label table needs whole numbers here.
INTEGER_COLUMNS = (("track", "bit_rate"), ("track", "duration"))

SUBSETS = ("small", "medium", "large")  # ordered: small is inside medium, inside large
SPLITS = ("training", "validation", "test")
GENRES_COLUMNS = ("#tracks", "parent", "title", "top_level")
GENRES_INDEX = "genre_id"

_FIX_TRACKS = "use the tracks.csv of FMA's fma_metadata.zip, or one from write_fma_metadata"
_FIX_GENRES = "use the genres.csv of FMA's fma_metadata.zip, or one from write_fma_metadata"


class MetadataFormatError(ValueError):
    """A metadata file is not in FMA's format; the message names the file and the fault."""

    def __init__(self, path: str | os.PathLike, problem: str, fix: str):
        super().__init__(f"{path}: {problem}; {fix}")


def _column_name(column: tuple[str, str]) -> str:
    return ".".join(column)


def _shorten(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def missing_metadata(directory: str | os.PathLike, name: str | None = None) -> FileNotFoundError:
    """The one-line error for a metadata directory that does not exist, or lacks ``name``."""
    problem = (
        f"{directory} has no {name}" if name else f"metadata directory {directory} does not exist"
    )
    return FileNotFoundError(f"{problem}: give the unzipped fma_metadata folder")


def find_metadata_files(directory: str | os.PathLike) -> tuple[Path, Path]:
    """Paths of ``tracks.csv`` and ``genres.csv`` in a local metadata directory.

    Raises
    ------
    FileNotFoundError
        With a one-line message, when the directory or either file is missing.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise missing_metadata(directory)
    paths = directory / TRACKS_FILE, directory / GENRES_FILE
    for path in paths:
        if not path.is_file():
            raise missing_metadata(directory, path.name)
    return paths


def load_metadata(directory: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Load ``tracks.csv`` and ``genres.csv`` from a local metadata directory.

    Returns
    -------
    tracks, genres : pandas.DataFrame
        As :func:`load_tracks` and :func:`load_genres` return them.
    """
    tracks_path, genres_path = find_metadata_files(directory)
    return load_tracks(tracks_path), load_genres(genres_path)


#: A file to parse: its local path, or its bytes.
Source = str | os.PathLike | bytes


def _header_lines(source: Source, path: str, count: int, fix: str) -> list[list[str]]:
    """The first lines of a CSV file, split into cells (header lines hold no line breaks).

    ``path`` names the file in errors.
    """
    try:
        with (
            io.TextIOWrapper(io.BytesIO(source), encoding="utf-8", newline="")
            if isinstance(source, bytes)
            else open(source, newline="", encoding="utf-8")
        ) as handle:
            return [next(csv.reader([handle.readline()]), []) for _ in range(count)]
    except UnicodeDecodeError:
        raise MetadataFormatError(path, "this is not UTF-8 text", fix) from None


def _read_csv(source: Source, path: str, fix: str, **options) -> pd.DataFrame:
    try:
        return pd.read_csv(io.BytesIO(source) if isinstance(source, bytes) else source, **options)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        problem = " ".join(str(error).split())  # one line
        raise MetadataFormatError(path, f"the CSV cannot be parsed ({problem})", fix) from None


def _check_tracks_header(source: Source, path: str) -> None:
    """Check the 3-line header before pandas reads the file, to name the faulty line."""
    lines = _header_lines(source, path, 3, _FIX_TRACKS)
    groups, names, index = lines
    if not groups or groups[0] != "" or not set(groups[1:]) <= set(_GROUP_COLUMNS):
        raise MetadataFormatError(
            path,
            f"header line 1 must be an empty cell then the groups {', '.join(_GROUP_COLUMNS)},"
            f" found {_shorten(','.join(groups[:4]))} (a single-line header is not FMA's format)",
            _FIX_TRACKS,
        )
    if len(names) != len(groups) or names[0] != "":
        raise MetadataFormatError(
            path,
            "header line 2 must be an empty cell then one column name per group of line 1,"
            f" found {len(names)} cells for {len(groups)} groups",
            _FIX_TRACKS,
        )
    if not index or index[0] != INDEX_NAME or any(index[1:]):
        raise MetadataFormatError(
            path,
            f"header line 3 must be {INDEX_NAME!r} then empty cells,"
            f" found {_shorten(','.join(index[:3]))}",
            _FIX_TRACKS,
        )
    columns = list(zip(groups[1:], names[1:], strict=True))
    duplicated = [c for c, n in Counter(columns).items() if n > 1]
    if duplicated:
        raise MetadataFormatError(
            path, f"column {_column_name(duplicated[0])} appears twice in the header", _FIX_TRACKS
        )
    missing = [c for c in TRACKS_COLUMNS if c not in set(columns)]
    if missing:
        shown = ", ".join(_column_name(c) for c in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise MetadataFormatError(path, f"missing column(s) {shown}{more}", _FIX_TRACKS)


def _literal_list(cell: str, element_type: type) -> tuple:
    """The list that a cell's Python literal spells, or ValueError."""
    try:
        value = ast.literal_eval(cell.strip())
    except (ValueError, SyntaxError, RecursionError) as error:
        raise ValueError("not a Python literal") from error
    if not isinstance(value, list):
        raise ValueError(f"a Python {type(value).__name__}, not a list")
    # bool is a subclass of int, but True is no genre id.
    if any(type(item) is not element_type for item in value):
        raise ValueError(f"not a list of {element_type.__name__}")
    return tuple(value)


def _parse_list_column(series: pd.Series, element_type: type, path: str) -> pd.Series:
    parsed: dict[str, tuple] = {}  # many cells repeat, e.g. "[]"
    values = []
    for track_id, cell in series.items():
        if not isinstance(cell, str):
            if pd.isna(cell):
                values.append([])
                continue
            cell = str(cell)  # a column of bare numbers, which pandas parsed
        if cell not in parsed:
            try:
                parsed[cell] = _literal_list(cell, element_type)
            except ValueError as error:
                raise MetadataFormatError(
                    path,
                    f"track {track_id}, column {_column_name(series.name)}: {_shorten(cell)}"
                    f" is {error}",
                    "write it like [21, 38] or ['a', 'b'], or blank it for an empty list",
                ) from None
        values.append(list(parsed[cell]))
    return pd.Series(values, index=series.index, name=series.name, dtype=object)


def _first_bad(series: pd.Series, bad: pd.Series) -> str:
    track_id = bad[bad].index[0]
    return f"track {track_id} has {_shorten(series.loc[track_id])}"


def _check_values(series: pd.Series, allowed: Sequence[str], path: str) -> None:
    bad = series.notna() & ~series.isin(allowed)
    if bad.any():
        raise MetadataFormatError(
            path,
            f"column {_column_name(series.name)} must be one of {', '.join(allowed)} or blank:"
            f" {_first_bad(series, bad)}",
            _FIX_TRACKS,
        )


def _to_integer(series: pd.Series, path: str) -> pd.Series:
    numbers = pd.to_numeric(series, errors="coerce")
    bad = series.notna() & (numbers.isna() | (numbers % 1 != 0))
    if bad.any():
        raise MetadataFormatError(
            path,
            f"column {_column_name(series.name)} must hold whole numbers:"
            f" {_first_bad(series, bad)}",
            _FIX_TRACKS,
        )
    return numbers.astype("int64" if numbers.notna().all() else "Int64")


def load_tracks(source: Source, *, name: str | None = None) -> pd.DataFrame:
    """Load FMA's ``tracks.csv`` with the dtypes of FMA's own loader.

    Parameters
    ----------
    source : str, path-like or bytes
        A local ``tracks.csv`` with FMA's 3-line header, or the file's bytes.
    name : str or None
        What errors call the file; default: the path, or ``tracks.csv`` for bytes.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``track_id`` (int64), with (group, name) MultiIndex columns: list columns
        (``track.genres``, ``track.genres_all``, ``*.tags``) as Python lists, dates as
        ``datetime64``, ``set.subset`` as an ordered categorical (small < medium < large),
        ``track.genre_top``, ``track.license``, ``album.type``, ``album.information`` and
        ``artist.bio`` as categoricals, ``track.duration`` and ``track.bit_rate`` as integers.

    Raises
    ------
    MetadataFormatError
        When the header is not FMA's, a column is missing, a list or date cell is malformed,
        or ``set.split``/``set.subset`` hold unknown values.
    """
    path = name or (TRACKS_FILE if isinstance(source, bytes) else str(source))
    _check_tracks_header(source, path)
    tracks = _read_csv(source, path, _FIX_TRACKS, header=[0, 1], index_col=0, low_memory=False)
    if not pd.api.types.is_integer_dtype(tracks.index) or tracks.index.has_duplicates:
        raise MetadataFormatError(
            path, f"the {INDEX_NAME} column must hold unique whole numbers", _FIX_TRACKS
        )
    tracks.index.name = INDEX_NAME
    for column, element_type in LIST_COLUMNS.items():
        tracks[column] = _parse_list_column(tracks[column], element_type, path)
    for column in DATE_COLUMNS:
        dates = pd.to_datetime(tracks[column], format="ISO8601", errors="coerce")
        bad = dates.isna() & tracks[column].notna()
        if bad.any():
            raise MetadataFormatError(
                path,
                f"column {_column_name(column)} must hold dates like 2008-11-26 01:44:45:"
                f" {_first_bad(tracks[column], bad)}",
                _FIX_TRACKS,
            )
        tracks[column] = dates
    for column in INTEGER_COLUMNS:
        tracks[column] = _to_integer(tracks[column], path)
    _check_values(tracks["set", "split"], SPLITS, path)
    _check_values(tracks["set", "subset"], SUBSETS, path)
    tracks["set", "subset"] = tracks["set", "subset"].astype(
        pd.CategoricalDtype(categories=SUBSETS, ordered=True)
    )
    for column in CATEGORY_COLUMNS:
        tracks[column] = tracks[column].astype("category")
    return tracks


def load_genres(source: Source, *, name: str | None = None) -> pd.DataFrame:
    """Load FMA's ``genres.csv``: ``genre_id,#tracks,parent,title,top_level``.

    Parameters
    ----------
    source : str, path-like or bytes
        A local ``genres.csv``, or the file's bytes.
    name : str or None
        What errors call the file; default: the path, or ``genres.csv`` for bytes.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``genre_id``, with integer ``#tracks``, ``parent`` (0 for a top-level
        genre) and ``top_level`` columns and a string ``title``.

    Raises
    ------
    MetadataFormatError
        When a column is missing, an id is not a whole number, or a genre id repeats.
    """
    path = name or (GENRES_FILE if isinstance(source, bytes) else str(source))
    (header,) = _header_lines(source, path, 1, _FIX_GENRES)
    if not header or header[0] != GENRES_INDEX:
        raise MetadataFormatError(
            path,
            f"the header must start with {GENRES_INDEX!r}, found {_shorten(','.join(header[:3]))}",
            _FIX_GENRES,
        )
    missing = [c for c in GENRES_COLUMNS if c not in header[1:]]
    if missing:
        raise MetadataFormatError(path, f"missing column(s) {', '.join(missing)}", _FIX_GENRES)
    genres = _read_csv(
        source, path, _FIX_GENRES, index_col=0, keep_default_na=False, na_values=[""]
    )
    for column in ("#tracks", "parent", "top_level"):
        if not pd.api.types.is_integer_dtype(genres[column]):
            raise MetadataFormatError(
                path, f"column {column} must hold whole numbers in every row", _FIX_GENRES
            )
    if not pd.api.types.is_integer_dtype(genres.index) or genres.index.has_duplicates:
        raise MetadataFormatError(
            path, f"the {GENRES_INDEX} column must hold unique whole numbers", _FIX_GENRES
        )
    if genres["title"].isna().any():
        genre_id = genres.index[genres["title"].isna()][0]
        raise MetadataFormatError(path, f"genre {genre_id} has no title", _FIX_GENRES)
    genres["title"] = genres["title"].astype(str)
    return genres


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
