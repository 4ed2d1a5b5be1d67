"""Imputation of the top-level genre, the train/test split and the summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fmagenre.labels.genre_tree import GenreTree
from fmagenre.labels.imputation import (
    GIVEN,
    IMPUTED,
    IMPUTED_TIE,
    TABLE_COLUMNS,
    LabelError,
    build_label_table,
    format_summary,
    impute_genre_top,
    missing_percentages,
    official_split,
    stratified_split,
    tie_break,
)
from fmagenre.labels.metadata import load_metadata

FIXTURE = Path(__file__).parent / "data" / "fma_metadata"

TREE = GenreTree(
    [
        (10, 0, "Pop"),
        (76, 10, "Experimental Pop"),
        (12, 0, "Rock"),
        (25, 12, "Punk"),
        (17, 0, "Folk"),
        (103, 17, "Singer-Songwriter"),
        (21, 0, "Hip-Hop"),
    ]
)


def _tracks(rows: dict[int, tuple[str | None, list[int]]]) -> pd.DataFrame:
    """Tracks with only the columns imputation reads: {track_id: (genre_top, genres_all)}."""
    index = pd.Index(list(rows), name="track_id")
    return pd.DataFrame(
        {
            ("track", "genre_top"): [top for top, _ in rows.values()],
            ("track", "genres"): [genres for _, genres in rows.values()],
            ("track", "genres_all"): [genres for _, genres in rows.values()],
        },
        index=index,
    )


def test_given_genre_top_is_kept_even_against_the_majority():
    labels = impute_genre_top(_tracks({1: ("Hip-Hop", [12, 25, 21])}), TREE).labels
    assert labels.loc[1].tolist() == ["Hip-Hop", 21, GIVEN]


def test_majority_root_wins():
    # Punk and Rock both map to Rock: 2 votes against 1 for Hip-Hop.
    labels = impute_genre_top(_tracks({1: (None, [12, 25, 21])}), TREE).labels
    assert labels.loc[1].tolist() == ["Rock", 12, IMPUTED]


def test_tie_is_marked_and_breaks_both_ways():
    # Pop (10, 76) against Folk (17, 103): a 2-2 tie on every track.
    rows = {track_id: (None, [10, 76, 17, 103]) for track_id in range(1, 41)}
    labels = impute_genre_top(_tracks(rows), TREE, seed=7).labels
    assert (labels["genre_top_source"] == IMPUTED_TIE).all()
    assert set(labels["genre_top"]) == {"Pop", "Folk"}  # 40 fair draws: both occur
    assert (labels["genre_top_id"] == labels["genre_top"].map({"Pop": 10, "Folk": 17})).all()


def test_tie_break_is_reproducible_and_independent_of_row_order():
    rows = {track_id: (None, [76, 103]) for track_id in range(100, 130)}
    first = impute_genre_top(_tracks(rows), TREE, seed=3).labels
    reordered = dict(reversed(list(rows.items())))
    again = impute_genre_top(_tracks(reordered), TREE, seed=3).labels
    pd.testing.assert_frame_equal(first, again)
    other = impute_genre_top(_tracks(rows), TREE, seed=4).labels
    assert not first["genre_top"].equals(other["genre_top"])


def test_tie_break_ignores_candidate_order():
    picks = {tie_break(order, seed=5, track_id=9) for order in ([10, 17, 21], [21, 10, 17])}
    assert len(picks) == 1 and picks <= {10, 17, 21}
    with pytest.raises(ValueError, match="non-negative"):
        tie_break([1, 2], seed=-1, track_id=9)


def test_unknown_ids_are_counted_and_ignored():
    tracks = _tracks({1: (None, [999, 12]), 2: (None, [999]), 3: ("Rock", [12, 998])})
    imputation = impute_genre_top(tracks, TREE)
    assert imputation.labels.loc[1].tolist() == ["Rock", 12, IMPUTED]
    assert 2 not in imputation.labels.index
    assert imputation.dropped_unknown == 1 and imputation.dropped_empty == 0
    assert imputation.unknown_genre_ids == {998: 1, 999: 2}  # tracks carrying each id


def test_empty_genres_all_is_dropped():
    imputation = impute_genre_top(_tracks({1: (None, []), 2: ("Pop", [10])}), TREE)
    assert list(imputation.labels.index) == [2]
    assert imputation.dropped_empty == 1 and imputation.dropped_unknown == 0


def test_genre_top_that_is_no_root_is_an_error():
    with pytest.raises(LabelError, match="Punk"):
        impute_genre_top(_tracks({1: ("Punk", [25])}), TREE)


def _classes(sizes: dict[int, int]) -> pd.Series:
    class_ids = [c for c, n in sizes.items() for _ in range(n)]
    return pd.Series(class_ids, index=pd.RangeIndex(1000, 1000 + len(class_ids)))


def test_stratified_split_counts_per_class():
    classes = _classes({1: 100, 2: 50, 3: 9, 4: 2, 5: 1})
    split = stratified_split(classes, test_fraction=0.107, seed=0)
    test_per_class = classes[split == "test"].value_counts().reindex([1, 2, 3, 4, 5]).fillna(0)
    # round(10.7) = 11, round(5.35) = 5, round(0.963) = 1, 2 tracks -> at least 1, 1 -> none.
    assert test_per_class.tolist() == [11, 5, 1, 1, 0]
    assert set(split) == {"train", "test"}


def test_stratified_split_keeps_one_train_track():
    classes = _classes({1: 2, 2: 3})
    split = stratified_split(classes, test_fraction=0.9, seed=0)
    assert classes[split == "train"].value_counts().sort_index().tolist() == [1, 1]


def test_stratified_split_is_deterministic_and_order_free():
    classes = _classes({1: 60, 2: 40})
    split = stratified_split(classes, seed=11)
    shuffled = classes.sample(frac=1.0, random_state=np.random.default_rng(0))
    again = stratified_split(shuffled, seed=11)
    pd.testing.assert_series_equal(split, again.loc[split.index])
    assert not split.equals(stratified_split(classes, seed=12))


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_stratified_split_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(_classes({1: 5}), test_fraction=fraction)


def test_official_split():
    set_split = pd.Series(["training", "validation", "test"], index=[1, 2, 3])
    assert official_split(set_split).tolist() == ["train", "train", "test"]
    with pytest.raises(LabelError, match=r"no set\.split"):
        official_split(pd.Series(["training", None], index=[1, 2]))


def test_missing_percentages_count_blank_and_empty_lists():
    tracks = pd.DataFrame(
        {
            ("track", "genre_top"): ["Rock", None, None, "Pop"],
            ("track", "tags"): [[], ["a"], [], []],
            ("track", "duration"): [1, 2, 3, 4],
        }
    )
    assert missing_percentages(tracks) == {
        "track.genre_top": 50.0,
        "track.tags": 75.0,
        "track.duration": 0.0,
    }


@pytest.fixture(scope="module")
def metadata():
    return load_metadata(FIXTURE)


def test_label_table_of_the_real_layout(metadata):
    tracks, genres = metadata
    result = build_label_table(tracks, genres, seed=1, test_fraction=0.3)
    table = result.table.set_index("track_id")
    assert list(result.table.columns) == list(TABLE_COLUMNS)
    # By hand: 2, 3, 5 Hip-Hop and 10 Pop given; 30 Rock (Punk + Rock > Hip-Hop); 20 ties
    # Pop and Folk; 134 has no genre and is dropped.
    assert list(table.index) == [2, 3, 5, 10, 20, 30]
    assert table.loc[30, ["genre_top", "genre_top_id", "genre_top_source"]].tolist() == [
        "Rock",
        12,
        IMPUTED,
    ]
    assert table.loc[20, "genre_top"] in {"Pop", "Folk"}
    assert table.loc[20, "genre_top_source"] == IMPUTED_TIE
    assert table.loc[20, "genres"] == [76, 103]
    assert table.loc[20, "genres_all"] == [17, 10, 76, 103]
    assert table.loc[5, ["duration", "bit_rate", "set_split", "set_subset"]].tolist() == [
        206,
        256000,
        "test",
        "small",
    ]
    # Hip-Hop's 3 tracks: round(0.9) = 1 in test; one-track classes stay in train.
    assert (table.loc[[2, 3, 5], "split"] == "test").sum() == 1
    assert table.loc[30, "split"] == "train"
    if table.loc[20, "genre_top"] == "Pop":  # Pop has 2 tracks: one of them in test
        assert sorted(table.loc[[10, 20], "split"]) == ["test", "train"]
    else:  # Pop and Folk have one track each
        assert (table.loc[[10, 20], "split"] == "train").all()

    summary = result.summary
    assert summary["tracks_read"] == 7 and summary["tracks_labelled"] == 6
    assert summary["dropped"] == {"empty_genres_all": 1, "only_unknown_genres": 0}
    assert summary["sources"] == {GIVEN: 4, IMPUTED: 1, IMPUTED_TIE: 1}
    assert summary["tracks_per_genre"]["Hip-Hop"] == 3
    assert sum(summary["tracks_per_genre"].values()) == 6
    assert summary["split"]["train"] + summary["split"]["test"] == 6
    assert summary["missing_percent"]["track.genre_top"] == round(100 * 3 / 7, 2)
    assert summary["missing_percent"]["track.genres"] == round(100 * 1 / 7, 2)
    text = format_summary(summary)
    assert "tracks read: 7" in text and "4 given, 1 imputed, 1 imputed after a tie" in text


def test_label_table_official_split(metadata):
    table = build_label_table(*metadata, use_official_split=True).table.set_index("track_id")
    # FMA's set.split of the fixture: 3 validation, 5 and 30 test, the rest training.
    assert table["split"].to_dict() == {
        2: "train",
        3: "train",
        5: "test",
        10: "train",
        20: "train",
        30: "test",
    }


def test_label_table_drops_unknown_ids_from_arrays(metadata):
    tracks, genres = metadata
    tracks = tracks.copy()
    tracks.at[10, ("track", "genres")] = [10, 4242]
    tracks.at[10, ("track", "genres_all")] = [10, 4242]
    result = build_label_table(tracks, genres)
    row = result.table.set_index("track_id").loc[10]
    assert row["genres"] == [10] and row["genres_all"] == [10]
    assert result.summary["unknown_genre_ids"] == {"4242": 1}
