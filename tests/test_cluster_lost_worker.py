"""``kill -9`` of one worker of a two-worker standalone cluster, with its executor JVM and the
executor's Python workers, in the middle of a job: extraction finishes on the other worker;
training, whose XGBoost tasks run as one barrier stage, stops with one line (exit 3); after
``repair`` brings the worker back, reruns finish without redoing what was published."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from cluster_jobs import ClusterJobs, job_config, kill_worker, processes_under

from fmagenre.platform import cluster as standalone
from fmagenre.platform.jobs import EXIT_CLUSTER
from fmagenre.tables.feature_table import MARKER

pytestmark = pytest.mark.slow

COPIES = 3


@pytest.fixture(scope="module")
def cluster_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("lost-worker") / "cluster"
    standalone.start(directory, workers=2, cores=1, memory="1g")
    yield directory
    standalone.stop(directory)


def _jobs(cluster_dir: Path, tmp_path: Path) -> ClusterJobs:
    standalone.repair(cluster_dir)  # the worker an earlier test killed
    # A barrier stage short of slots waits 10 s, not Spark's 10 minutes, before it fails.
    barrier = "spark.scheduler.barrier.maxConcurrentTasksCheck"
    extra = f'"{barrier}.interval" = "1s"\n"{barrier}.maxFailures" = 10\n'
    config = job_config(tmp_path / "cluster.toml", tmp_path / "events", extra)
    return ClusterJobs(standalone.load(cluster_dir), config, archive=None)


def _wait_for(condition, process, log: Path, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the job ended before {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} in {timeout} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def _summaries(output: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(output.glob("_runs/*/summary.json"))]


def test_extraction_that_loses_a_worker_finishes_on_the_other(cluster_dir, sample_corpus, tmp_path):
    jobs = _jobs(cluster_dir, tmp_path)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for copy in range(COPIES):
        for track in sample_corpus.tracks:
            shutil.copy(track.path, corpus / f"{copy}-{track.path.name}")
    files = sorted(p.name for p in corpus.iterdir())
    output = tmp_path / "features"
    arguments = ("--input", str(corpus), "--output", str(output), "--chunk-files", "4")
    log = tmp_path / "extract.log"
    process = jobs.start("extract_features", *arguments, "--partitions", "2", log=log)
    work = Path(jobs.cluster.directory) / "work-2"
    _wait_for(
        lambda: list(output.glob(f"_runs/*/chunk-*/{MARKER}")) and processes_under(work),
        process,
        log,
        "published chunk while worker 2 runs an executor",
    )
    # Each worker runs an executor of the application, in its own working folder.
    for index in (1, 2):
        assert list((Path(jobs.cluster.directory) / f"work-{index}").glob("app-*/*/stderr"))
    killed = kill_worker(jobs.cluster, 2)
    assert len(killed) >= 3  # the worker, its executor, a Python worker at least
    assert process.wait(timeout=300) == 0, log.read_text()[-3000:]
    assert not processes_under(work)
    (summary,) = _summaries(output)
    published_before = summary["skipped"]
    assert summary["processed"] == summary["ok"] == len(files) == summary["table_rows"]
    paths = pq.read_table(output, columns=["path"]).column("path").to_pylist()
    assert sorted(Path(p).name for p in paths) == files  # one row per file, plain reader

    jobs.run("extract_features", *arguments)  # on the one worker left: nothing to redo
    rerun = _summaries(output)[-1]
    counts = (rerun["skipped"], rerun["processed"], rerun["table_rows"])
    assert counts == (len(files), 0, len(files))
    paths = pq.read_table(output, columns=["path"]).column("path").to_pylist()
    assert sorted(Path(p).name for p in paths) == files
    print(
        f"lost worker during extraction: {len(files)} files, {len(killed)} processes killed,"
        f" run 1: {summary['processed']} processed ({published_before} skipped), table"
        f" {summary['table_rows']} rows; rerun: {rerun['skipped']} skipped,"
        f" {rerun['processed']} processed; plain reader {len(paths)} rows"
    )


def test_training_that_loses_a_worker_exits_3_then_a_rerun_succeeds(
    cluster_dir, training_tables, tmp_path
):
    jobs = _jobs(cluster_dir, tmp_path)
    output = tmp_path / "model"
    arguments = (
        *("--features", training_tables.features, "--labels", training_tables.labels),
        *("--output", str(output), "--search-space", training_tables.space),
        *("--columns-file", training_tables.columns_file),
        *("--candidates", "1", "--folds", "2", "--xgb-workers", "2", "--search-parallelism", "1"),
    )
    log = tmp_path / "train.log"
    process = jobs.start("train", *arguments, log=log)
    _wait_for(lambda: "Running xgboost" in log.read_text(), process, log, "XGBoost fit")
    time.sleep(1.0)  # its barrier tasks start
    kill_worker(jobs.cluster, 2)
    code = process.wait(timeout=300)
    text = log.read_text()
    assert code == EXIT_CLUSTER, text[-3000:]
    (line,) = [line for line in text.splitlines() if line.startswith("train: ")]
    # Killed in XGBoost's barrier stage: Spark aborts it. Killed before (in the shuffle that
    # feeds it): the stage waits for two slots and fmagenre's guard ends the wait.
    assert line.startswith(
        (
            "train: a barrier stage lost one of its tasks",
            "train: a barrier stage needs 2 task slots at once (XGBoost's --xgb-workers 2)",
        )
    ), line
    assert "rerun when the cluster has its executors back" in line
    assert not (output / "metrics.json").exists()

    assert standalone.repair(cluster_dir) == [2]
    jobs = ClusterJobs(standalone.load(cluster_dir), jobs.config, archive=None)
    jobs.run("train", *arguments, "--overwrite")
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["test"]["ensemble"]["accuracy"] > 0.5
    print(f"lost worker during training: exit {code}, {line!r}; rerun after repair: exit 0")


BARRIER_LOSS_JOB = """
import os, signal, sys, time
from fmagenre.platform.jobs import job_parser, run_job

def kill_own_executor(rows):
    from pyspark import BarrierTaskContext
    context = BarrierTaskContext.get()
    context.barrier()
    if context.partitionId() == 1:
        daemon = os.getppid()  # this Python worker's daemon, a child of the executor's JVM
        with open(f"/proc/{daemon}/stat") as stat:
            executor = int(stat.read().rsplit(")", 1)[1].split()[1])
        os.kill(executor, signal.SIGKILL)
    time.sleep(60)
    yield 0

def job(spark, args, config):
    spark.sparkContext.parallelize(range(2), 2).barrier().mapPartitions(kill_own_executor).collect()

sys.exit(run_job(job_parser("barrier_loss", "a barrier stage that loses an executor"), job))
"""


def test_a_barrier_stage_that_loses_its_executor_exits_3(cluster_dir, tmp_path):
    jobs = _jobs(cluster_dir, tmp_path)
    script = tmp_path / "barrier_loss.py"
    script.write_text(BARRIER_LOSS_JOB)
    result = subprocess.run(
        jobs.submit(script, "--config", str(jobs.config)),
        capture_output=True,
        text=True,
        env=jobs.env(),
        timeout=300,
    )
    assert result.returncode == EXIT_CLUSTER, result.stdout[-3000:]
    # Under spark-submit, the Python driver's stderr comes on stdout.
    lines = result.stdout.splitlines()
    (line,) = [line for line in lines if line.startswith("barrier_loss: ")]
    assert line.startswith(
        "barrier_loss: a barrier stage lost one of its tasks with its executor (ExecutorLostFailure"
    ), line
    assert "rerun when the cluster has its executors back" in line
