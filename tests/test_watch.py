"""The watch job: new uploads classified as they land, exactly once, across kill -9."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from job_loader import load_job, local_submit

from fmagenre.network.inference import load_predictor
from fmagenre.platform.config import ExtractConfig
from fmagenre.watch.lease import LEASE, Lease, LeaseError
from fmagenre.watch.ledger import FEATURES, PREDICTIONS, STATUS
from fmagenre.watch.stream import Watch, WatchOptionError, WatchOptions


@pytest.fixture(scope="module")
def job():
    return load_job("watch")


def _predictions(output: Path):
    """The prediction rows as a plain Parquet reader sees them (none before the first batch)."""
    folder = output / PREDICTIONS
    if not any(folder.glob("*.parquet")):
        return []
    columns = ["path", "status", "error", "genre", "file_size", "modified_at", "predicted_at"]
    columns.append("latency_s")
    return pq.read_table(folder, columns=columns).to_pylist()


def _versions(rows) -> Counter:
    return Counter((Path(r["path"]).name, r["file_size"], r["modified_at"]) for r in rows)


def _landing(sample_corpus, folder: Path, good: int) -> dict[str, int]:
    """``good`` tracks and every bad file of the sample in ``folder``; sizes by name."""
    folder.mkdir(parents=True)
    for track in sample_corpus.tracks[:good]:
        shutil.copy(track.path, folder / track.path.name)
    for reason, path in sample_corpus.bad_files.items():
        shutil.copy(path, folder / f"bad_{reason}.mp3")
    (folder / "notes.txt").write_text("not audio, not matched by the glob")
    return {p.name: p.stat().st_size for p in folder.glob("*.mp3")}


def test_options_are_checked():
    with pytest.raises(WatchOptionError, match="max_files must be at least 1, got 0"):
        WatchOptions(max_files=0)
    with pytest.raises(WatchOptionError, match="min_age_s must be 0 or more, got -1"):
        WatchOptions(min_age_s=-1)


def test_once_classifies_every_file_version_once(
    spark, job, sample_corpus, trained_model, tmp_path, capsys
):
    landing, output, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "ck"
    sizes = _landing(sample_corpus, landing, good=4)
    argv = ["--model", str(trained_model.output), "--input", str(landing)]
    argv += ["--output", str(output), "--checkpoint", str(checkpoint)]
    argv += ["--once", "--min-age", "0", "--max-files", "3"]

    assert job.main(argv, spark=spark) == 0
    printed = capsys.readouterr().out
    rows = _predictions(output)
    assert {Path(r["path"]).name: r["file_size"] for r in rows} == sizes
    assert len(rows) == len(sizes)
    bad = {Path(r["path"]).name for r in rows if r["status"] != "ok"}
    assert bad == {f"bad_{reason}.mp3" for reason in sample_corpus.bad_files if reason != "short"}
    assert all(r["genre"] is None and r["error"] for r in rows if r["status"] != "ok")
    assert all(r["genre"] in trained_model.metrics["labels"] for r in rows if r["status"] == "ok")
    batches = sorted((output / PREDICTIONS).glob("*.parquet"))
    assert len(batches) == -(-len(sizes) // 3)  # a backlog goes in batches of --max-files
    view = pq.read_table(output / FEATURES, columns=["path", "status"]).to_pylist()
    assert sorted(Path(r["path"]).name for r in view) == sorted(sizes)
    status = json.loads((output / STATUS).read_text())
    assert (status["state"], status["files"], status["waiting"]) == ("stopped", len(sizes), 0)
    assert f"watch: {len(sizes)} files classified" in printed

    # Again: nothing new, nothing classified twice.
    assert job.main(argv, spark=spark) == 0
    assert sorted((output / PREDICTIONS).glob("*.parquet")) == batches

    # A file replaced under its name, and a new one: one row each.
    replaced = sample_corpus.tracks[0].path.name
    shutil.copy(sample_corpus.tracks[5].path, landing / replaced)
    os.utime(landing / replaced, (time.time() + 5, time.time() + 5))
    shutil.copy(sample_corpus.tracks[6].path, landing / "new.mp3")
    assert job.main(argv, spark=spark) == 0
    rows = _predictions(output)
    assert max(_versions(rows).values()) == 1
    names = Counter(Path(r["path"]).name for r in rows)
    assert names[replaced] == 2 and names["new.mp3"] == 1 and len(rows) == len(sizes) + 2
    sizes_now = {r["file_size"] for r in rows if Path(r["path"]).name == replaced}
    assert sizes_now == {sizes[replaced], (landing / replaced).stat().st_size}
    view = pq.read_table(output / FEATURES, columns=["path", "file_size"]).to_pylist()
    assert len(view) == len(sizes) + 1  # the view: one row per file, the replaced one's newest
    assert {r["file_size"] for r in view if Path(r["path"]).name == replaced} == {
        (landing / replaced).stat().st_size
    }

    # The similar tracks of each new file, from an index of the watch's own feature table.
    index = tmp_path / "index"
    similar = ["--features", str(output / FEATURES), "--output", str(index)]
    assert load_job("similar").main(similar, spark=spark) == 0
    argv += ["--similar", str(index), "--similar-k", "3"]
    argv[argv.index("--output") + 1] = str(tmp_path / "out2")
    argv[argv.index("--checkpoint") + 1] = str(tmp_path / "ck2")
    assert job.main(argv, spark=spark) == 0
    folder = tmp_path / "out2" / PREDICTIONS
    rows = pq.read_table(folder, columns=["path", "status", "similar"]).to_pylist()
    assert len(rows) == len(sizes) + 1
    indexed = {r["path"] for r in view}
    for row in rows:
        if row["status"] != "ok":
            assert row["similar"] is None
            continue
        near = row["similar"]
        assert [n["rank"] for n in near] == [1, 2, 3]
        assert row["path"] not in {n["path"] for n in near} <= indexed
        distances = [n["distance"] for n in near]
        assert distances == sorted(distances) and distances[0] > 0


def _fail(job, spark, capsys, argv) -> str:
    assert job.main(argv, spark=spark) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("watch:")]
    assert len(lines) == 1, lines
    return lines[0]


def test_setup_errors_are_one_line(spark, job, sample_corpus, trained_model, tmp_path, capsys):
    landing, output, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "ck"
    model = str(trained_model.output)

    def argv(**given):
        paths = {"model": model, "input": landing, "output": output, "checkpoint": checkpoint}
        paths.update(given)
        return [*(f"--{k}={v}" for k, v in paths.items()), "--once", "--min-age", "0"]

    line = _fail(job, spark, capsys, argv())
    assert line == (
        f"watch: landing folder {landing} does not exist: check --input (without --once the"
        " watch waits for it)"
    )
    _landing(sample_corpus, landing, good=1)
    assert job.main(argv(), spark=spark) == 0
    capsys.readouterr()
    other = tmp_path / "other"
    other.mkdir()
    line = _fail(job, spark, capsys, argv(input=other))
    assert line.startswith(f"watch: checkpoint {checkpoint} belongs to the watch of {model} on")
    assert line.endswith(
        "pass those options, or a new --checkpoint for this model, landing folder and output"
    )
    query_state = tmp_path / "query-ck"
    (query_state / "offsets").mkdir(parents=True)  # a checkpoint of some other query
    line = _fail(job, spark, capsys, argv(checkpoint=query_state, output=tmp_path / "out4"))
    assert line == (
        f"watch: checkpoint {query_state} holds another streaming query's state, not"
        " jobs/watch.py's: give this job a --checkpoint of its own"
    )
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.csv").write_text("a,b\n")
    line = _fail(job, spark, capsys, argv(output=foreign, checkpoint=tmp_path / "ck2"))
    assert line == (
        f"watch: {foreign} is not a watch job's output (it holds other files): choose an empty"
        " or new directory"
    )
    line = _fail(
        job,
        spark,
        capsys,
        argv(model=tmp_path, checkpoint=tmp_path / "ck3", output=tmp_path / "out3"),
    )
    assert line.startswith(f"watch: {tmp_path} holds no trained model")
    # A second watch on an output that one writes now (this process holds its lease).
    held = Lease(spark, str(output))
    held.acquire()
    try:
        line = _fail(job, spark, capsys, argv())
    finally:
        held.release()
    assert re.fullmatch(
        rf"watch: {re.escape(str(output))} is written by another watch \(process {os.getpid()}"
        rf" on {re.escape(socket.gethostname())}, heartbeat \d+ s ago\): stop it first \(one"
        r" watch per --output\)",
        line,
    ), line
    assert not (output / LEASE).exists()
    # A setup error after the lease was taken gives it back.
    (output / FEATURES / "notes.txt").write_text("not a feature table's file")
    line = _fail(job, spark, capsys, argv())
    assert "notes.txt" in line and not (output / LEASE).exists()
    (output / FEATURES / "notes.txt").unlink()
    assert job.main(argv(), spark=spark) == 0  # the next one runs
    assert not (output / LEASE).exists()


def test_a_missing_landing_folder_is_waited_for(
    spark, sample_corpus, trained_model, tmp_path, caplog
):
    landing, output = tmp_path / "landing", tmp_path / "out"
    model = str(trained_model.output)
    watch = Watch(
        spark,
        load_predictor(spark, model),
        model_dir=model,
        input=str(landing),
        output=str(output),
        checkpoint=str(tmp_path / "ck"),
        extract=ExtractConfig(),
        options=WatchOptions(min_age_s=0),
    )
    try:
        with caplog.at_level(logging.WARNING, logger="fmagenre.watch.stream"):
            assert watch.step() is None and watch.step() is None
        assert watch.state == "waiting for the landing folder"
        said = [r.getMessage() for r in caplog.records if "does not exist" in r.getMessage()]
        assert said == [f"landing folder {landing} does not exist yet: waiting for it"]
        landing.mkdir()
        shutil.copy(sample_corpus.tracks[0].path, landing / "first.mp3")
        record = watch.step()
        assert (record["files"], record["ok"], record["waiting"]) == (1, 1, 0)
        assert watch.step() is None and watch.state == "idle"
    finally:
        watch.close()
    assert json.loads((output / STATUS).read_text())["files"] == 1
    assert not (output / LEASE).exists()


def _lease_file(output: Path, **fields) -> None:
    record = {"token": "theirs", "started_at_s": time.time(), "heartbeat_s": time.time()}
    (output / LEASE).write_text(json.dumps({**record, **fields}))


def _heartbeat(output: Path) -> float:
    return json.loads((output / LEASE).read_text())["heartbeat_s"]


def test_the_lease_beats_and_goes_to_a_new_watch_only_when_the_old_one_is_gone(
    spark, tmp_path, caplog
):
    output = tmp_path / "out"
    first = Lease(spark, str(output), heartbeat_s=0.2, stale_after_s=3)
    first.acquire()
    try:
        beat, deadline = _heartbeat(output), time.monotonic() + 30
        while _heartbeat(output) == beat and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _heartbeat(output) > beat
        with pytest.raises(LeaseError, match=rf"\(process {os.getpid()} on .*stop it first"):
            Lease(spark, str(output)).acquire()  # this host, alive: refused at once
        first.host = "elsewhere"  # as a retried driver on another node sees it: it beats
        while "elsewhere" not in (output / LEASE).read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        caplog.clear()
        with pytest.raises(LeaseError, match="on elsewhere, heartbeat"):
            Lease(spark, str(output)).acquire()
        assert any("whether it still beats" in r.getMessage() for r in caplog.records)
    finally:
        first.release()
    assert not (output / LEASE).exists()

    here = {"host": socket.gethostname(), "pid_namespace": os.readlink("/proc/self/ns/pid")}
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                           capture_output=True, check=True)  # fmt: skip
    for fields, why in (
        ({"host": "elsewhere", "pid": 1, "heartbeat_s": time.time() - 61}, "no heartbeat"),
        ({"host": "elsewhere", "pid": 1, "heartbeat_s": time.time() - 58}, "no heartbeat"),
        ({**here, "pid": int(ended.stdout)}, "has ended"),
        ({**here, "pid": os.getpid(), "process_start": "0"}, "has ended"),  # a reused pid
    ):
        _lease_file(output, **fields)
        caplog.clear()
        mine = Lease(spark, str(output))
        mine.acquire()
        try:
            assert json.loads((output / LEASE).read_text())["token"] == mine.token
            said = [r.getMessage() for r in caplog.records if "taking over" in r.getMessage()]
            assert len(said) == 1 and why in said[0], said
            mine.check()
            # The one that lost it stops before its next commit.
            _lease_file(output, host="elsewhere", pid=7)
            with pytest.raises(LeaseError, match=r"lost its lease .*process 7 on elsewhere"):
                mine.check()
        finally:
            mine.release()
        assert json.loads((output / LEASE).read_text())["token"] == "theirs"  # not its to drop
        (output / LEASE).unlink()


# -- a real spark-submit, killed with -9 mid-batch, then restarted ----------------------------


def _start(command, env, log: Path) -> subprocess.Popen:
    with log.open("a") as sink:
        return subprocess.Popen(
            command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait(what, until, process, log: Path, *, seconds: float = 240):
    deadline = time.monotonic() + seconds
    while not until():
        assert process.poll() is None, f"the watch ended first:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, (
            f"{what}: not within {seconds} s:\n" + (log.read_text()[-4000:])
        )
        time.sleep(0.2)


def _in_flight(output: Path) -> bool:
    """Whether a batch has started its feature chunk and not committed its predictions."""
    committed = {p.stem for p in (output / PREDICTIONS).glob("*.parquet")}
    started = {p.name for p in (output / FEATURES / "_runs").glob("run-*")}
    return bool(committed) and bool(started - committed)


@pytest.mark.slow
def test_kill_9_mid_batch_then_restart_classifies_each_file_once(
    sample_corpus, trained_model, tmp_path
):
    landing, output, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "ck"
    sizes = _landing(sample_corpus, landing, good=6)
    command, env = local_submit(
        "watch",
        *("--model", str(trained_model.output), "--input", str(landing)),
        *("--output", str(output), "--checkpoint", str(checkpoint)),
        *("--max-files", "2", "--interval", "1", "--min-age", "2", "--view-every", "0"),
    )
    log = tmp_path / "watch.log"
    first = _start(command, env, log)
    try:
        _wait("a batch in flight after a commit", lambda: _in_flight(output), first, log)
        os.killpg(first.pid, signal.SIGKILL)  # the driver JVM, its Python workers, all
        first.wait()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    before = _predictions(output)
    assert 2 <= len(before) < len(sizes), "the kill came after the last batch"
    assert max(_versions(before).values()) == 1
    chunks = len(list((output / FEATURES / "_runs").glob("run-*")))

    # While it is down: a new file. After the restart: one copied in place slowly (never
    # read half), and one replaced under its name.
    shutil.copy(sample_corpus.tracks[6].path, landing / "while_down.mp3")
    second = _start(command, env, log)
    try:
        _wait(
            "the restart's first batch",
            lambda: len(_predictions(output)) > len(before),
            second,
            log,
        )
        data = sample_corpus.tracks[7].path.read_bytes()
        slow = landing / "slow.mp3"
        with slow.open("wb") as sink:
            for start in range(0, len(data), len(data) // 4 + 1):
                sink.write(data[start : start + len(data) // 4 + 1])
                sink.flush()
                time.sleep(0.5)
        (landing / "late_bad.mp3").write_bytes(b"ID3" + bytes(range(256)) * 40)
        replaced = sample_corpus.tracks[1].path.name
        shutil.copy(sample_corpus.tracks[8].path, landing / f".{replaced}.part")
        os.replace(landing / f".{replaced}.part", landing / replaced)
        every = {**sizes, "while_down.mp3": 0, "slow.mp3": 0, "late_bad.mp3": 0}

        def all_there():
            rows = _predictions(output)
            names = Counter(Path(r["path"]).name for r in rows)
            return set(names) == set(every) and names[replaced] == 2

        _wait("every file classified", all_there, second, log)

        def status_says_so():
            status = json.loads((output / STATUS).read_text())
            return status["files"] == len(_predictions(output)) - len(before)

        _wait("the status file", status_says_so, second, log)
    finally:
        os.killpg(second.pid, signal.SIGKILL)  # a stop at any moment is safe
        second.wait()

    rows = _predictions(output)
    assert max(_versions(rows).values()) == 1  # exactly once, each file version
    assert len(rows) == len(every) + 1  # the replaced file twice
    by_name = {Path(r["path"]).name: r for r in rows}
    assert by_name["slow.mp3"]["file_size"] == len(data)
    assert by_name["slow.mp3"]["status"] == "ok"
    assert by_name["late_bad.mp3"]["status"] == "error" and by_name["late_bad.mp3"]["error"]
    assert by_name[replaced]["file_size"] == (landing / replaced).stat().st_size  # the new one
    # Landed while the restarted watch ran: the latency is the time from the file's last change
    # to its prediction, never under --min-age (how long it takes is `bench watch`'s figure).
    for name in ("slow.mp3", "late_bad.mp3", replaced):
        row, mtime = by_name[name], (landing / name).stat().st_mtime
        assert abs(row["modified_at"].timestamp() - mtime) < 1e-3, name
        waited = (row["predicted_at"] - row["modified_at"]).total_seconds()
        assert abs(row["latency_s"] - waited) < 1e-3 and row["latency_s"] >= 2, (name, row)
    view = pq.read_table(output / FEATURES, columns=["path"]).column("path").to_pylist()
    assert sorted(Path(p).name for p in view) == sorted(every)
    status = json.loads((output / STATUS).read_text())
    assert status["waiting"] == 0 and status["last_batch"]["files"] >= 1
    print(
        f"kill -9 with {len(before)} rows committed and a batch in flight ({chunks} feature"
        f" chunks started); after the restart {len(rows)} prediction rows for"
        f" {len(every)} files (one replaced: 2 rows), each version once; view {len(view)} rows"
    )
