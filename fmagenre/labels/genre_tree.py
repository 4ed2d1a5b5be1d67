"""FMA's genre hierarchy: parents, children, top-level roots, titles and depths.

FMA's ``genres.csv`` gives every genre a ``parent`` id, 0 for a top-level genre (a root). The
tree is checked when it is built: a parent id that is not in the table, or a cycle of parents,
raises :class:`GenreTreeError` instead of looping later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from fmagenre.errors import InputError

ROOT_PARENT = 0  # the parent id of a top-level genre


class GenreTreeError(InputError, ValueError):
    """The genre table does not form a tree (unknown parent, cycle, bad id)."""


class GenreTree:
    """Genre hierarchy built from ``(genre_id, parent_id, title)`` triples.

    Parameters
    ----------
    genres : iterable of (int, int, str)
        One triple per genre; ``parent_id`` is 0 for a top-level genre.

    Raises
    ------
    GenreTreeError
        On a duplicate or non-positive genre id, a parent id missing from the table, or a cycle.
    """

    def __init__(self, genres: Iterable[tuple[int, int, str]]):
        parents: dict[int, int] = {}
        titles: dict[int, str] = {}
        for genre_id, parent_id, title in genres:
            genre_id, parent_id = int(genre_id), int(parent_id)
            if genre_id <= 0:
                raise GenreTreeError(f"genre id {genre_id} ({title}) must be a positive integer")
            if genre_id in parents:
                raise GenreTreeError(
                    f"genre id {genre_id} appears twice ({titles[genre_id]}, {title})"
                )
            parents[genre_id] = parent_id
            titles[genre_id] = str(title)
        for genre_id, parent_id in parents.items():
            if parent_id != ROOT_PARENT and parent_id not in parents:
                raise GenreTreeError(
                    f"genre {genre_id} ({titles[genre_id]}) has parent {parent_id}, which is not in"
                    " the genre table: add that genre or set the parent to 0 (top level)"
                )
        self._parents = MappingProxyType(parents)
        self._titles = MappingProxyType(titles)
        self._roots, self._depths = _walk_to_roots(parents, titles)
        children: dict[int, list[int]] = {genre_id: [] for genre_id in parents}
        for genre_id, parent_id in parents.items():
            if parent_id != ROOT_PARENT:
                children[parent_id].append(genre_id)
        self._children = {genre_id: tuple(sorted(ids)) for genre_id, ids in children.items()}

    @classmethod
    def from_frame(cls, genres) -> GenreTree:
        """Build the tree from a genres table as :func:`fmagenre.labels.metadata.load_genres`
        returns.

        Parameters
        ----------
        genres : pandas.DataFrame
            Indexed by genre id, with ``parent`` and ``title`` columns.
        """
        return cls(zip(genres.index, genres["parent"], genres["title"], strict=True))

    def __contains__(self, genre_id: object) -> bool:
        return genre_id in self._parents

    def __len__(self) -> int:
        return len(self._parents)

    @property
    def parents(self) -> Mapping[int, int]:
        """Read-only map of genre id to parent id (0 for a top-level genre)."""
        return self._parents

    @property
    def titles(self) -> Mapping[int, str]:
        """Read-only map of genre id to title."""
        return self._titles

    @property
    def top_level(self) -> tuple[int, ...]:
        """Ids of the top-level genres, ascending."""
        return tuple(sorted(g for g, p in self._parents.items() if p == ROOT_PARENT))

    def children(self, genre_id: int) -> tuple[int, ...]:
        """Direct children of a genre, ascending."""
        return self._children[self._known(genre_id)]

    def root(self, genre_id: int) -> int:
        """Top-level ancestor of a genre (itself for a top-level genre)."""
        return self._roots[self._known(genre_id)]

    def depth(self, genre_id: int) -> int:
        """Number of edges from the genre up to its root (0 for a top-level genre)."""
        return self._depths[self._known(genre_id)]

    def title(self, genre_id: int) -> str:
        """Title of a genre."""
        return self._titles[self._known(genre_id)]

    def ancestors(self, genre_id: int) -> tuple[int, ...]:
        """Parent, grandparent... up to the root; empty for a top-level genre."""
        chain = []
        parent = self._parents[self._known(genre_id)]
        while parent != ROOT_PARENT:
            chain.append(parent)
            parent = self._parents[parent]
        return tuple(chain)

    def with_ancestors(self, genre_ids: Iterable[int]) -> list[int]:
        """The genres plus all their ancestors, ascending and without repeats (FMA's genres_all)."""
        found: set[int] = set()
        for genre_id in genre_ids:
            found.add(self._known(genre_id))
            found.update(self.ancestors(genre_id))
        return sorted(found)

    def _known(self, genre_id: int) -> int:
        if genre_id not in self._parents:
            raise KeyError(f"unknown genre id {genre_id}")
        return genre_id


def _walk_to_roots(
    parents: Mapping[int, int], titles: Mapping[int, str]
) -> tuple[dict[int, int], dict[int, int]]:
    """Root and depth of every genre, raising on a cycle instead of looping on it."""
    roots: dict[int, int] = {}
    depths: dict[int, int] = {}
    for start in parents:
        path: list[int] = []
        on_path: set[int] = set()
        node = start
        while node not in roots:
            if node in on_path:
                cycle = [*path[path.index(node) :], node]
                shown = " -> ".join(f"{g} ({titles[g]})" for g in cycle)
                raise GenreTreeError(
                    f"the genre parents form a cycle: {shown}; one of them must have parent 0"
                    " or another genre"
                )
            path.append(node)
            on_path.add(node)
            if parents[node] == ROOT_PARENT:
                roots[node], depths[node] = node, 0
                path.pop()
                break
            node = parents[node]
        # Unwind the path: each node is one level below the one walked after it.
        for genre_id in reversed(path):
            parent = parents[genre_id]
            roots[genre_id] = roots[parent]
            depths[genre_id] = depths[parent] + 1
    return roots, depths
