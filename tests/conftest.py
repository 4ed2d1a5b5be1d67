"""Shared fixtures: one real local SparkSession for the whole test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def spark():
    from fmagenre.platform.session import build_session

    session = build_session(
        "fmagenre-tests",
        master="local[2]",
        conf={
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.task.maxFailures": "1",
            "spark.sql.session.timeZone": "UTC",
            "spark.driver.memory": "2g",
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory):
    """A small generated FMA-shaped corpus: 10 short tracks, one per style, and 5 bad files."""
    from fmagenre.synthetic.sample import generate_sample

    return generate_sample(
        tmp_path_factory.mktemp("sample"), tracks_per_genre=1, min_duration=3.0, max_duration=5.0
    )
