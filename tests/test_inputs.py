"""The one input reader: missing, unreadable, incomplete and unpublished inputs."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from fmagenre.errors import InputError
from fmagenre.tables.feature_table import FEATURE_SCHEMA, chunk_id, publish_chunk
from fmagenre.tables.inputs import InputTableError, read_feature_rows, read_labels


def test_missing_paths_name_their_option(spark, tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(InputTableError, match=f"^--features {re.escape(missing)} does not exist$"):
        read_feature_rows(spark, missing)
    with pytest.raises(InputTableError, match=f"^--input {re.escape(missing)} does not exist$"):
        read_feature_rows(spark, missing, option="--input")
    with pytest.raises(InputTableError, match=f"^--labels {re.escape(missing)} does not exist$"):
        read_labels(spark, missing)


def test_inputs_that_are_not_parquet(spark, tmp_path):
    (tmp_path / "empty").mkdir()
    empty = str(tmp_path / "empty")
    with pytest.raises(
        InputTableError, match=r"is not Parquet \(UNABLE_TO_INFER_SCHEMA\)"
    ) as error:
        read_labels(spark, empty)
    assert isinstance(error.value, InputError) and isinstance(error.value, ValueError)
    with pytest.raises(InputTableError, match=r"is neither a feature table nor Parquet \(UNABLE"):
        read_feature_rows(spark, empty)


def test_missing_columns_are_listed(spark, tmp_path):
    pd.DataFrame({"track_id": [1], "genre": ["Rock"]}).to_parquet(tmp_path / "labels.parquet")
    path = str(tmp_path / "labels.parquet")
    with pytest.raises(InputTableError) as error:
        read_labels(spark, path)
    assert str(error.value) == (
        f"--labels {path} lacks 2 column(s): genre_top, split; give the label table of"
        " jobs/prepare_labels.py"
    )
    with pytest.raises(InputTableError, match=r"lacks 1 column\(s\): x; give a feature table"):
        read_feature_rows(spark, path, columns=("track_id", "x"))
    assert read_labels(spark, path, columns=("track_id",)).columns == ["track_id"]


def test_a_feature_table_without_a_published_chunk(spark, tmp_path):
    table = tmp_path / "features"
    (table / "_runs" / "run-1" / "chunk-00000").mkdir(parents=True)
    expected = re.escape(f"--features {table} is a feature table without a published chunk yet")
    with pytest.raises(InputTableError, match=f"^{expected}") as error:
        read_feature_rows(spark, str(table))
    assert "\n" not in str(error.value)
    state = {"buckets": 2, "since": None, "chunks": None, "rows": 0}
    (table / "_table.json").write_text(json.dumps(state))
    with pytest.raises(InputTableError, match=f"^{expected}"):
        read_feature_rows(spark, str(table))
    publish_chunk(
        spark, spark.createDataFrame([], FEATURE_SCHEMA), str(table), chunk_id("run-1", 1)
    )
    rows = read_feature_rows(spark, str(table), columns=("track_id", "status"))
    assert rows.columns == FEATURE_SCHEMA.names and rows.count() == 0
