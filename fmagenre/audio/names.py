"""Names and order of FMA's 518 features.

FMA's ``features.csv`` has one column per ``(feature, statistics, number)`` triple, sorted
lexicographically: ``('chroma_cens', 'kurtosis', '01')`` first, ``('zcr', 'std', '01')`` last.
Parquet tables use the flat form ``f"{feature}_{statistics}_{number}"`` (``mfcc_mean_01``).
"""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

#: Rows per family, in FMA's declaration order.
FAMILY_SIZES: dict[str, int] = {
    "chroma_stft": 12,
    "chroma_cqt": 12,
    "chroma_cens": 12,
    "tonnetz": 6,
    "mfcc": 20,
    "rmse": 1,
    "zcr": 1,
    "spectral_centroid": 1,
    "spectral_bandwidth": 1,
    "spectral_contrast": 7,
    "spectral_rolloff": 1,
}

#: Statistics over time, in FMA's declaration order.
STATISTICS: tuple[str, ...] = ("mean", "std", "skew", "kurtosis", "median", "min", "max")

N_FEATURES = sum(FAMILY_SIZES.values()) * len(STATISTICS)


@lru_cache(maxsize=1)
def feature_index() -> pd.MultiIndex:
    """FMA's column index: sorted ``(feature, statistics, number)`` triples, 518 of them."""
    triples = [
        (family, stat, f"{i + 1:02d}")
        for family, size in FAMILY_SIZES.items()
        for stat in STATISTICS
        for i in range(size)
    ]
    return pd.MultiIndex.from_tuples(sorted(triples), names=("feature", "statistics", "number"))


def flat_name(feature: str, statistics: str, number: str) -> str:
    """Parquet column name of one triple: ``mfcc_mean_01``."""
    return f"{feature}_{statistics}_{number}"


@lru_cache(maxsize=1)
def flat_names() -> tuple[str, ...]:
    """The 518 flat column names, in FMA's order."""
    return tuple(flat_name(*t) for t in feature_index())


def family_of(flat: str) -> str:
    """MIR family of a flat column name (``spectral_contrast_mean_03`` -> ``spectral_contrast``)."""
    for family in FAMILY_SIZES:
        if flat.startswith(family + "_") and flat.count("_") == family.count("_") + 2:
            return family
    raise KeyError(f"{flat!r} is not one of the 518 feature columns")
