"""The label table: one top-level genre per track, its provenance, and a train/test split.

Imputation follows the thesis. A track keeps FMA's ``track.genre_top`` when it has one.
Otherwise every id of its ``track.genres_all`` is mapped to its top-level root and the most
frequent root wins; a tie is broken at random by a generator seeded from ``(seed, track_id)``,
so the result depends on the seed only, not on row order. Genre ids missing from
``genres.csv`` are counted and ignored (they are also left out of the ``genres`` and
``genres_all`` arrays of the table). A track left without any label (no ``genre_top`` and no
known id in ``genres_all``) is dropped and counted.

Everything here is pandas: FMA's metadata is ~100k rows.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fmagenre.errors import InputError, shown_names
from fmagenre.labels.genre_tree import GenreTree
from fmagenre.labels.metadata import LIST_COLUMNS

GIVEN, IMPUTED, IMPUTED_TIE = "given", "imputed", "imputed_tie"
TRAIN, TEST = "train", "test"
DEFAULT_TEST_FRACTION = 0.107  # the thesis: 11,121 test tracks of 104,343
DEFAULT_SEED = 0
# FMA's set.split folded into ours: validation tracks are training data here.
OFFICIAL_SPLIT = {"training": TRAIN, "validation": TRAIN, "test": TEST}
TABLE_COLUMNS = (
    "track_id", "genre_top", "genre_top_id", "genre_top_source", "genres", "genres_all",
    "duration", "bit_rate", "set_split", "set_subset", "split",
)  # fmt: skip


class LabelError(InputError, ValueError):
    """The metadata cannot be labelled as asked (e.g. a genre_top that is no top-level genre)."""


@dataclass(frozen=True)
class Imputation:
    """Outcome of :func:`impute_genre_top`.

    Attributes
    ----------
    labels : pandas.DataFrame
        Indexed by ``track_id`` (ascending), one row per kept track: ``genre_top`` (title),
        ``genre_top_id`` (id of the top-level genre) and ``genre_top_source`` (``given``,
        ``imputed`` or ``imputed_tie``).
    dropped_empty : int
        Tracks without ``genre_top`` whose ``genres_all`` is empty.
    dropped_unknown : int
        Tracks without ``genre_top`` whose ``genres_all`` holds unknown ids only.
    unknown_genre_ids : dict of int to int
        Each genre id of ``genres`` or ``genres_all`` missing from the genre tree, with the
        number of tracks that carry it.
    """

    labels: pd.DataFrame
    dropped_empty: int
    dropped_unknown: int
    unknown_genre_ids: dict[int, int]


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def tie_break(candidates: Iterable[int], *, seed: int, track_id: int) -> int:
    """Pick one of tied genre ids at random, reproducibly.

    Parameters
    ----------
    candidates : iterable of int
        The tied ids; sorted first, so their order does not matter.
    seed : int
        Non-negative run seed.
    track_id : int
        Non-negative track id; with ``seed`` it seeds the generator of this one draw.

    Returns
    -------
    int
        One of the candidates.
    """
    ordered = sorted(candidates)
    rng = np.random.default_rng([_check_seed(seed), int(track_id)])
    return ordered[int(rng.integers(len(ordered)))]


def impute_genre_top(
    tracks: pd.DataFrame, tree: GenreTree, *, seed: int = DEFAULT_SEED
) -> Imputation:
    """Top-level genre of every track: FMA's own, or imputed from ``genres_all``.

    Parameters
    ----------
    tracks : pandas.DataFrame
        As :func:`fmagenre.labels.metadata.load_tracks` returns it (only ``track.genre_top``,
        ``track.genres`` and ``track.genres_all`` are read).
    tree : GenreTree
        The genre hierarchy of ``genres.csv``.
    seed : int
        Non-negative seed of the tie-breaks.

    Returns
    -------
    Imputation

    Raises
    ------
    LabelError
        When a ``genre_top`` is not the title of a top-level genre of the tree.
    """
    _check_seed(seed)
    by_title = {tree.title(g): g for g in tree.top_level}
    given = tracks["track", "genre_top"]
    strange = sorted(set(given.dropna().astype(str)) - set(by_title))
    if strange:
        raise LabelError(
            f"genre_top {shown_names(list(map(repr, strange)), limit=5)} of"
            f" {int(given.isin(strange).sum())} tracks is not the title of a top-level genre in"
            " genres.csv: use the genres.csv that ships with tracks.csv"
        )
    unknown: Counter = Counter()
    rows, dropped_empty, dropped_unknown = [], 0, 0
    lists = tracks["track", "genres"], tracks["track", "genres_all"]
    for track_id, title, genres, genres_all in zip(tracks.index, given, *lists, strict=True):
        unknown.update({g for g in (*genres, *genres_all) if g not in tree})
        if not pd.isna(title):
            rows.append((track_id, str(title), by_title[str(title)], GIVEN))
            continue
        votes = Counter(tree.root(g) for g in genres_all if g in tree)
        if not votes:
            dropped_empty += not genres_all
            dropped_unknown += bool(genres_all)
            continue
        most = max(votes.values())
        tied = [root for root, count in votes.items() if count == most]
        if len(tied) == 1:
            root, source = tied[0], IMPUTED
        else:
            root, source = tie_break(tied, seed=seed, track_id=track_id), IMPUTED_TIE
        rows.append((track_id, tree.title(root), root, source))
    labels = pd.DataFrame(
        rows, columns=["track_id", "genre_top", "genre_top_id", "genre_top_source"]
    ).set_index("track_id")
    labels = labels.astype({"genre_top_id": "int32"}).sort_index()
    return Imputation(labels, dropped_empty, dropped_unknown, dict(sorted(unknown.items())))


def stratified_split(
    classes: pd.Series, *, test_fraction: float = DEFAULT_TEST_FRACTION, seed: int = DEFAULT_SEED
) -> pd.Series:
    """Deterministic train/test split stratified by class.

    Each class of ``n`` tracks gets ``round(test_fraction * n)`` test tracks (half rounds
    up), at least 1 when ``n >= 2`` and at most ``n - 1``; a class of one track stays in
    train. The test tracks of a class are drawn from its track ids sorted ascending by a
    generator seeded from ``(seed, class id)``, so the split does not depend on row order.

    Parameters
    ----------
    classes : pandas.Series of int
        Non-negative class id (e.g. ``genre_top_id``) indexed by unique track id.
    test_fraction : float
        Share of each class that goes to test, in (0, 1).
    seed : int
        Non-negative seed.

    Returns
    -------
    pandas.Series of str
        ``'train'`` or ``'test'``, with the index of ``classes``.
    """
    _check_seed(seed)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    if classes.index.has_duplicates:
        raise ValueError("classes must be indexed by unique track ids")
    split = pd.Series(TRAIN, index=classes.index, dtype=object)
    for class_id, members in classes.groupby(classes, sort=True):
        n = len(members)
        n_test = min(max(math.floor(test_fraction * n + 0.5), 1), n - 1)
        if n_test > 0:
            rng = np.random.default_rng([seed, int(class_id)])
            chosen = rng.choice(np.sort(members.index.to_numpy()), size=n_test, replace=False)
            split[chosen] = TEST
    return split


def official_split(set_split: pd.Series) -> pd.Series:
    """FMA's ``set.split`` as train/test: training and validation to train, test to test.

    Raises
    ------
    LabelError
        When a track has no ``set.split``.
    """
    split = set_split.astype(object).map(OFFICIAL_SPLIT)
    if split.isna().any():
        missing = split.index[split.isna()]
        raise LabelError(
            f"{len(missing)} tracks (e.g. track {missing[0]}) have no set.split: drop the"
            " official split to use a stratified one"
        )
    return split


def missing_percentages(tracks: pd.DataFrame) -> dict[str, float]:
    """Percentage of tracks with no value per column (the thesis' Table 1).

    An empty list (no tags, no genres) counts as missing. Keys are ``group.name``.
    """
    missing = {}
    for column in tracks.columns:
        values = tracks[column]
        empty = values.map(len) == 0 if column in LIST_COLUMNS else values.isna()
        missing[".".join(column)] = round(100 * float(empty.mean()), 2) if len(values) else 0.0
    return missing


@dataclass(frozen=True)
class LabelTable:
    """Outcome of :func:`build_label_table`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per labelled track, ascending ``track_id``, columns :data:`TABLE_COLUMNS`.
    summary : dict
        JSON-ready counts: see :func:`build_label_table`.
    """

    table: pd.DataFrame
    summary: dict


def _known(genre_ids: list, tree: GenreTree) -> list[int]:
    return [int(g) for g in genre_ids if g in tree]


def _counts_by_title(values: pd.Series) -> dict[str, int]:
    counts = values.value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}


def build_label_table(
    tracks: pd.DataFrame,
    genres: pd.DataFrame,
    *,
    seed: int = DEFAULT_SEED,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    use_official_split: bool = False,
) -> LabelTable:
    """Impute, split and summarise: everything the labels job computes.

    Parameters
    ----------
    tracks, genres : pandas.DataFrame
        As :func:`fmagenre.labels.metadata.load_metadata` returns them.
    seed : int
        Seed of the tie-breaks and of the stratified split.
    test_fraction : float
        Share of each top-level genre in test (stratified split only).
    use_official_split : bool
        Use FMA's ``set.split`` instead of a stratified split.

    Returns
    -------
    LabelTable
        Its ``summary`` holds ``tracks_read``, ``tracks_labelled``, ``dropped``
        (``empty_genres_all``, ``only_unknown_genres``), ``sources`` (given, imputed,
        imputed_tie), ``unknown_genre_ids`` (id to number of tracks),
        ``tracks_per_genre`` and ``test_tracks_per_genre`` (title to count, largest first),
        ``split`` (method, seed, test fraction, train and test counts) and
        ``missing_percent`` (column to percentage, over all tracks read).
    """
    tree = GenreTree.from_frame(genres)
    imputation = impute_genre_top(tracks, tree, seed=seed)
    labels = imputation.labels
    kept = tracks.loc[labels.index]
    if use_official_split:
        split = official_split(kept["set", "split"])
    else:
        split = stratified_split(labels["genre_top_id"], test_fraction=test_fraction, seed=seed)
    table = labels.assign(
        genres=kept["track", "genres"].map(lambda ids: _known(ids, tree)),
        genres_all=kept["track", "genres_all"].map(lambda ids: _known(ids, tree)),
        duration=kept["track", "duration"],
        bit_rate=kept["track", "bit_rate"],
        set_split=kept["set", "split"].astype(object),
        set_subset=kept["set", "subset"].astype(object),
        split=split,
    ).reset_index()
    sources = labels["genre_top_source"].value_counts()
    summary = {
        "tracks_read": len(tracks),
        "tracks_labelled": len(table),
        "dropped": {
            "empty_genres_all": imputation.dropped_empty,
            "only_unknown_genres": imputation.dropped_unknown,
        },
        "sources": {
            source: int(sources.get(source, 0)) for source in (GIVEN, IMPUTED, IMPUTED_TIE)
        },
        "unknown_genre_ids": {str(g): n for g, n in imputation.unknown_genre_ids.items()},
        "tracks_per_genre": _counts_by_title(table["genre_top"]),
        "test_tracks_per_genre": _counts_by_title(table.loc[table["split"] == TEST, "genre_top"]),
        "split": {
            "method": "official" if use_official_split else "stratified",
            "seed": seed,
            "test_fraction": None if use_official_split else test_fraction,
            TRAIN: int((table["split"] == TRAIN).sum()),
            TEST: int((table["split"] == TEST).sum()),
        },
        "missing_percent": missing_percentages(tracks),
    }
    return LabelTable(table[list(TABLE_COLUMNS)], summary)


def format_summary(summary: Mapping) -> str:
    """Human-readable text of a :func:`build_label_table` summary."""
    dropped, sources, split = summary["dropped"], summary["sources"], summary["split"]
    lines = [
        f"tracks read: {summary['tracks_read']:,}",
        f"dropped: {dropped['empty_genres_all']:,} with empty genres_all,"
        f" {dropped['only_unknown_genres']:,} with unknown genre ids only",
        f"labelled: {summary['tracks_labelled']:,} ({sources[GIVEN]:,} given,"
        f" {sources[IMPUTED]:,} imputed, {sources[IMPUTED_TIE]:,} imputed after a tie)",
    ]
    if summary["unknown_genre_ids"]:
        shown = ", ".join(f"{g} ({n} tracks)" for g, n in summary["unknown_genre_ids"].items())
        lines.append(f"unknown genre ids, ignored: {shown}")
    method = split["method"]
    if split["test_fraction"] is not None:
        method += f", test fraction {split['test_fraction']}"
    lines.append(
        f"split ({method}, seed {split['seed']}): {split[TRAIN]:,} train, {split[TEST]:,} test"
    )
    lines.append("tracks per top-level genre (test):")
    test = summary["test_tracks_per_genre"]
    lines += [
        f"  {t:<24} {n:>7,} ({test.get(t, 0):,})" for t, n in summary["tracks_per_genre"].items()
    ]
    lines.append("missing values per column (% of tracks read):")
    lines += [f"  {column:<26} {pct:6.2f}" for column, pct in summary["missing_percent"].items()]
    return "\n".join(lines)
