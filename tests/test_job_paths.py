"""Path options: relative and ``~`` paths become absolute URIs on the driver, and
``[paths] local_on_cluster = "refuse"`` stops a job given local paths under a cluster master."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from job_loader import ROOT, load_job

from fmagenre.platform import jobs
from fmagenre.platform.config import load_config
from fmagenre.platform.jobs import (
    check_local_paths,
    hadoop_path,
    job_parser,
    resolve_path_options,
)
from fmagenre.platform.session import find_java_home

FIXTURE = ROOT / "tests" / "data" / "fma_metadata"
REFUSE = '[paths]\nlocal_on_cluster = "refuse"\n'


def _no_session(*args, **kwargs):
    raise AssertionError("the job built a session")


def _labels(directory) -> tuple[list[dict], dict]:
    rows = sorted(pq.read_table(directory).to_pylist(), key=lambda row: row["track_id"])
    return rows, json.loads((directory / "_summary.json").read_text())


@pytest.mark.slow
def test_relative_and_home_paths_give_the_same_table_as_absolute_ones(
    spark, tmp_path, monkeypatch, capsys
):
    home, work = tmp_path / "home", tmp_path / "work"
    shutil.copytree(FIXTURE, home / "meta")
    shutil.copytree(FIXTURE, work / "meta")
    job = load_job("prepare_labels")
    absolute = tmp_path / "absolute"
    assert job.main(["--metadata", str(FIXTURE), "--output", str(absolute)], spark=spark) == 0
    # In the tests' session: ~ and a relative path, from another working folder.
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    assert job.main(["--metadata", "~/meta", "--output", "out/labels"], spark=spark) == 0
    assert f"wrote file:{work}/out/labels and " in capsys.readouterr().out
    # In a job of its own (its own session): the other way round.
    env = {**os.environ, "JAVA_HOME": find_java_home(), "PYSPARK_PYTHON": sys.executable}
    command = [sys.executable, str(ROOT / "jobs" / "prepare_labels.py"), "--master", "local[1]"]
    command += ["--metadata", "meta", "--output", "~/labels", "--conf", "spark.ui.enabled=false"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=work, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"wrote file:{home}/labels and " in result.stdout
    expected = _labels(absolute)
    assert _labels(work / "out" / "labels") == expected
    assert _labels(home / "labels") == expected


def test_relative_values_become_file_uris_and_others_stay(spark, tmp_path, monkeypatch):
    parser = job_parser("demo", "A demonstration.")
    parser.add_argument("--input", type=hadoop_path, nargs="+")
    parser.add_argument("--output", type=hadoop_path)
    parser.add_argument("--model", type=hadoop_path)
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    monkeypatch.chdir(tmp_path)
    given = ["a/*.mp3", "/abs/b", "s3a://bucket/c", "~/d", "file:/e", "../f"]
    args = parser.parse_args(["--input", *given, "--output", "out/"])
    resolve_path_options(spark, parser, args, policy="refuse")  # a local master: no refusal
    assert args.input == [
        f"file:{tmp_path}/a/*.mp3",
        "/abs/b",
        "s3a://bucket/c",
        f"file:{tmp_path}/me/d",
        "file:/e",
        f"file:{tmp_path.parent}/f",
    ]
    assert (args.output, args.model) == (f"file:{tmp_path}/out", None)


def test_an_unknown_user_home_is_a_usage_error(capsys):
    parser = job_parser("demo", "A demonstration.")
    parser.add_argument("--input", type=hadoop_path)
    with pytest.raises(SystemExit) as done:
        parser.parse_args(["--input", "~no-such-user-here/x"])
    assert done.value.code == 2
    assert "cannot expand ~no-such-user-here/x: no such user" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        (
            ["--metadata", "file:/data/meta", "--output", "s3a://b/labels"],
            "--metadata file:/data/meta",
        ),
        (["--metadata", "s3a://b/meta", "--output", "~/labels"], "--output file:{home}/labels"),
    ],
)
def test_local_paths_on_a_cluster_master_are_refused_before_spark_starts(
    options, shown, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(jobs, "job_session", _no_session)
    monkeypatch.setenv("HOME", str(tmp_path))
    config = tmp_path / "refuse.toml"
    config.write_text(REFUSE)
    argv = [*options, "--config", str(config), "--master", "spark://192.0.2.1:7077"]
    assert load_job("prepare_labels").main(argv) == 2
    assert capsys.readouterr().err == (
        f"prepare_labels: {shown.format(home=tmp_path)}: a path on the driver's disk, which the"
        " executors of master spark://192.0.2.1:7077 do not see ([paths] local_on_cluster ="
        ' "refuse"): put the data on HDFS or S3 (hdfs://, s3://) and give its URI\n'
    )


def test_the_rule_spares_local_masters_allow_and_cluster_uris():
    parser = job_parser("demo", "A demonstration.")
    parser.add_argument("--input", type=hadoop_path, nargs="+")
    local = parser.parse_args(["--input", "file:/a", "~/b"])
    remote = parser.parse_args(["--input", "hdfs:///a", "s3://b/c", "/schemeless", "relative"])
    for args, master, policy in (
        (local, "local[4]", "refuse"),
        (local, "yarn", "allow"),
        (remote, "yarn", "refuse"),  # schemeless: the default file system's, HDFS on YARN
    ):
        check_local_paths(parser, args, master=master, policy=policy)
    with pytest.raises(jobs.InputError, match="--input file:/a: a path on the driver's disk"):
        check_local_paths(parser, local, master="yarn", policy="refuse")


def test_emr_refuses_local_paths_and_local_runs_allow_them():
    assert load_config(ROOT / "conf" / "emr.toml").paths.local_on_cluster == "refuse"
    assert load_config(ROOT / "conf" / "local.toml").paths.local_on_cluster == "allow"
    assert load_config().paths.local_on_cluster == "allow"


def test_a_file_the_driver_writes_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parser = load_job("export_fma_csv").make_parser()
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    for given, expected in (("out.csv", tmp_path / "out.csv"), ("~/a.csv", tmp_path / "me/a.csv")):
        assert parser.parse_args(["--input", "t", "--csv", given]).csv == str(expected)
