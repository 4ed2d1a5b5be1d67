"""FMA metadata: the real tracks.csv layout, clear errors on other files, and the writer."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pandas as pd
import pytest

from fmagenre.labels.metadata import (
    TRACKS_COLUMNS,
    MetadataFormatError,
    find_metadata_files,
    load_genres,
    load_metadata,
    load_tracks,
)
from fmagenre.synthetic.metadata_writer import write_fma_metadata

# Hand-written in the real files' layout (rows after FMA's tracks 2, 3, 5, 10, 20), not by
# write_fma_metadata.
FIXTURE = Path(__file__).parent / "data" / "fma_metadata"


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _write_rows(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    return path


def _cell_index(rows: list[list[str]], group: str, name: str) -> int:
    return next(
        i for i, (g, n) in enumerate(zip(rows[0], rows[1], strict=True)) if (g, n) == (group, name)
    )


def _edited(tmp_path: Path, group: str, name: str, track_id: str, value: str) -> Path:
    """The fixture with one cell replaced."""
    rows = _rows(FIXTURE / "tracks.csv")
    column = _cell_index(rows, group, name)
    next(r for r in rows if r[0] == track_id)[column] = value
    return _write_rows(tmp_path / "tracks.csv", rows)


def test_real_layout_loads_with_fma_dtypes():
    tracks = load_tracks(FIXTURE / "tracks.csv")
    assert tracks.shape == (7, 52)
    assert tracks.index.name == "track_id"
    assert list(tracks.index) == [2, 3, 5, 10, 20, 30, 134]
    assert set(tracks.columns) == set(TRACKS_COLUMNS)

    assert tracks.loc[20, ("track", "genres")] == [76, 103]
    assert tracks.loc[20, ("track", "genres_all")] == [17, 10, 76, 103]
    assert tracks.loc[134, ("track", "genres_all")] == []
    assert tracks.loc[10, ("artist", "tags")] == ["philly", "kurt vile"]
    assert tracks.loc[30, ("track", "tags")] == ["punk"]
    assert tracks.loc[2, ("artist", "members")].endswith("\nKal Marks,Zawida 'Sajje' Weaver")
    assert tracks.loc[20, ("album", "information")] == '<p> "spiritual songs" from Nicky Cook</p>'

    assert tracks.loc[2, ("track", "date_created")] == pd.Timestamp("2008-11-26 01:48:12")
    assert pd.isna(tracks.loc[30, ("track", "date_recorded")])
    for column in [("album", "date_released"), ("artist", "active_year_begin")]:
        assert pd.api.types.is_datetime64_any_dtype(tracks[column])

    subset = tracks["set", "subset"]
    assert subset.dtype.ordered and list(subset.cat.categories) == ["small", "medium", "large"]
    assert (subset <= "medium").sum() == 4  # tracks 2, 3, 5, 10: small is inside medium
    for column in [("track", "genre_top"), ("track", "license"), ("album", "type")]:
        assert isinstance(tracks[column].dtype, pd.CategoricalDtype)
    assert pd.isna(tracks.loc[20, ("track", "genre_top")])
    assert tracks.loc[10, ("track", "genre_top")] == "Pop"
    assert tracks.loc[3, ("set", "split")] == "validation"
    assert tracks["track", "duration"].dtype == "int64"
    assert tracks.loc[5, ("track", "duration")] == 206


def test_genres_csv_loads():
    genres = load_genres(FIXTURE / "genres.csv")
    assert genres.index.name == "genre_id"
    assert list(genres.columns) == ["#tracks", "parent", "title", "top_level"]
    assert genres.loc[76, "parent"] == 10 and genres.loc[76, "title"] == "Experimental Pop"


def test_load_metadata_and_missing_paths(tmp_path):
    tracks, genres = load_metadata(FIXTURE)
    assert len(tracks) == 7 and len(genres) == 8
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_metadata_files(tmp_path / "nope")
    shutil.copy(FIXTURE / "tracks.csv", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"has no genres\.csv"):
        load_metadata(tmp_path)


def _assert_one_line_error(error: pytest.ExceptionInfo, path: Path, *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message


def test_missing_group_header_line(tmp_path):
    rows = _rows(FIXTURE / "tracks.csv")
    path = _write_rows(tmp_path / "tracks.csv", rows[1:])
    with pytest.raises(MetadataFormatError) as error:
        load_tracks(path)
    _assert_one_line_error(error, path, "header line 1")


def test_single_line_header_is_rejected(tmp_path):
    table = pd.DataFrame({"track_id": [1], "genre_top": ["Rock"]})
    path = tmp_path / "tracks.csv"
    table.to_csv(path, index=False)
    with pytest.raises(MetadataFormatError) as error:
        load_tracks(path)
    _assert_one_line_error(error, path, "header line 1", "single-line header")


def test_missing_index_name_line(tmp_path):
    rows = _rows(FIXTURE / "tracks.csv")
    path = _write_rows(tmp_path / "tracks.csv", rows[:2] + rows[3:])
    with pytest.raises(MetadataFormatError) as error:
        load_tracks(path)
    _assert_one_line_error(error, path, "header line 3", "'track_id'")


def test_missing_column_is_named(tmp_path):
    rows = _rows(FIXTURE / "tracks.csv")
    column = _cell_index(rows, "track", "genres_all")
    path = _write_rows(tmp_path / "tracks.csv", [r[:column] + r[column + 1 :] for r in rows])
    with pytest.raises(MetadataFormatError) as error:
        load_tracks(path)
    _assert_one_line_error(error, path, "missing column(s) track.genres_all")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("[21, ", "not a Python literal"),
        ("21", "a Python int, not a list"),
        ("{21: 1}", "a Python dict, not a list"),
        ("['21']", "not a list of int"),
        ("[True]", "not a list of int"),
        ("__import__('os').getcwd()", "not a Python literal"),
    ],
)
def test_bad_list_cell_names_track_and_column(tmp_path, value, problem):
    path = _edited(tmp_path, "track", "genres", "3", value)
    with pytest.raises(MetadataFormatError) as error:
        load_tracks(path)
    _assert_one_line_error(error, path, "track 3, column track.genres", problem)


def test_tags_must_be_strings(tmp_path):
    path = _edited(tmp_path, "artist", "tags", "10", "[1, 2]")
    with pytest.raises(MetadataFormatError, match=r"track 10, column artist\.tags"):
        load_tracks(path)


def test_blank_list_cell_is_an_empty_list(tmp_path):
    path = _edited(tmp_path, "track", "tags", "30", "")
    assert load_tracks(path).loc[30, ("track", "tags")] == []


@pytest.mark.parametrize(
    ("group", "name", "value", "fragment"),
    [
        ("track", "date_created", "yesterday", "column track.date_created must hold dates"),
        ("set", "subset", "tiny", "column set.subset must be one of small, medium, large"),
        ("set", "split", "train", "column set.split must be one of training, validation, test"),
        ("track", "duration", "2:48", "column track.duration must hold whole numbers"),
    ],
)
def test_bad_values_are_named(tmp_path, group, name, value, fragment):
    path = _edited(tmp_path, group, name, "5", value)
    with pytest.raises(MetadataFormatError) as error:
        load_tracks(path)
    _assert_one_line_error(error, path, fragment, "track 5")


def test_repeated_track_id(tmp_path):
    rows = _rows(FIXTURE / "tracks.csv")
    path = _write_rows(tmp_path / "tracks.csv", [*rows, rows[-1]])
    with pytest.raises(MetadataFormatError, match="unique whole numbers"):
        load_tracks(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "tracks.csv"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(MetadataFormatError, match="not UTF-8"):
        load_tracks(path)


def test_genres_missing_column(tmp_path):
    table = pd.read_csv(FIXTURE / "genres.csv").drop(columns="parent")
    path = tmp_path / "genres.csv"
    table.to_csv(path, index=False)
    with pytest.raises(MetadataFormatError) as error:
        load_genres(path)
    _assert_one_line_error(error, path, "missing column(s) parent")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("id,#tracks,parent,title,top_level\n1,0,0,Rock,1\n", "must start with 'genre_id'"),
        ("genre_id,#tracks,parent,title,top_level\n1,0,x,Rock,1\n", "column parent"),
        ("genre_id,#tracks,parent,title,top_level\n1,0,0,,1\n", "genre 1 has no title"),
        ("genre_id,#tracks,parent,title,top_level\n1,0,0,A,1\n1,0,0,B,1\n", "unique"),
    ],
)
def test_genres_bad_values(tmp_path, text, fragment):
    path = tmp_path / "genres.csv"
    path.write_text(text)
    with pytest.raises(MetadataFormatError, match=fragment):
        load_genres(path)


GENRES = [(12, 0, "Rock"), (25, 12, "Punk"), (26, 25, "Hardcore"), (21, 0, "Hip-Hop")]


def _track(track_id, genres, genre_top, **overrides):
    track = {
        "track_id": track_id,
        "title": f'Song, "{track_id}"\nlive',  # commas, quotes and a line break
        "artist": "AWOL" if track_id < 10 else "Kurt Vile",
        "album": "A Way Of Life",
        "genres": genres,
        "genre_top": genre_top,
        "duration": 100 + track_id,
        "bit_rate": 256000,
        "split": "training",
        "subset": "small",
    }
    return {**track, **overrides}


def test_writer_round_trip(tmp_path):
    tracks = [
        _track(7, [26], "Rock", split="test"),
        _track(3, [21], "Hip-Hop", subset="large"),
        _track(11, [26, 21], None, split="validation"),
        _track(5, [], None),
    ]
    tracks_path, genres_path = write_fma_metadata(tmp_path, tracks, GENRES)

    # Same three header lines as the real file.
    real_header = (FIXTURE / "tracks.csv").read_text().splitlines()[:3]
    assert tracks_path.read_text().splitlines()[:3] == real_header

    loaded = load_tracks(tracks_path)
    assert list(loaded.index) == [3, 5, 7, 11]
    assert loaded.shape[1] == 52
    for track in tracks:
        row = loaded.loc[track["track_id"]]
        assert row["track", "title"] == track["title"]
        assert row["artist", "name"] == track["artist"]
        assert row["album", "title"] == track["album"]
        assert row["track", "genres"] == track["genres"]
        assert row["track", "duration"] == track["duration"]
        assert row["track", "bit_rate"] == track["bit_rate"]
        assert row["set", "split"] == track["split"]
        assert row["set", "subset"] == track["subset"]
        given = row["track", "genre_top"]
        assert given == track["genre_top"] or (pd.isna(given) and track["genre_top"] is None)
    assert loaded.loc[7, ("track", "genres_all")] == [12, 25, 26]
    assert loaded.loc[11, ("track", "genres_all")] == [12, 21, 25, 26]
    assert loaded.loc[5, ("track", "genres_all")] == []
    # Two artists with one album each; AWOL's album holds tracks 3, 5 and 7.
    assert loaded.loc[7, ("album", "tracks")] == 3 and loaded.loc[7, ("track", "number")] == 3
    assert loaded.loc[11, ("album", "id")] != loaded.loc[3, ("album", "id")]

    genres = load_genres(genres_path)
    assert list(genres.index) == [12, 21, 25, 26]
    # #tracks counts genres_all: Rock in 7 and 11, Hip-Hop in 3 and 11.
    assert genres["#tracks"].to_dict() == {12: 2, 21: 2, 25: 2, 26: 2}
    assert genres["top_level"].to_dict() == {12: 12, 21: 21, 25: 12, 26: 12}
    assert genres.loc[26, "parent"] == 25


def test_writer_output_parses_like_pandas(tmp_path):
    # The quoted list cells are what pandas' own to_csv writes for a list.
    tracks_path, _ = write_fma_metadata(tmp_path, [_track(1, [26, 21], None)], GENRES)
    line = tracks_path.read_text().split("\n", 3)[3]
    expected = io.StringIO()
    pd.DataFrame({"a": [[26, 21]]}).to_csv(expected, index=False, header=False)
    assert expected.getvalue().strip() in line


@pytest.mark.parametrize(
    ("track", "message"),
    [
        (_track(1, [99], None), r"genre ids \[99\]"),
        (_track(1, [25], "Punk"), "not the title of a top-level genre"),
        (_track(1, [25], None, split="train"), "split must be one of"),
        ({"track_id": 1}, "keys must be"),
    ],
)
def test_writer_rejects_bad_tracks(tmp_path, track, message):
    with pytest.raises(ValueError, match=message):
        write_fma_metadata(tmp_path, [track], GENRES)


def test_writer_rejects_repeated_track_id(tmp_path):
    with pytest.raises(ValueError, match="more than once"):
        write_fma_metadata(tmp_path, [_track(1, [], None), _track(1, [], None)], GENRES)
