"""Where a job's Spark settings come from, under a real ``spark-submit``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    python = sys.executable
    env = {
        **os.environ,
        "JAVA_HOME": find_java_home(),
        "PYSPARK_PYTHON": python,
        "PYSPARK_DRIVER_PYTHON": python,
    }
    command = [
        str(Path(python).parent / "spark-submit"),
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
        command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("CONF ")]
    assert json.loads(line[5:]) == {
        "spark.dynamicAllocation.enabled": "false",  # spark-submit --conf beats [spark]
        "spark.fmagenre.file": "file",  # [spark] fills what the launcher left unset
        "spark.fmagenre.props": "properties-file",  # so does --properties-file
        "spark.fmagenre.job": "job",  # the job's own --conf beats spark-submit's
    }
