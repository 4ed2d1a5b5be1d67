"""Where a job's Spark settings come from, under a real ``spark-submit``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from job_loader import ROOT

from fmagenre.platform.session import find_java_home

pytestmark = pytest.mark.slow

# A job on the runner: its session from --config, --master and --conf.
SCRIPT = """\
import json, sys
from fmagenre.platform.jobs import job_parser, run_job

def show(spark, args, config):
    conf = spark.sparkContext.getConf()
    keys = ["spark.dynamicAllocation.enabled", "spark.fmagenre.file", "spark.fmagenre.props",
            "spark.fmagenre.job"]
    print("CONF " + json.dumps({key: conf.get(key) for key in keys}))
    spark.stop()

sys.exit(run_job(job_parser("precedence", "Print the settings."), show))
"""


def _submit_env() -> dict[str, str]:
    python = sys.executable
    return {
        **os.environ,
        "JAVA_HOME": find_java_home(),
        "PYSPARK_PYTHON": python,
        "PYSPARK_DRIVER_PYTHON": python,
    }


SPARK_SUBMIT = str(Path(sys.executable).parent / "spark-submit")


def test_spark_submit_settings_win_over_the_config_file(tmp_path):
    config = tmp_path / "job.toml"
    config.write_text(
        "[spark]\n"
        '"spark.dynamicAllocation.enabled" = true\n'
        '"spark.fmagenre.file" = "file"\n'
        '"spark.fmagenre.props" = "file"\n'
        '"spark.fmagenre.job" = "file"\n'
    )
    properties = tmp_path / "submit.properties"
    properties.write_text("spark.fmagenre.props=properties-file\n")
    script = tmp_path / "show_conf.py"
    script.write_text(SCRIPT)
    command = [
        SPARK_SUBMIT,
        "--master",
        "local[1]",
        "--properties-file",
        str(properties),
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        "spark.dynamicAllocation.enabled=false",
        "--conf",
        "spark.fmagenre.job=submit",
        str(script),
        "--config",
        str(config),
        "--conf",
        "spark.fmagenre.job=job",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, env=_submit_env(), cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("CONF ")]
    assert json.loads(line[5:]) == {
        "spark.dynamicAllocation.enabled": "false",  # spark-submit --conf beats [spark]
        "spark.fmagenre.file": "file",  # [spark] fills what the launcher left unset
        "spark.fmagenre.props": "properties-file",  # so does --properties-file
        "spark.fmagenre.job": "job",  # the job's own --conf beats spark-submit's
    }


def test_the_train_job_ends_its_process_once_done(training_tables, tmp_path):
    """XGBoost's barrier stage starts a non-daemon JVM timer that Spark 3.5 never ends: the
    JVM of a finished job must exit all the same (it stayed up for good on pyspark 3.5.9)."""
    tables = training_tables
    log = tmp_path / "train.log"
    command = [SPARK_SUBMIT, "--master", "local[2]", "--conf", "spark.ui.enabled=false"]
    command += [str(ROOT / "jobs" / "train.py"), "--features", tables.features]
    command += ["--labels", tables.labels, "--output", str(tmp_path / "model")]
    command += ["--columns-file", tables.columns_file, "--search-space", tables.space]
    command += ["--candidates", "1", "--folds", "2", "--search-parallelism", "1"]
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_submit_env(),
            cwd=tmp_path,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600
        while "  report: " not in log.read_text() and process.poll() is None:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        assert "  report: " in log.read_text(), log.read_text()[-3000:]
        # The summary is the Python program's last output: the JVM must follow it.
        try:
            status = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("the job printed its summary, but its process was still up 60 s later")
        assert status == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert (tmp_path / "model" / "metrics.json").is_file()
