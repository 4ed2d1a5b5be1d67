"""Feature sets by MIR family or by a columns file, and the errors that list valid names."""

from __future__ import annotations

import pytest

from fmagenre.audio.feature_selection import (
    FeatureSelectionError,
    check_columns,
    columns_of_families,
    read_columns_file,
    select_feature_columns,
)
from fmagenre.audio.names import FAMILY_SIZES, flat_names


def test_families_give_their_columns_in_fma_order():
    columns = columns_of_families(["zcr", "mfcc", " zcr "])
    assert len(columns) == (20 + 1) * 7
    assert columns == [c for c in flat_names() if c.startswith(("mfcc_", "zcr_"))]
    assert select_feature_columns() == list(flat_names())
    assert select_feature_columns(families=["tonnetz"]) == columns_of_families(["tonnetz"])


def test_unknown_family_lists_the_valid_ones():
    with pytest.raises(FeatureSelectionError) as error:
        columns_of_families(["mfcc", "mfccs", "chroma"])
    message = str(error.value)
    assert "unknown feature families 'chroma', 'mfccs'" in message
    assert "valid families: " + ", ".join(FAMILY_SIZES) in message
    with pytest.raises(FeatureSelectionError, match="no feature family"):
        columns_of_families(["", " "])


def test_columns_file(tmp_path):
    path = tmp_path / "columns.txt"
    path.write_text("# tempo-free set\nzcr_mean_01, mfcc_mean_02\n\nmfcc_mean_01  # first\n")
    assert read_columns_file(path) == ["mfcc_mean_01", "mfcc_mean_02", "zcr_mean_01"]
    assert select_feature_columns(columns_file=path) == read_columns_file(path)
    path.write_text("mfcc_mean_01 mfcc_mean_21 zcr_average_01\n")
    with pytest.raises(FeatureSelectionError) as error:
        read_columns_file(path)
    message = str(error.value)
    assert message.startswith(f"{path}: 2 unknown feature column(s): 'mfcc_mean_21'")
    assert "mfcc (20)" in message and "statistics mean, std" in message
    with pytest.raises(FeatureSelectionError, match="cannot read the columns file"):
        read_columns_file(tmp_path / "missing.txt")
    with pytest.raises(FeatureSelectionError, match="no feature column"):
        check_columns([])
    with pytest.raises(FeatureSelectionError, match="not both"):
        select_feature_columns(families=["mfcc"], columns_file=path)
