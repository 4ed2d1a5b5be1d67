"""The feature set of a model: all 518 columns, whole MIR families, or a list of columns.

Columns are always returned in FMA's order (:func:`fmagenre.audio.names.flat_names`), whatever the
order they were asked in, so that a feature set has one vector layout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from fmagenre.audio.names import FAMILY_SIZES, STATISTICS, family_of, flat_names


class FeatureSelectionError(ValueError):
    """An unknown family or column; the message lists the valid ones."""


def columns_of_families(families: Iterable[str]) -> list[str]:
    """The columns of the given MIR families (``mfcc``, ``spectral_contrast``...).

    Raises
    ------
    FeatureSelectionError
        On an unknown family or an empty list.
    """
    wanted = [family.strip() for family in families if family.strip()]
    if not wanted:
        raise FeatureSelectionError("no feature family given")
    unknown = sorted(set(wanted) - set(FAMILY_SIZES))
    if unknown:
        raise FeatureSelectionError(
            f"unknown feature famil{'y' if len(unknown) == 1 else 'ies'}"
            f" {', '.join(map(repr, unknown))}; valid families: {', '.join(FAMILY_SIZES)}"
        )
    return [name for name in flat_names() if family_of(name) in wanted]


def check_columns(columns: Iterable[str]) -> list[str]:
    """Feature column names, checked, without duplicates, in FMA's order.

    Raises
    ------
    FeatureSelectionError
        On an unknown column (the message says how valid names are formed) or no column.
    """
    wanted = set(columns)
    if not wanted:
        raise FeatureSelectionError("no feature column given")
    unknown = sorted(wanted - set(flat_names()))
    if unknown:
        shown = ", ".join(map(repr, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        raise FeatureSelectionError(
            f"{len(unknown)} unknown feature column(s): {shown}; valid columns are"
            f" FAMILY_STATISTIC_NN (e.g. mfcc_mean_01, NN from 01 to the family's size) with"
            f" families {', '.join(f'{f} ({n})' for f, n in FAMILY_SIZES.items())} and"
            f" statistics {', '.join(STATISTICS)}"
        )
    return [name for name in flat_names() if name in wanted]


def read_columns_file(path: str | Path, *, read: Callable[[str], bytes] | None = None) -> list[str]:
    """Feature columns listed in a text file: names separated by commas or white space.

    ``#`` starts a comment that runs to the end of the line.

    Parameters
    ----------
    path : str or path-like
    read : callable or None
        ``read(path)`` gives a file's bytes; None reads a local file. The jobs pass
        :func:`fmagenre.platform.hadoop.read_bytes` with their session, for any Hadoop path.

    Raises
    ------
    FeatureSelectionError
        When the file cannot be read, or names an unknown column, or none.
    """
    try:
        text = (read(str(path)) if read else Path(path).read_bytes()).decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise FeatureSelectionError(f"cannot read the columns file {path}: {error}") from error
    names = [
        name
        for line in text.splitlines()
        for name in line.split("#", 1)[0].replace(",", " ").split()
    ]
    try:
        return check_columns(names)
    except FeatureSelectionError as error:
        raise FeatureSelectionError(f"{path}: {error}") from None


def select_feature_columns(
    *,
    families: Iterable[str] | None = None,
    columns_file: str | Path | None = None,
    read: Callable[[str], bytes] | None = None,
) -> list[str]:
    """The feature set: the given families, or the columns of a file, or else all 518.

    ``read`` reads the columns file (see :func:`read_columns_file`).

    Raises
    ------
    FeatureSelectionError
        When both are given, or on an unknown family or column.
    """
    if families is not None and columns_file is not None:
        raise FeatureSelectionError("give feature families or a columns file, not both")
    if families is not None:
        return columns_of_families(families)
    if columns_file is not None:
        return read_columns_file(columns_file, read=read)
    return list(flat_names())
