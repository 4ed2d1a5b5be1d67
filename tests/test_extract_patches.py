"""Log-mel patches in the extraction job's pass: real Spark, generated MP3s, no mocks."""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from job_loader import load_job

from fmagenre.audio.features import analyse
from fmagenre.audio.patches import PatchSettings, patches_from_bytes
from fmagenre.extraction.driver import extraction_frame, list_inputs, settings_key
from fmagenre.platform.config import ExtractConfig
from fmagenre.tables.feature_table import FEATURE_SCHEMA, read_features

pytestmark = pytest.mark.slow

SETTINGS = PatchSettings()
PATCH_COLUMNS = ("patches", "patch_error")


def _corpus(sample, directory: Path) -> dict[str, Path]:
    """Two sample tracks and the sample's 5 bad files under FMA-like names, by role."""
    sources = {"good0": sample.tracks[0].path, "good1": sample.tracks[3].path}
    sources.update(sample.bad_files)
    files = {}
    for i, (role, source) in enumerate(sources.items()):
        files[role] = directory / "000" / f"{200 + i:06d}.mp3"
        files[role].parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, files[role])
    return files


def _run(spark, corpus: Path, output: Path, *options: str) -> dict:
    argv = ["--input", str(corpus), "--output", str(output), *options]
    with redirect_stdout(io.StringIO()) as printed:
        assert load_job("extract_features").main(argv, spark=spark) == 0
    line = next(line for line in printed.getvalue().splitlines() if "summary  " in line)
    return {**json.loads(Path(line.split()[-1]).read_text()), "printed": printed.getvalue()}


def _rows(spark, output: Path) -> dict[str, object]:
    return {Path(row.path).name: row for row in read_features(spark, str(output)).collect()}


def _strip_patch_columns(output: Path) -> None:
    """Make the table look written before the patch columns existed: rewrite every Parquet
    file of its view and chunks without them."""
    for path in output.rglob("*.parquet"):
        table = pq.read_table(path)
        old = table.drop_columns(list(PATCH_COLUMNS))
        pq.write_table(old, path, use_deprecated_int96_timestamps=True)  # as Spark writes
        path.with_name(f".{path.name}.crc").unlink(missing_ok=True)  # Hadoop's checksum


@pytest.fixture(scope="module")
def runs(spark, sample_corpus, tmp_path_factory):
    """Without patches, then (over that table made to look older) with, then again with."""
    root = tmp_path_factory.mktemp("patches")
    files = _corpus(sample_corpus, root / "corpus")
    output = root / "features"
    plain = _run(spark, root / "corpus", output)
    _strip_patch_columns(output)
    old_rows = _rows(spark, output)
    with_patches = _run(spark, root / "corpus", output, "--patches", "--batch-size", "3")
    rows = _rows(spark, output)
    again = _run(spark, root / "corpus", output, "--patches")
    return {
        "files": files,
        "output": output,
        "plain": plain,
        "old_rows": old_rows,
        "with_patches": with_patches,
        "rows": rows,
        "again": again,
    }


def test_a_table_without_the_patch_columns_still_reads_with_them_null(runs):
    first_run = runs["output"] / "_runs" / runs["plain"]["run_id"]
    chunk_files = list(first_run.glob("chunk-*/*.parquet"))
    assert chunk_files
    assert all(not set(PATCH_COLUMNS) & set(pq.read_schema(f).names) for f in chunk_files)
    old = runs["old_rows"]
    assert len(old) == len(runs["files"])
    assert all(row.patches is None and row.patch_error is None for row in old.values())
    assert sum(row.status == "ok" for row in old.values()) == 3  # two tracks and the clip


def test_asking_for_patches_redoes_files_extracted_without(runs):
    n = len(runs["files"])
    assert runs["plain"]["processed"] == n
    assert (runs["with_patches"]["skipped"], runs["with_patches"]["processed"]) == (0, n)
    assert runs["with_patches"]["config"]["patches"] is True
    assert (runs["plain"]["with_patches"], runs["with_patches"]["with_patches"]) == (0, 2)
    assert "with patches          2" in runs["with_patches"]["printed"]
    assert "with patches" not in runs["plain"]["printed"]
    # A rerun with patches skips every ok row: its settings carry the patch key.
    assert (runs["again"]["skipped"], runs["again"]["processed"]) == (3, n - 3)


