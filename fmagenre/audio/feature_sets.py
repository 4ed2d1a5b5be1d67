"""Feature sets: MIR families, musicnn, lists of columns, and the column-list file format.

Columns always come in one order (:func:`fmagenre.audio.names.all_feature_names`: FMA's 518,
then the musicnn family's 450), whatever the order they were asked in, so that a feature set
has one vector layout. A family is one of the 11 MIR families (``mfcc``...), ``mir`` (all 11:
the 518 columns) or ``musicnn`` (the 450 columns of the pretrained network, in tables extracted
with ``--families mir,musicnn``). The training job takes all 518 columns, some families
(``--families``: ``mir,musicnn`` for both) or a column list (``--columns-file``:
:func:`select_feature_columns`). The analysis jobs name a feature set as

* a family (``mfcc``, ``musicnn``): its columns (a MIR family's seven statistics);
* a combination of families joined by ``+`` (``mfcc+spectral_contrast``, ``mir+musicnn``);
* ``all``: the 518 MIR columns;
* ``selected``: the columns of a column-list file (``select_features``' output);
* ``pca``: the 518 columns reduced to N principal components inside each model's pipeline.

A column-list file holds flat column names (``mfcc_mean_01``) separated by line breaks,
commas or white space; everything after a ``#`` on a line is a comment. ``select_features``
writes one name per line after ``#`` comment lines; ``compare_models`` and ``train`` read it
with ``--columns-file``, through a ``read`` callable: the jobs pass
:func:`fmagenre.platform.hadoop.read_bytes` with their session, for any Hadoop path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from fmagenre.audio.names import (
    FAMILY_SIZES,
    MUSICNN,
    STATISTICS,
    all_feature_names,
    family_of,
    flat_names,
    musicnn_names,
)
from fmagenre.errors import InputError, shown_names

#: The 11 MIR families.
FAMILIES: tuple[str, ...] = tuple(FAMILY_SIZES)
#: All 11 MIR families, as one name.
MIR = "mir"
#: Every name :func:`family_columns` takes.
FAMILY_NAMES: tuple[str, ...] = (*FAMILIES, MIR, MUSICNN)
ALL, SELECTED, PCA = "all", "selected", "pca"
#: The combinations of the thesis' Table 5 (its mfcc/ctr/chr/cen/ton/rmse: MFCC, spectral
#: contrast, chroma CENS, spectral centroid, tonnetz, RMS energy).
THESIS_COMBINATIONS: tuple[str, ...] = (
    "mfcc+spectral_contrast",
    "mfcc+spectral_contrast+spectral_centroid",
    "mfcc+spectral_contrast+chroma_cens",
    "mfcc+spectral_contrast+chroma_cens+spectral_centroid",
    "mfcc+spectral_contrast+chroma_cens+spectral_centroid+tonnetz",
    "mfcc+spectral_contrast+chroma_cens+spectral_centroid+rmse",
)
#: The thesis' PCA feature set: 4 components.
THESIS_PCA_COMPONENTS = 4


class FeatureSetError(InputError, ValueError):
    """An unknown family or column, or a malformed feature-set option or column list."""


@dataclass(frozen=True)
class FeatureSet:
    """Columns a model is fitted on.

    Attributes
    ----------
    name : str
        As given on the command line (``mfcc``, ``mfcc+spectral_contrast``, ``all``...).
    columns : tuple of str
        Flat column names, in FMA's order.
    pca_components : int
        0, or the number of principal components the columns are reduced to.
    """

    name: str
    columns: tuple[str, ...]
    pca_components: int = 0

    @property
    def dim(self) -> int:
        """Number of inputs of the classifier: components, else columns."""
        return self.pca_components or len(self.columns)


def family_columns(families: Iterable[str]) -> tuple[str, ...]:
    """The flat columns of some families (``mfcc``, ``spectral_contrast``..., ``mir`` for all
    518, ``musicnn``), in the tables' order; names are stripped of white space, empty ones
    skipped.

    Raises
    ------
    FeatureSetError
        On a name that is not one of :data:`FAMILY_NAMES` (the message lists them), or none.
    """
    wanted = {family.strip() for family in families} - {""}
    if not wanted:
        raise FeatureSetError("no feature family given")
    unknown = sorted(wanted - set(FAMILY_NAMES))
    if unknown:
        raise FeatureSetError(
            f"unknown feature famil{'y' if len(unknown) == 1 else 'ies'}"
            f" {shown_names([repr(name) for name in unknown])}; valid families:"
            f" {', '.join(FAMILY_NAMES)}"
        )
    if MIR in wanted:
        wanted |= set(FAMILIES)
    return tuple(name for name in all_feature_names() if family_of(name) in wanted)


def families_of(columns: Iterable[str]) -> str:
    """``mir``, ``musicnn`` or ``mir,musicnn``: the family groups some columns come from."""
    groups = {MUSICNN if family_of(column) == MUSICNN else MIR for column in columns}
    return ",".join(group for group in (MIR, MUSICNN) if group in groups)


def check_columns(columns: Iterable[str], *, source: str = "feature columns") -> tuple[str, ...]:
    """Feature column names, checked, each once, in FMA's order.

    ``source`` (a file's path...) starts the messages.

    Raises
    ------
    FeatureSetError
        On an unknown column (the message says how valid names are formed) or no column.
    """
    wanted = set(columns)
    if not wanted:
        raise FeatureSetError(f"{source}: no feature column given")
    unknown = sorted(wanted - set(all_feature_names()))
    if unknown:
        raise FeatureSetError(
            f"{source}: {len(unknown)} unknown feature column(s):"
            f" {shown_names([repr(name) for name in unknown])}; valid columns are"
            " FAMILY_STATISTIC_NN (e.g. mfcc_mean_01, NN from 01 to the family's size) with"
            f" families {', '.join(f'{f} ({n})' for f, n in FAMILY_SIZES.items())} and"
            f" statistics {', '.join(STATISTICS)}, and the musicnn family's"
            f" {musicnn_names()[0]} ... {musicnn_names()[-1]}"
        )
    return tuple(name for name in all_feature_names() if name in wanted)


def parse_combination(text: str) -> tuple[str, ...]:
    """Families of ``"mfcc+spectral_contrast"``, in the given order, each once.

    Raises
    ------
    FeatureSetError
        On an empty part, an unknown family or a repeated one.
    """
    parts = [part.strip() for part in text.split("+")]
    if not all(parts):
        raise FeatureSetError(f"empty family in combination {text!r}")
    if len(set(parts)) != len(parts):
        raise FeatureSetError(f"a family appears twice in combination {text!r}")
    family_columns(parts)
    return tuple(parts)


def parse_column_list(text: str, *, source: str = "column list") -> tuple[str, ...]:
    """The columns of a column-list file's text, checked (:func:`check_columns`), in FMA's order.

    Names are separated by line breaks, commas or white space; ``#`` starts a comment that
    runs to the end of the line.

    Raises
    ------
    FeatureSetError
        On an unknown column, or no column.
    """
    names = [
        name
        for line in text.splitlines()
        for name in line.split("#", 1)[0].replace(",", " ").split()
    ]
    return check_columns(names, source=source)


def read_column_list(path: str, *, read: Callable[[str], bytes]) -> tuple[str, ...]:
    """The columns of the column-list file at ``path``, in FMA's order.

    Parameters
    ----------
    path : str
    read : callable
        ``read(path)`` gives a file's bytes: the jobs pass
        :func:`fmagenre.platform.hadoop.read_bytes` with their session, for any Hadoop path.

    Raises
    ------
    FeatureSetError
        When the file does not exist or cannot be read as text, names an unknown column, or
        none.
    """
    try:
        text = read(path).decode("utf-8")
    except FileNotFoundError:
        raise FeatureSetError(f"column list {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise FeatureSetError(f"cannot read the column list {path}: {error}") from None
    return parse_column_list(text, source=path)


def select_feature_columns(
    *,
    families: Iterable[str] | None = None,
    columns_file: str | None = None,
    read: Callable[[str], bytes],
) -> tuple[str, ...]:
    """The training job's feature set: some families, or a column list, or else all 518.

    ``read`` reads the column list (see :func:`read_column_list`).

    Raises
    ------
    FeatureSetError
        When both are given, or on an unknown family or column.
    """
    if families is not None and columns_file is not None:
        raise FeatureSetError("give feature families or a columns file, not both")
    if families is not None:
        return family_columns(families)
    if columns_file is not None:
        return read_column_list(columns_file, read=read)
    return flat_names()


def format_column_list(columns: Sequence[str], *, comments: Sequence[str] = ()) -> str:
    """A column-list file: ``# comment`` lines, then one column per line.

    No column gives a file of comments alone (an empty selection is a result; a job given it
    as its feature set says there is no column in it).

    Raises
    ------
    FeatureSetError
        On an unknown or repeated column, or a comment holding a line break.
    """
    if any("\n" in comment or "\r" in comment for comment in comments):
        raise FeatureSetError("a comment of a column list must be a single line")
    if columns:
        check_columns(columns, source="column list")
    if len(set(columns)) != len(columns):
        raise FeatureSetError("a column is listed twice")
    return "".join(f"# {comment}\n" for comment in comments) + "".join(f"{c}\n" for c in columns)


def build_feature_sets(
    *,
    combinations: Sequence[str] = THESIS_COMBINATIONS,
    selected: Sequence[str] | None = None,
    pca_components: int = THESIS_PCA_COMPONENTS,
    musicnn: bool = False,
) -> dict[str, FeatureSet]:
    """Every feature set the options define, by name.

    The MIR families, the combinations, ``all``, ``selected`` (when ``selected`` columns are
    given), ``pca`` (when ``pca_components`` > 0), then with ``musicnn`` (a table that holds
    the musicnn family) ``musicnn`` and ``mir+musicnn``.

    Raises
    ------
    FeatureSetError
        On a bad combination, an unknown selected column, or components outside 0-518.
    """
    if not 0 <= pca_components <= len(flat_names()):
        raise FeatureSetError(
            f"PCA components must be in 0-{len(flat_names())}, got {pca_components}"
        )
    sets = {family: FeatureSet(family, family_columns([family])) for family in FAMILIES}
    for text in combinations:
        families = parse_combination(text)
        name = "+".join(families)
        sets[name] = FeatureSet(name, family_columns(families))
    sets[ALL] = FeatureSet(ALL, flat_names())
    if selected is not None:
        sets[SELECTED] = FeatureSet(SELECTED, check_columns(selected, source="selected columns"))
    if pca_components:
        sets[PCA] = FeatureSet(PCA, flat_names(), pca_components)
    if musicnn:
        for name in (MUSICNN, f"{MIR}+{MUSICNN}"):
            sets[name] = FeatureSet(name, family_columns(name.split("+")))
    return sets


def choose_feature_sets(
    available: dict[str, FeatureSet], names: Sequence[str] | None
) -> list[FeatureSet]:
    """The sets named (all when ``names`` is None), in the order given.

    Raises
    ------
    FeatureSetError
        On a name that is not in ``available``, or a name given twice.
    """
    if names is None:
        return list(available.values())
    if len(set(names)) != len(names):
        raise FeatureSetError("a feature set is named twice")
    for name in names:
        if name not in available:
            hint = {
                SELECTED: " (it needs --columns-file)",
                PCA: " (it needs --pca-components > 0)",
            }.get(name, f" (choose from {', '.join(available)})")
            raise FeatureSetError(f"unknown feature set {name!r}{hint}")
    return [available[name] for name in names]
