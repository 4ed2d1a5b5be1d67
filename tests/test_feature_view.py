"""The feature table's view refreshed chunk by chunk: only the buckets a chunk touches are
rewritten, and the rows are those a refresh from every chunk gives."""

from __future__ import annotations

import os
from datetime import datetime

import pytest
from pyspark.sql import functions as F

from fmagenre.tables.feature_table import (
    FEATURE_SCHEMA,
    _read_rows,
    _view_files,
    chunk_id,
    latest_rows,
    new_run_id,
    publish_chunk,
    published_chunks,
    refresh_view,
)

pytestmark = pytest.mark.slow  # a dozen Spark jobs


def _chunk(spark, output: str, files: dict[str, tuple[int, int, str]]) -> str:
    """Publish a chunk of rows ``path -> (size, modified second, status)``."""
    chunk = chunk_id(new_run_id(), 0)
    given = {
        "path": F.col("_path"),
        "file_size": F.col("_size"),
        "modified_at": F.col("_at"),
        "status": F.col("_status"),
        "extractor_version": F.lit("v1"),
        "settings": F.lit("s"),
        "chunk_id": F.lit(chunk),
    }
    rows = spark.createDataFrame(
        [(p, s, datetime.fromtimestamp(t), status) for p, (s, t, status) in files.items()],
        "_path string, _size long, _at timestamp, _status string",
    )
    frame = rows.select(
        *(given.get(f.name, F.lit(None).cast(f.dataType)).alias(f.name) for f in FEATURE_SCHEMA)
    )
    publish_chunk(spark, frame, output, chunk)
    return chunk


def _view(spark, output: str) -> set:
    rows = _read_rows(spark, _view_files(spark, output).values())
    return {tuple(r) for r in rows.select("path", "file_size", "status", "chunk_id").collect()}


def _from_every_chunk(spark, output: str) -> set:
    rows = latest_rows(_read_rows(spark, published_chunks(spark, output)))
    return {tuple(r) for r in rows.select("path", "file_size", "status", "chunk_id").collect()}


def test_each_refresh_rewrites_only_the_buckets_it_touches(spark, tmp_path):
    output = str(tmp_path / "table")
    first = {f"file:/a/{i:03d}.mp3": (100 + i, 1000, "ok") for i in range(40)}
    _chunk(spark, output, first)
    state = refresh_view(spark, output, buckets=16)
    assert state["rows"] == 40 and _view(spark, output) == _from_every_chunk(spark, output)
    stamps = {
        b: os.stat(p.removeprefix("file:")).st_ino for b, p in _view_files(spark, output).items()
    }

    # A replaced file (an error now), a transient error of an unchanged file (its ok row
    # stays), a new file.
    _chunk(
        spark,
        output,
        {
            "file:/a/001.mp3": (999, 2000, "error"),
            "file:/a/002.mp3": (102, 1000, "error"),
            "file:/a/new.mp3": (7, 3000, "ok"),
        },
    )
    state = refresh_view(spark, output)
    view = _view(spark, output)
    assert state["rows"] == 41 and view == _from_every_chunk(spark, output)
    by_path = {row[0]: row for row in view}
    assert by_path["file:/a/001.mp3"][1:3] == (999, "error")
    assert by_path["file:/a/002.mp3"][1:3] == (102, "ok")
    after = {
        b: os.stat(p.removeprefix("file:")).st_ino for b, p in _view_files(spark, output).items()
    }
    rewritten = {b for b in stamps if after.get(b) != stamps[b]}
    assert 1 <= len(rewritten) <= 3 < len(stamps)  # the buckets of the 3 new rows only
