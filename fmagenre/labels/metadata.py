"""Read FMA's metadata tables, ``tracks.csv`` and ``genres.csv``.

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

:mod:`fmagenre.synthetic.metadata_writer` writes both files in this format for sample corpora
and tests.
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

from fmagenre.errors import InputError, shown_names

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


class MetadataFormatError(InputError, ValueError):
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
        shown = shown_names([_column_name(c) for c in missing], limit=5)
        raise MetadataFormatError(path, f"missing column(s) {shown}", _FIX_TRACKS)


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
