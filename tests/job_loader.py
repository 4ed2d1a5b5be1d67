"""Loading the job scripts of ``jobs/`` in tests."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from fmagenre.platform.session import ensure_java

ROOT = Path(__file__).resolve().parent.parent


def load_job(name: str):
    """``jobs/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"{name}_job", ROOT / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def local_submit(job: str, *arguments: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of ``spark-submit jobs/<job>.py ARGUMENTS`` in local
    mode (2 cores, no UI), with this venv's Python on both sides."""
    env = {
        **os.environ,
        "JAVA_HOME": ensure_java(),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    command = [
        str(Path(sys.executable).parent / "spark-submit"),
        *("--master", "local[2]", "--conf", "spark.ui.enabled=false"),
        str(ROOT / "jobs" / f"{job}.py"),
        *arguments,
    ]
    return command, env
