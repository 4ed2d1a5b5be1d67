"""Spark event logs where the configuration says, for the history server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from job_loader import ROOT

from fmagenre.errors import InputError
from fmagenre.platform.session import find_java_home, prepare_event_log

FIXTURE = ROOT / "tests" / "data" / "fma_metadata"


def _text(spark, path: Path) -> str:
    """An event log file's text; Spark 4 compresses them with zstd by default (its JVM reads
    them: no Python zstd package needed)."""
    if path.suffix != ".zstd":
        return path.read_text()
    jvm = spark.sparkContext._jvm
    stream = jvm.com.github.luben.zstd.ZstdInputStream(jvm.java.io.FileInputStream(str(path)))
    try:
        return bytes(stream.readAllBytes()).decode("utf-8")
    finally:
        stream.close()


@pytest.mark.slow
def test_a_job_writes_its_event_log_where_the_config_says(spark, tmp_path):
    events = tmp_path / "logs" / "events"  # missing: the job creates it before Spark starts
    config = tmp_path / "job.toml"
    config.write_text(
        "[spark]\n"
        '"spark.eventLog.enabled" = true\n'
        f'"spark.eventLog.dir" = "file:{events}"\n'
        '"spark.ui.enabled" = false\n'
    )
    env = {**os.environ, "JAVA_HOME": find_java_home(), "PYSPARK_PYTHON": sys.executable}
    command = [sys.executable, str(ROOT / "jobs" / "prepare_labels.py"), "--master", "local[1]"]
    command += ["--config", str(config), "--metadata", str(FIXTURE)]
    command += ["--output", str(tmp_path / "labels")]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Spark 3.5: one file, local-ID; Spark 4: a rolling folder eventlog_v2_local-ID/events_N_*.
    logs = [
        path
        for path in events.rglob("*")
        if path.is_file() and path.name.startswith(("local-", "events_"))
    ]
    assert len(logs) == 1, sorted(events.rglob("*"))
    text = _text(spark, logs[0])
    assert '"App Name":"fmagenre-prepare-labels"' in text
    assert '"Event":"SparkListenerApplicationEnd"' in text


def test_the_event_log_folder_is_made_only_when_logging_is_on(tmp_path):
    prepare_event_log({"spark.eventLog.dir": str(tmp_path / "off")})
    assert not (tmp_path / "off").exists()
    for directory in (str(tmp_path / "plain"), f"file:{tmp_path}/uri", f"file://{tmp_path}/u2"):
        prepare_event_log({"spark.eventLog.enabled": "true", "spark.eventLog.dir": directory})
    assert all((tmp_path / name).is_dir() for name in ("plain", "uri", "u2"))
    prepare_event_log({"spark.eventLog.enabled": "true", "spark.eventLog.dir": "hdfs:///logs"})
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match=r"spark.eventLog.dir .*/file/x: cannot create it"):
        prepare_event_log(
            {"spark.eventLog.enabled": "true", "spark.eventLog.dir": str(tmp_path / "file" / "x")}
        )
