"""A file's analysis in a forked child: real crashes and hangs cost that file alone."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from fmagenre.audio import numba_cache
from fmagenre.audio.features import analyse
from fmagenre.extraction import isolation
from fmagenre.extraction.isolation import analyse_isolated, fault_for, shutdown

SETTINGS = {"max_duration": 600.0, "fma_compat": True}


@pytest.fixture(scope="module")
def track(sample_corpus) -> bytes:
    numba_cache.warm_up()
    return sample_corpus.tracks[0].path.read_bytes()


def test_result_equals_the_analysis_in_process(track):
    isolated = analyse_isolated(track, **SETTINGS)
    direct = analyse(track, **SETTINGS)
    assert isolated.status == "ok"
    np.testing.assert_array_equal(isolated.features, direct.features)
    assert (isolated.duration_s, isolated.sample_rate) == (direct.duration_s, direct.sample_rate)


def test_decode_errors_stay_error_rows(sample_corpus):
    result = analyse_isolated(sample_corpus.bad_files["not_audio"].read_bytes(), **SETTINGS)
    assert (result.status, result.error_reason) == ("error", "not_audio")


@pytest.mark.parametrize(
    ("fault", "signal_name"), [("segfault", "SIGSEGV"), ("abort", "SIGABRT"), ("kill", "SIGKILL")]
)
def test_a_crash_of_the_analysis_is_a_crashed_row(track, fault, signal_name):
    result = analyse_isolated(track, fault=fault, **SETTINGS)
    assert (result.status, result.error_reason, result.features) == ("error", "crashed", None)
    assert result.error.startswith(f"crashed: the analysis process was killed by {signal_name}")
    # The process that asked is unharmed and analyses the next file.
    assert analyse_isolated(track, **SETTINGS).status == "ok"
    assert not _zombie_children()  # every child was reaped


def _zombie_children() -> list[int]:
    """Children of this process that ended and were not reaped."""
    zombies = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            zombies.append(int(stat.parent.name))
    return zombies


def test_a_hang_is_killed_at_the_time_limit(track):
    started = time.monotonic()
    result = analyse_isolated(track, fault="hang", timeout_s=1.5, **SETTINGS)
    elapsed = time.monotonic() - started
    assert (result.status, result.error_reason) == ("error", "timeout")
    assert result.error == "timeout: no result after 1.5 s, the limit for this file"
    assert 1.5 <= elapsed < 10
    assert not _zombie_children()


def test_a_limit_shorter_than_decoding_times_out_before_any_duration(track):
    result = analyse_isolated(track, timeout_s=0.001, **SETTINGS)
    assert (result.status, result.error_reason, result.analysed_s) == ("error", "timeout", None)


@pytest.mark.parametrize("fault", ["segfault", "hang", None])
def test_no_temporary_folder_or_process_is_left_behind(track, fault, monkeypatch, tmp_path):
    shutdown()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = analyse_isolated(track, fault=fault, timeout_s=1.0 if fault else 0.0, **SETTINGS)
    assert result.status == ("ok" if fault is None else "error")
    # A crashed or killed child is gone with its folder; a working one stays, until shutdown.
    assert len(list(tmp_path.iterdir())) == (1 if fault is None else 0)
    shutdown()
    assert list(tmp_path.iterdir()) == []
    assert not _zombie_children()


def test_one_child_analyses_file_after_file_until_it_fails(track):
    first = analyse_isolated(track, **SETTINGS)
    child = isolation._child.pid
    assert analyse_isolated(track, **SETTINGS).status == first.status == "ok"
    assert isolation._child.pid == child
    analyse_isolated(track, fault="abort", **SETTINGS)
    assert analyse_isolated(track, **SETTINGS).status == "ok"
    assert isolation._child.pid != child


def test_fault_setting_matches_paths():
    setting = "segfault:000101, hang:odd name"
    assert fault_for("file:/c/000/000101.mp3", setting) == "segfault"
    assert fault_for("file:/c/odd name.mp3", setting) == "hang"
    assert fault_for("file:/c/000/000102.mp3", setting) is None
    assert fault_for("file:/c/000/000101.mp3", "") is None


def test_in_a_spark_worker_the_child_works_in_spark_s_local_directory(spark, track):
    """Spark deletes its executors' local directories when they end: a Python worker that
    Spark kills leaves no ``fmagenre-analysis-*`` folder in the system's temporary folder."""
    import pandas as pd

    def where(frames):
        for _ in frames:
            result = analyse_isolated(track, **SETTINGS)
            child = isolation._child
            yield pd.DataFrame(
                {
                    "status": [result.status],
                    "temporary": [child.temporary],
                    "local_dirs": [os.environ.get("SPARK_LOCAL_DIRS", "")],
                }
            )

    schema = "status string, temporary string, local_dirs string"
    (row,) = spark.range(1, numPartitions=1).mapInPandas(where, schema).collect()
    assert row.status == "ok"
    local_dirs = [d for d in row.local_dirs.split(",") if d]
    assert local_dirs, "Spark gave its Python worker no SPARK_LOCAL_DIRS"
    assert Path(row.temporary).parent == Path(local_dirs[0])
    assert Path(row.temporary).name.startswith("fmagenre-analysis-")
    assert Path(row.temporary).parent != Path(tempfile.gettempdir())
