"""The genre tree: navigation, and clear errors for unknown parents and cycles."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmagenre.labels.genre_tree import GenreTree, GenreTreeError
from fmagenre.labels.metadata import load_genres

FIXTURE = Path(__file__).parent / "data" / "fma_metadata"

# Rock > Punk > Hardcore, Rock > Post-Rock, Hip-Hop alone.
GENRES = [
    (12, 0, "Rock"),
    (25, 12, "Punk"),
    (26, 25, "Hardcore"),
    (45, 12, "Post-Rock"),
    (21, 0, "Hip-Hop"),
]


@pytest.fixture
def tree():
    return GenreTree(GENRES)


def test_roots_children_depth_titles(tree):
    assert tree.top_level == (12, 21)
    assert tree.children(12) == (25, 45)
    assert tree.children(26) == ()
    assert [tree.root(g) for g in (12, 25, 26, 45, 21)] == [12, 12, 12, 12, 21]
    assert [tree.depth(g) for g in (12, 25, 26, 21)] == [0, 1, 2, 0]
    assert tree.title(26) == "Hardcore"
    assert tree.parents[26] == 25
    assert tree.ancestors(26) == (25, 12)
    assert tree.ancestors(12) == ()
    assert len(tree) == 5 and 45 in tree and 999 not in tree


def test_with_ancestors_is_fma_genres_all(tree):
    assert tree.with_ancestors([26, 21]) == [12, 21, 25, 26]
    assert tree.with_ancestors([]) == []


def test_unknown_genre_id_is_a_key_error(tree):
    with pytest.raises(KeyError, match="999"):
        tree.root(999)


def test_unknown_parent_names_genre_and_parent():
    with pytest.raises(GenreTreeError, match=r"genre 580 \(Abstract Hip-Hop\) has parent 1172"):
        GenreTree([(21, 0, "Hip-Hop"), (580, 1172, "Abstract Hip-Hop")])


def test_cycle_is_reported_not_looped_on():
    genres = [(1, 0, "Root"), (5, 6, "A"), (6, 7, "B"), (7, 5, "C")]
    with pytest.raises(GenreTreeError, match="cycle") as caught:
        GenreTree(genres)
    assert all(f"{g} (" in str(caught.value) for g in (5, 6, 7))


def test_self_parent_is_a_cycle():
    # FMA's raw data had 763 (Holiday) as its own parent.
    with pytest.raises(GenreTreeError, match=r"763 \(Holiday\) -> 763"):
        GenreTree([(16, 0, "Sound Effects"), (763, 763, "Holiday")])


@pytest.mark.parametrize(
    ("genres", "message"),
    [
        ([(0, 0, "Zero")], "positive"),
        ([(3, 0, "A"), (3, 0, "B")], "appears twice"),
    ],
)
def test_bad_ids(genres, message):
    with pytest.raises(GenreTreeError, match=message):
        GenreTree(genres)


def test_from_genres_csv():
    tree = GenreTree.from_frame(load_genres(FIXTURE / "genres.csv"))
    assert tree.top_level == (10, 12, 17, 21)
    assert tree.root(76) == 10 and tree.title(103) == "Singer-Songwriter"
