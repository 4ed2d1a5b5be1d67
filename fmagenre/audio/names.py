"""Names and order of FMA's 518 features, and of the musicnn family's 450.

FMA's ``features.csv`` has one column per ``(feature, statistics, number)`` triple, sorted
lexicographically: ``('chroma_cens', 'kurtosis', '01')`` first, ``('zcr', 'std', '01')`` last.
Parquet tables use the flat form ``f"{feature}_{statistics}_{number}"`` (``mfcc_mean_01``).

The musicnn family (:mod:`fmagenre.audio.musicnn`, extracted when asked) follows them in the
tables: ``musicnn_mean_001`` ... ``musicnn_mean_200`` and ``musicnn_std_001`` ...
``musicnn_std_200`` (mean and standard deviation over a track's patches of the MSD model's
200-value penultimate layer), then ``musicnn_tag_<tag>`` (mean of each of its 50 tag scores;
the tag in lower case, other characters than letters and digits as ``_``: ``Hip-Hop`` ->
``musicnn_tag_hip_hop``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
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

MUSICNN = "musicnn"
#: The family of a spectrogram network's last hidden layer (:func:`network_names`).
NETWORK = "network"
#: The network the musicnn columns come from: the MSD model of the musicnn 0.1.0 package.
MUSICNN_MODEL = "msd_musicnn-0.1.0"
#: The MSD musicnn model's 50 tags, in the order of its outputs.
MUSICNN_TAGS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s",
    "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock",
    "60s", "rnb", "indie pop", "sad", "House", "happy",
)  # fmt: skip
MUSICNN_EMBEDDING = 200


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
    """Family of a flat column name (``spectral_contrast_mean_03`` -> ``spectral_contrast``,
    ``musicnn_std_007`` -> ``musicnn``)."""
    for family in FAMILY_SIZES:
        if flat.startswith(family + "_") and flat.count("_") == family.count("_") + 2:
            return family
    if flat in musicnn_names():
        return MUSICNN
    raise KeyError(f"{flat!r} is not one of the feature columns")


def tag_column(tag: str) -> str:
    """Column of a musicnn tag's mean score: ``Hip-Hop`` -> ``musicnn_tag_hip_hop``."""
    return f"{MUSICNN}_tag_" + re.sub(r"[^a-z0-9]", "_", tag.lower())


@lru_cache(maxsize=1)
def musicnn_names() -> tuple[str, ...]:
    """The musicnn family's 450 columns, in their order."""
    return (
        *(f"{MUSICNN}_mean_{i + 1:03d}" for i in range(MUSICNN_EMBEDDING)),
        *(f"{MUSICNN}_std_{i + 1:03d}" for i in range(MUSICNN_EMBEDDING)),
        *(tag_column(tag) for tag in MUSICNN_TAGS),
    )


def network_names(width: int) -> tuple[str, ...]:
    """The columns of a spectrogram network's last hidden layer of ``width`` values (a track's
    mean over its patches): ``network_emb_001``..., the similarity space ``network``."""
    return tuple(f"{NETWORK}_emb_{i + 1:03d}" for i in range(width))


def uses_musicnn(columns: Iterable[str]) -> bool:
    """Whether ``columns`` (a model's or an index's) include a musicnn column."""
    return not set(musicnn_names()).isdisjoint(columns)


@lru_cache(maxsize=1)
def all_feature_names() -> tuple[str, ...]:
    """Every feature column a table can hold: the 518, then musicnn's 450."""
    return (*flat_names(), *musicnn_names())
