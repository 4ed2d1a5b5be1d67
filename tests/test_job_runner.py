"""The job runner: every job's shared options, its exit statuses, its one-line errors."""

from __future__ import annotations

import argparse
import dataclasses
import re
import time

import pytest
from job_loader import ROOT, load_job

from fmagenre.errors import InputError
from fmagenre.platform import jobs
from fmagenre.platform.config import override
from fmagenre.platform.jobs import (
    EXIT_STATUS,
    comma_list,
    cores,
    fraction,
    int_range,
    job_parser,
    positive_float,
    run_job,
    share,
)

#: The required options of each job, with placeholder values.
REQUIRED = {
    "compare_models": ["--features", "f", "--labels", "l", "--output", "o"],
    "explore": ["--features", "f", "--labels", "l", "--output", "o"],
    "export_fma_csv": ["--input", "i", "--csv", "c"],
    "extract_features": ["--input", "i", "--output", "o"],
    "import_fma_features": ["--csv", "c", "--output", "o"],
    "predict": ["--model", "m", "--input", "i", "--output", "o"],
    "prepare_labels": ["--metadata", "m", "--output", "o"],
    "segments": ["--model", "m", "--input", "i", "--output", "o"],
    "select_features": ["--features", "f", "--labels", "l", "--output", "o"],
    "similar": ["--features", "f", "--output", "o"],
    "train": ["--features", "f", "--labels", "l", "--output", "o"],
    "train_cnn": ["--patches", "p", "--labels", "l", "--output", "o"],
    "watch": ["--model", "m", "--input", "i", "--output", "o", "--checkpoint", "c"],
}


def _no_session(*args, **kwargs):
    raise AssertionError("the job built a session")


def test_every_job_is_covered():
    assert sorted(path.stem for path in (ROOT / "jobs").glob("*.py")) == sorted(REQUIRED)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_help_names_the_shared_options_and_the_exit_statuses(name, capsys):
    with pytest.raises(SystemExit) as done:
        load_job(name).main(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--config TOML", "--master MASTER", "--conf spark.NAME=VALUE"):
        assert option in text
    assert " ".join(EXIT_STATUS.split()) in text


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_a_bad_conf_or_config_exits_2_with_one_line(name, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(jobs, "job_session", _no_session)
    job = load_job(name)
    missing = tmp_path / "missing.toml"
    for options, message in (
        (["--conf", "nokey"], "command line: --conf takes spark.NAME=VALUE, got 'nokey'"),
        (["--config", str(missing)], f"{missing}: cannot read the configuration"),
    ):
        assert job.main([*REQUIRED[name], *options]) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"{name}: {message}") and error.count("\n") == 1


def _runner(job, argv, **kwargs) -> int:
    parser = job_parser("demo", "A demonstration.")
    return run_job(parser, job, argv, spark=object(), **kwargs)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InputError("first line\nsecond line"), 2),
        (FileNotFoundError("nowhere does not exist"), 2),
        (FileExistsError("out already exists"), 2),
    ],
)
def test_errors_the_user_can_fix_exit_2_with_their_first_line(error, status, capsys):
    def job(spark, args, config):
        raise error

    assert _runner(job, []) == status
    line = str(error).splitlines()[0]
    assert capsys.readouterr().err == f"demo: {line}\n"


def test_other_errors_propagate_and_success_is_0(tmp_path):
    def failing(spark, args, config):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        _runner(failing, [])
    config = tmp_path / "job.toml"
    config.write_text("[extract]\nthreads = 3\n")
    seen = []

    def done(spark, args, config):
        seen.append(config.extract)

    def configure(args, config):
        return dataclasses.replace(config, extract=override(config.extract, batch_size=2))

    assert _runner(done, ["--config", str(config)], configure=configure) == 0
    assert (seen[0].threads, seen[0].batch_size) == (3, 2)


