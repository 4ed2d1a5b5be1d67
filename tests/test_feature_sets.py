"""Feature sets by MIR family or column list, the column-list format, and their messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmagenre.audio.feature_sets import (
    FeatureSetError,
    build_feature_sets,
    check_columns,
    family_columns,
    format_column_list,
    parse_column_list,
    read_column_list,
    select_feature_columns,
)
from fmagenre.audio.names import FAMILY_SIZES, flat_names
from fmagenre.errors import InputError


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def test_families_give_their_columns_in_fma_order():
    columns = family_columns(["zcr", "mfcc", " zcr "])
    assert len(columns) == (20 + 1) * 7
    assert columns == tuple(c for c in flat_names() if c.startswith(("mfcc_", "zcr_")))
    assert select_feature_columns(read=_read) == flat_names()
    assert select_feature_columns(families=["tonnetz"], read=_read) == family_columns(["tonnetz"])


def test_unknown_family_lists_the_valid_ones():
    with pytest.raises(FeatureSetError) as error:
        family_columns(["mfcc", "mfccs", "chroma"])
    message = str(error.value)
    assert "unknown feature families 'chroma', 'mfccs'" in message
    assert "valid families: " + ", ".join(FAMILY_SIZES) in message
    assert isinstance(error.value, InputError) and isinstance(error.value, ValueError)
    with pytest.raises(FeatureSetError, match="no feature family"):
        family_columns(["", " "])


def test_column_list_file(tmp_path):
    path = tmp_path / "columns.txt"
    path.write_text("# tempo-free set\nzcr_mean_01, mfcc_mean_02\n\nmfcc_mean_01  # first\n")
    expected = ("mfcc_mean_01", "mfcc_mean_02", "zcr_mean_01")
    assert read_column_list(str(path), read=_read) == expected
    assert select_feature_columns(columns_file=str(path), read=_read) == expected
    path.write_text("mfcc_mean_01 mfcc_mean_21 zcr_average_01\n")
    with pytest.raises(FeatureSetError) as error:
        read_column_list(str(path), read=_read)
    message = str(error.value)
    assert message.startswith(f"{path}: 2 unknown feature column(s): 'mfcc_mean_21'")
    assert "mfcc (20)" in message and "statistics mean, std" in message
    with pytest.raises(FeatureSetError, match=r"column list \S+missing.txt does not exist"):
        read_column_list(str(tmp_path / "missing.txt"), read=_read)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(FeatureSetError, match="cannot read the column list"):
        read_column_list(str(path), read=_read)
    with pytest.raises(FeatureSetError, match="not both"):
        select_feature_columns(families=["mfcc"], columns_file=str(path), read=_read)


def test_column_list_format():
    text = format_column_list(["zcr_std_01", "mfcc_mean_01"], comments=["made by hand"])
    assert text == "# made by hand\nzcr_std_01\nmfcc_mean_01\n"
    more = "\n  # more\nrmse_max_01, zcr_std_01  tonnetz_min_06 # inline\n"
    assert parse_column_list(text + more) == check_columns(
        ["zcr_std_01", "mfcc_mean_01", "rmse_max_01", "tonnetz_min_06"]
    )
    with pytest.raises(FeatureSetError, match=r"1 unknown feature column.*'mfcc_mean_99'"):
        parse_column_list("mfcc_mean_01\nmfcc_mean_99\n")
    with pytest.raises(FeatureSetError, match="column list: no feature column"):
        parse_column_list("# nothing\n")
    with pytest.raises(FeatureSetError, match="listed twice"):
        format_column_list(["zcr_std_01", "zcr_std_01"])
    # An empty selection is written as comments alone; a job reading it says it is empty.
    empty = format_column_list([], comments=["nothing passed"])
    assert empty == "# nothing passed\n"
    with pytest.raises(FeatureSetError, match="column list: no feature column"):
        parse_column_list(empty)


def test_selected_feature_set_is_in_fma_order():
    sets = build_feature_sets(combinations=[], selected=["zcr_std_01", "mfcc_mean_01"])
    assert sets["selected"].columns == ("mfcc_mean_01", "zcr_std_01")
    with pytest.raises(FeatureSetError, match="selected columns: 1 unknown"):
        build_feature_sets(selected=["loudness"])