def test_good_files_have_the_patches_of_their_decoding(runs):
    rows = runs["rows"]
    for role in ("good0", "good1"):
        path = runs["files"][role]
        row = rows[path.name]
        assert row.status == "ok" and row.patch_error is None
        assert len(row.patches) == 16 * 96 * 128
        stored = patches_from_bytes(bytes(row.patches), settings=SETTINGS)
        np.testing.assert_array_equal(stored, analyse(path, patches=SETTINGS).patches)
        assert row.settings == settings_key(ExtractConfig(), SETTINGS)
        assert PatchSettings.from_key(row.settings) == SETTINGS


def test_bad_files_have_one_row_with_the_reason_and_no_patches(runs):
    rows = runs["rows"]
    assert set(rows) == {path.name for path in runs["files"].values()}
    for reason in ("empty", "truncated", "not_audio", "silent"):
        row = rows[runs["files"][reason].name]
        assert (row.status, row.error_reason, row.patches) == ("error", reason, None)
        assert row.patch_error == row.error and row.patch_error.startswith(f"{reason}: ")
    short = rows[runs["files"]["short"].name]
    assert short.status == "ok" and short.features is not None and short.patches is None
    assert short.patch_error.startswith("too_short: ")


def test_the_view_has_the_table_schema_and_192_kib_of_patches_a_track(spark, runs):
    frame = read_features(spark, str(runs["output"]))
    assert frame.schema == FEATURE_SCHEMA
    assert dict(frame.dtypes)["patches"] == "binary"
    view = pq.read_table(runs["output"], columns=["patches"]).column("patches").to_pylist()
    assert sorted(len(p) for p in view if p is not None) == [196_608, 196_608]


def test_window_patches_from_extraction_frame(spark, runs):
    files = runs["files"]
    wanted = [files["good0"], files["not_audio"], files["short"]]
    listed = list_inputs(spark, [str(p) for p in wanted], glob="*.mp3")
    config = ExtractConfig()
    rows = extraction_frame(spark, listed, config, window=3.0, hop=3.0, patches=SETTINGS)
    assert {"patches", "patch_error", "window", "track_id"} <= set(rows.columns)
    by_file: dict[str, list] = {}
    for row in rows.collect():
        by_file.setdefault(Path(row.path).name, []).append(row)
    good = sorted(by_file[files["good0"].name], key=lambda r: -1 if r.window is None else r.window)
    assert good[0].window is None and len(good[0].patches) == 16 * 96 * 128
    assert len(good) > 1
    for window in good[1:]:
        assert window.patch_error is None
        assert len(window.patches) == SETTINGS.window_count(window.end_s - window.start_s) * 12288
    (bad,) = by_file[files["not_audio"].name]
    assert bad.patches is None and bad.patch_error == bad.error
    short = by_file[files["short"].name]
    assert all(r.patches is None and r.patch_error.startswith("too_short") for r in short)
    # Not asked: the timeline's window rows are as before, without patch columns.
    plain = extraction_frame(spark, listed, config, window=3.0, hop=3.0)
    assert not set(PATCH_COLUMNS) & set(plain.columns)


def test_a_crash_and_a_file_over_the_limit_have_their_error_as_patch_error(sample_corpus):
    import pandas as pd

    from fmagenre.extraction.isolation import shutdown
    from fmagenre.extraction.worker import RESULT_SCHEMA, analyse_frames

    track = sample_corpus.tracks[1].path
    frame = pd.DataFrame(
        {
            "path": ["ok.mp3", "crash.mp3", "big.mp3"],
            "file_size": [track.stat().st_size] * 2 + [2**30],
            "modified_us": [0, 0, 0],
            "content": [track.read_bytes()] * 2 + [None],
        }
    )
    config = ExtractConfig(inject_fault="abort:crash", timeout_s=60)
    try:
        (out,) = analyse_frames([frame], config, patches=SETTINGS)
    finally:
        shutdown()
    assert list(out.columns) == RESULT_SCHEMA.names
    ok, crashed, big = out.to_dict("records")
    assert ok["status"] == "ok" and len(ok["patches"]) == 196_608 and ok["patch_error"] is None
    assert crashed["error_reason"] == "crashed" and crashed["patches"] is None
    assert crashed["patch_error"] == crashed["error"]
    assert big["error_reason"] == "too_large" and big["patch_error"] == big["error"]