def test_usage_errors_exit_2():
    parser = job_parser("demo", "A demonstration.")
    parser.add_argument("--count", type=int_range(2, 4))
    with pytest.raises(SystemExit) as done:
        run_job(parser, _no_session, ["--count", "5"], spark=object())
    assert done.value.code == 2


@pytest.mark.parametrize(
    ("parse", "text", "expected"),
    [
        (int_range(2), "2", 2),
        (int_range(1, 3), "3", 3),
        (positive_float, "0.5", 0.5),
        (fraction, "0.25", 0.25),
        (share, "1", 1.0),
        (cores, "-1", -1),
        (cores, "4", 4),
        (comma_list(), " a, b ", ["a", "b"]),
        (comma_list(share), "0.9,0.99", [0.9, 0.99]),
        (comma_list(allow_empty=True), "", []),
    ],
)
def test_argument_types_accept(parse, text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (int_range(2), "1", "must be an integer >= 2, got 1"),
        (int_range(1, 3), "4", "must be an integer from 1 to 3, got 4"),
        (int_range(0), "1.5", "must be an integer >= 0, got '1.5'"),
        (positive_float, "nan", "must be a number > 0"),
        (fraction, "1", "must be a number > 0 and < 1, got 1"),
        (share, "0", "must be a number > 0 and <= 1, got 0"),
        (cores, "0", "an integer >= 1, or -1 for all cores"),
        (comma_list(), "", "give at least one item"),
        (comma_list(), "a,,b", "empty item in 'a,,b'"),
        (comma_list(), "a,a", "'a' is given twice"),
        (comma_list(choices=("a", "b")), "a,c", "invalid choice: 'c' (choose from a, b)"),
        (comma_list(share), "0.5,2", "must be a number > 0 and <= 1, got 2"),
    ],
)
def test_argument_types_refuse(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
        parse(text)


def test_a_barrier_task_s_own_error_keeps_its_traceback(spark):
    """Not the cluster's doing: exit 1 with the error (a lost executor: the lost-worker
    tests)."""

    def fail(rows):
        raise RuntimeError("a task of the barrier stage fails")

    def job(spark, args, config):
        spark.sparkContext.parallelize(range(2), 2).barrier().mapPartitions(fail).collect()

    with pytest.raises(Exception, match="a task of the barrier stage fails") as raised:
        run_job(job_parser("barrier_job", "a job whose barrier task fails"), job, [], spark=spark)
    assert "Could not recover from a failed barrier ResultStage" in str(raised.value)
    assert jobs.cluster_failure(raised.value) is None


def test_other_errors_keep_their_traceback(spark):
    def broken(spark, args, config):
        spark.sparkContext.parallelize(range(2), 2).map(lambda x: 1 / 0).collect()

    with pytest.raises(Exception, match="ZeroDivisionError"):
        run_job(job_parser("broken_job", "a job that fails"), broken, [], spark=spark)
    assert jobs.cluster_failure(ZeroDivisionError("division by zero")) is None


@pytest.mark.slow
def test_a_job_short_of_barrier_slots_is_cancelled_and_exits_3(spark, capsys):
    from fmagenre.platform.barrier import slots_guard, task_slots

    assert task_slots(spark) == 2  # local[2]

    def waits_for_three_slots(spark, args, config):
        with slots_guard(spark, needed=3, what="--xgb-workers 3", wait_s=1.0):
            spark.sparkContext.parallelize(range(2), 2).map(lambda x: time.sleep(20)).collect()

    started = time.monotonic()
    parser = job_parser("short_job", "a job whose barrier stage never gets its slots")
    assert run_job(parser, waits_for_three_slots, [], spark=spark) == jobs.EXIT_CLUSTER
    assert time.monotonic() - started < 15  # cancelled, not run to its end
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        "short_job: a barrier stage needs 3 task slots at once (--xgb-workers 3) and the"
        " cluster has had 2 for 1 s: rerun when the cluster has its executors back"
    ), line
    # The session still works.
    assert spark.sparkContext.parallelize(range(4), 2).count() == 4
