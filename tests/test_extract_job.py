"""jobs/extract_features.py end to end on generated MP3s, with the real local SparkSession."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from fmagenre.audio.features import EXTRACTOR_VERSION, extract_file
from fmagenre.audio.names import flat_names
from fmagenre.tables.feature_table import FEATURE_SCHEMA, MARKER, read_features

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TWO_FILES = {"part-00000.parquet", "part-00001.parquet"}
BAD_REASONS = ("empty", "truncated", "not_audio", "silent")


@pytest.fixture(scope="module")
def job():
    spec = importlib.util.spec_from_file_location("extract_job", ROOT / "jobs/extract_features.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _local(path: str) -> Path:
    """A local path from the table's ``file:`` URI."""
    assert path.startswith("file:/")
    return Path(path[len("file:") :])


def _run(job, spark, capsys, corpus: Path, output: Path, *options: str) -> dict:
    """Run the job, check its printed summary, and return summary.json."""
    argv = ["--input", str(corpus), "--output", str(output), *options]
    assert job.main(argv, spark=spark) == 0
    printed = capsys.readouterr().out
    line = next(line for line in printed.splitlines() if line.lstrip().startswith("summary "))
    summary = json.loads(Path(line.split()[-1]).read_text())
    assert f"files seen            {summary['files_seen']}" in printed
    assert f"processed             {summary['processed']}" in printed
    return summary


def _tiny_corpus(sample, directory: Path, *names: str) -> Path:
    """Copies of sample tracks (by index) and bad files (by reason) under FMA-like names."""
    for i, name in enumerate(names):
        source = (
            sample.bad_files[name] if name in sample.bad_files else sample.tracks[int(name)].path
        )
        target = directory / "000" / f"{100 + i:06d}.mp3"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    return directory


@pytest.fixture(scope="module")
def first_run(spark, job, sample_corpus, tmp_path_factory):
    """The sample corpus plus a file with a non-FMA name, one too large, one not matched."""
    root = tmp_path_factory.mktemp("extract")
    corpus = root / "corpus"
    shutil.copytree(sample_corpus.audio_dir, corpus)
    (corpus / "extra").mkdir()
    shutil.copy(sample_corpus.tracks[0].path, corpus / "extra" / "odd [1] name.mp3")
    (corpus / "extra" / "notes.txt").write_text("not matched by *.mp3\n")
    big = corpus / "999" / "999999.mp3"
    big.parent.mkdir()
    big.write_bytes(np.random.default_rng(0).bytes(2**20 + 1000))
    output = root / "features"
    argv = ["--input", str(corpus), "--output", str(output), "--chunk-files", "6"]
    argv += ["--batch-size", "2", "--partitions", "3", "--max-file-mb", "1"]
    assert job.main(argv, spark=spark) == 0
    rows = {row.path: row for row in read_features(spark, str(output)).collect()}
    (summary_file,) = output.glob("_runs/*/summary.json")
    return {
        "corpus": corpus,
        "output": output,
        "rows": rows,
        "summary": json.loads(summary_file.read_text()),
        "big": big,
    }


def test_one_row_per_file_with_the_table_schema(spark, first_run, sample_corpus):
    rows = first_run["rows"]
    files = {p for p in first_run["corpus"].rglob("*.mp3")}
    assert len(files) == len(sample_corpus.tracks) + len(sample_corpus.bad_files) + 2
    assert {_local(path) for path in rows} == files
    frame = read_features(spark, str(first_run["output"]))
    assert frame.schema == FEATURE_SCHEMA
    types = dict(frame.dtypes)
    assert types["track_id"] == "bigint" and types["file_size"] == "bigint"
    assert all(types[name] == "float" for name in flat_names())
    assert types["features"] == "array<float>"
    for row in rows.values():
        name = _local(row.path).name
        assert row.track_id == (int(name[:6]) if name[:6].isdigit() else None)
        assert row.file_size == _local(row.path).stat().st_size
        assert row.chunk_id.startswith(first_run["summary"]["run_id"] + "/chunk-")


def test_bad_files_have_error_rows_with_reasons(first_run, sample_corpus):
    rows = {
        _local(path).relative_to(first_run["corpus"]): row
        for path, row in first_run["rows"].items()
    }

    def row_of(reason):
        return rows[sample_corpus.bad_files[reason].relative_to(sample_corpus.audio_dir)]

    for reason in BAD_REASONS:
        row = row_of(reason)
        assert (row.status, row.error_reason) == ("error", reason)
        assert row.error.startswith(f"{reason}: ")
        assert row.features is None and row.mfcc_mean_01 is None
    big = rows[first_run["big"].relative_to(first_run["corpus"])]
    assert (big.status, big.error_reason) == ("error", "too_large")
    assert "over the max_file_mb limit of 1 MiB" in big.error
    silent = row_of("silent")
    assert silent.duration_s == pytest.approx(3.0, abs=0.1) and silent.sample_rate == 22050
    short = row_of("short")
    assert short.status == "ok" and short.error is None and short.error_reason is None


def test_features_equal_extract_file(first_run):
    ok = [row for row in first_run["rows"].values() if row.status == "ok"]
    assert len(ok) == len(first_run["rows"]) - len(BAD_REASONS) - 1
    nan_values = 0
    for row in ok:
        expected = extract_file(_local(row.path)).to_numpy()
        flat = np.array([row[name] for name in flat_names()], dtype=np.float64)
        assert not any(row[name] is None for name in flat_names())  # NaN stays NaN, not null
        np.testing.assert_allclose(flat, expected, rtol=1e-6, equal_nan=True)
        np.testing.assert_array_equal(np.array(row.features, dtype=np.float32), flat)
        assert row.extractor_version == EXTRACTOR_VERSION
        assert row.analysed_s == pytest.approx(row.duration_s) and row.extract_s > 0
        nan_values += int(np.isnan(flat).sum())
    assert nan_values > 0  # the 0.3 s clip has undefined statistics: NaN, as in FMA's CSV


def test_summary_counts_and_published_chunks(first_run):
    summary = first_run["summary"]
    n = len(first_run["rows"])
    assert summary["files_seen"] == summary["processed"] == n and summary["skipped"] == 0
    assert summary["ok"] == n - len(BAD_REASONS) - 1
    assert summary["errors"] == {reason: 1 for reason in (*BAD_REASONS, "too_large")}
    assert summary["missing"] == 0
    assert summary["chunks"] == -(-n // 6)
    assert summary["config"]["batch_size"] == 2 and summary["config"]["max_file_mb"] == 1
    assert summary["analysed_s"] > 0 and summary["x_real_time"] > 0
    markers = sorted(first_run["output"].glob(f"_runs/*/chunk-*/{MARKER}"))
    assert len(markers) == summary["chunks"]
    assert sum(json.loads(marker.read_text())["rows"] for marker in markers) == n


def test_resume_processes_only_new_files_and_earlier_errors(
    spark, job, capsys, sample_corpus, tmp_path
):
    corpus = _tiny_corpus(sample_corpus, tmp_path / "corpus", "0", "1", "not_audio")
    output = tmp_path / "features"
    first = _run(job, spark, capsys, corpus, output)
    assert (first["processed"], first["ok"], first["errors"]) == (3, 2, {"not_audio": 1})

    added = corpus / "000" / "000777.mp3"
    shutil.copy(sample_corpus.tracks[2].path, added)
    second = _run(job, spark, capsys, corpus, output)
    assert (second["files_seen"], second["skipped"], second["processed"]) == (4, 2, 2)
    assert (second["ok"], second["errors"]) == (1, {"not_audio": 1})

    rows = {_local(row.path): row for row in read_features(spark, str(output)).collect()}
    assert len(rows) == 4
    latest = {path for path, row in rows.items() if row.chunk_id.startswith(second["run_id"])}
    assert latest == {added, corpus / "000" / "000102.mp3"}

    again = _run(job, spark, capsys, corpus, output, "--overwrite")
    assert (again["skipped"], again["processed"], again["ok"]) == (0, 4, 3)
    assert [p.name for p in (output / "_runs").iterdir()] == [again["run_id"]]
    assert read_features(spark, str(output)).count() == 4


def test_killed_run_is_ignored_and_its_files_redone(spark, job, capsys, sample_corpus, tmp_path):
    corpus = _tiny_corpus(sample_corpus, tmp_path / "corpus", "3", "not_audio")
    output = tmp_path / "features"
    first = _run(job, spark, capsys, corpus, output)
    (chunk,) = (output / "_runs" / first["run_id"]).glob("chunk-*")

    # A later run killed before publishing: rows on storage, no marker. It claims success for
    # the bad file, which readers must not believe.
    killed = output / "_runs" / "run-99991231T000000000000Z-deadbeef" / "chunk-00000"
    spark.read.parquet(str(chunk)).selectExpr(
        *(c for c in FEATURE_SCHEMA.names if c not in ("status", "chunk_id")),
        "'ok' AS status",
        "'run-99991231T000000000000Z-deadbeef/chunk-00000' AS chunk_id",
    ).write.parquet(str(killed))
    rows = {_local(r.path).name: r for r in read_features(spark, str(output)).collect()}
    assert rows["000101.mp3"].status == "error"
    assert {r.chunk_id for r in rows.values()} == {f"{first['run_id']}/chunk-00000"}

    # The killed run alone: its files count as not done.
    alone = tmp_path / "alone"
    shutil.copytree(killed, alone / "_runs" / killed.parent.name / killed.name)
    assert read_features(spark, str(alone)).count() == 0
    redo = _run(job, spark, capsys, corpus, alone)
    assert (redo["skipped"], redo["processed"], redo["ok"]) == (0, 2, 1)
    assert read_features(spark, str(alone)).count() == 2


def test_missing_input_and_foreign_output_exit_2(spark, job, capsys, tmp_path):
    argv = ["--input", str(tmp_path / "nowhere"), "--output", str(tmp_path / "out")]
    assert job.main(argv, spark=spark) == 2
    assert "does not exist" in capsys.readouterr().err
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.pdf").write_bytes(b"%PDF")
    argv = ["--input", str(tmp_path), "--output", str(foreign), "--overwrite"]
    assert job.main(argv, spark=spark) == 2
    assert "is not a feature table (it holds thesis.pdf)" in capsys.readouterr().err
    assert (foreign / "thesis.pdf").exists()


def test_help_explains_every_option(job, capsys):
    with pytest.raises(SystemExit) as done:
        job.make_parser().parse_args(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--input --output --config --glob --max-duration --fma-compat --no-fma-compat"
        " --batch-size --partitions --chunk-files --max-file-mb --threads --timeout --overwrite"
        " --patches --no-patches --patch-count 192 KiB 106,574"
        " --master"
        " --conf"
    ).split():
        assert option in text


def _plain_reader_paths(output: Path) -> dict[str, list[str]]:
    """The ``path`` column of the table as readers that know nothing of fmagenre see it."""
    import duckdb
    import pandas as pd
    import pyarrow.parquet as pq

    return {
        "pyarrow": pq.read_table(output, columns=["path"]).column("path").to_pylist(),
        "pandas": pd.read_parquet(output, columns=["path"])["path"].tolist(),
        "duckdb": [
            row[0]
            for row in duckdb.sql(f"SELECT path FROM read_parquet('{output}/*.parquet')").fetchall()
        ],
    }


def _assert_one_row_per_file(spark, output: Path, files: set[Path]) -> None:
    recursive = spark.read.option("recursiveFileLookup", "true").parquet(str(output))
    seen = _plain_reader_paths(output)
    seen["spark recursive"] = [row.path for row in recursive.select("path").collect()]
    seen["fmagenre"] = [row.path for row in read_features(spark, str(output)).collect()]
    for reader, paths in seen.items():
        assert sorted(_local(p) for p in paths) == sorted(files), reader


def test_every_parquet_reader_sees_one_row_per_file_after_reruns(
    spark, job, capsys, sample_corpus, tmp_path
):
    corpus = _tiny_corpus(sample_corpus, tmp_path / "corpus", "0", "1", "not_audio")
    files = set(corpus.rglob("*.mp3"))
    output = tmp_path / "features"
    first = _run(job, spark, capsys, corpus, output, "--chunk-files", "2")
    assert (first["processed"], first["chunks"], first["table_rows"]) == (3, 2, 3)
    _assert_one_row_per_file(spark, output, files)
    assert sorted(p.name for p in output.iterdir() if not p.name.startswith((".", "_"))) == [
        f"part-{bucket:05d}.parquet" for bucket in sorted(_buckets(spark, output))
    ]

    # A value-changing setting redoes every file; the history now holds each file twice.
    second = _run(job, spark, capsys, corpus, output, "--max-duration", "4")
    assert (second["skipped"], second["processed"], second["table_rows"]) == (0, 3, 3)
    _assert_one_row_per_file(spark, output, files)
    rows = {_local(r.path).name: r for r in read_features(spark, str(output)).collect()}
    assert rows["000100.mp3"].settings == "max_duration=4;fma_compat=true"
    assert rows["000100.mp3"].analysed_s == pytest.approx(4.0, abs=0.05)

    # Same settings: only the file whose modification time changed is redone (and the error).
    touched = corpus / "000" / "000101.mp3"
    os.utime(touched, (touched.stat().st_atime, touched.stat().st_mtime + 60))
    third = _run(job, spark, capsys, corpus, output, "--max-duration", "4")
    assert (third["skipped"], third["processed"], third["ok"]) == (1, 2, 1)
    _assert_one_row_per_file(spark, output, files)
    rows = {_local(r.path).name: r for r in read_features(spark, str(output)).collect()}
    assert rows["000101.mp3"].chunk_id.startswith(third["run_id"])
    assert rows["000100.mp3"].chunk_id.startswith(second["run_id"])


def _buckets(spark, output: Path) -> set[int]:
    from pyspark.sql import functions as F

    from fmagenre.tables.feature_table import row_key, view_state

    count = view_state(spark, str(output))["buckets"]
    keys = read_features(spark, str(output)).select(F.pmod(F.xxhash64(row_key()), F.lit(count)))
    return {row[0] for row in keys.collect()}


def test_a_table_of_the_earlier_layout_is_moved_and_read(
    spark, job, capsys, sample_corpus, tmp_path
):
    corpus = _tiny_corpus(sample_corpus, tmp_path / "corpus", "2", "truncated")
    output = tmp_path / "features"
    first = _run(job, spark, capsys, corpus, output)
    # What the earlier version left: runs/ in sight, no view, rows without the new columns.
    (chunk,) = (output / "_runs" / first["run_id"]).glob("chunk-*")
    legacy_chunk = output / "runs" / first["run_id"] / chunk.name
    spark.read.parquet(str(chunk)).drop("modified_at", "settings").write.parquet(str(legacy_chunk))
    shutil.copy(chunk / MARKER, legacy_chunk / MARKER)
    shutil.rmtree(output / "_runs")
    for view_file in [*output.glob("part-*.parquet"), output / "_table.json"]:
        view_file.unlink()
    legacy = {_local(r.path).name: r.status for r in read_features(spark, str(output)).collect()}
    assert legacy == {"000100.mp3": "ok", "000101.mp3": "error"}

    # Rows without a modification time or settings are extracted again, once.
    again = _run(job, spark, capsys, corpus, output)
    assert (again["skipped"], again["processed"]) == (0, 2)
    assert not (output / "runs").exists() and (output / "_runs" / first["run_id"]).is_dir()
    assert _run(job, spark, capsys, corpus, output)["skipped"] == 1
    _assert_one_row_per_file(spark, output, set(corpus.rglob("*.mp3")))


def test_s3_and_s3a_spellings_are_one_file(spark):
    from fmagenre.tables.feature_table import FEATURE_SCHEMA, latest_rows, path_key

    assert path_key("s3a://bucket/a/000002.mp3") == path_key("s3://bucket/a/000002.mp3")
    assert path_key("s3n://bucket/x.mp3") == "s3://bucket/x.mp3"
    assert path_key("hdfs://nn/s3a://x.mp3") == "hdfs://nn/s3a://x.mp3"
    empty = {name: None for name in FEATURE_SCHEMA.names}
    rows = [
        {**empty, "path": "s3://b/1.mp3", "status": "ok", "chunk_id": "run-1/chunk-00000"},
        {**empty, "path": "s3a://b/1.mp3", "status": "ok", "chunk_id": "run-2/chunk-00000"},
        {**empty, "path": "s3a://b/2.mp3", "status": "error", "chunk_id": "run-2/chunk-00000"},
    ]
    latest = latest_rows(spark.createDataFrame(rows, FEATURE_SCHEMA)).collect()
    assert sorted((r.path, r.chunk_id) for r in latest) == [
        ("s3a://b/1.mp3", "run-2/chunk-00000"),
        ("s3a://b/2.mp3", "run-2/chunk-00000"),
    ]


def test_crashes_and_hangs_cost_one_file_each(spark, job, capsys, sample_corpus, tmp_path):
    corpus = _tiny_corpus(sample_corpus, tmp_path / "corpus", "0", "1", "2", "3")
    config = tmp_path / "faults.toml"
    config.write_text(
        '[extract]\ninject_fault = "segfault:000100.mp3,hang:000101.mp3,kill:000102.mp3"\n'
    )
    output = tmp_path / "features"
    summary = _run(job, spark, capsys, corpus, output, "--config", str(config), "--timeout", "10")
    assert summary["errors"] == {"crashed": 2, "timeout": 1} and summary["ok"] == 1
    rows = {_local(r.path).name: r for r in read_features(spark, str(output)).collect()}
    assert rows["000100.mp3"].error.startswith(
        "crashed: the analysis process was killed by SIGSEGV"
    )
    assert rows["000101.mp3"].error == "timeout: no result after 10 s, the limit for this file"
    assert rows["000102.mp3"].error.startswith(
        "crashed: the analysis process was killed by SIGKILL"
    )
    assert rows["000103.mp3"].status == "ok" and rows["000103.mp3"].features is not None


def _shuffle_write_bytes(spark, prefix: str) -> tuple[int, int]:
    """(stages, shuffle bytes written) of the jobs whose description starts with ``prefix``,
    from Spark's status store (what the UI and the REST API show)."""
    store = spark.sparkContext._jsc.sc().statusStore()
    jobs = store.jobsList(None)
    stage_ids = set()
    for i in range(jobs.size()):
        data = jobs.apply(i)
        if data.description().isDefined() and data.description().get().startswith(prefix):
            ids = data.stageIds()
            stage_ids.update(ids.apply(j) for j in range(ids.size()))
    written = sum(store.lastStageAttempt(i).shuffleWriteBytes() for i in stage_ids)
    return len(stage_ids), written


def test_audio_bytes_are_read_where_analysed_no_shuffle(
    spark, job, capsys, sample_corpus, tmp_path
):
    corpus = _tiny_corpus(sample_corpus, tmp_path / "corpus", "0", "1", "2", "3", "4", "empty")
    before = _shuffle_write_bytes(spark, "extract features: chunk")[0]
    summary = _run(job, spark, capsys, corpus, tmp_path / "features", "--partitions", "3")
    assert summary["ok"] == 5
    stages, written = _shuffle_write_bytes(spark, "extract features: chunk")
    assert stages > before and written == 0
    print(f"extraction stages: {stages - before}, shuffle bytes written: {written}")


def test_file_source_packs_the_largest_files_first_into_the_wanted_tasks(spark, tmp_path):
    from fmagenre.extraction.driver import file_source_conf, list_inputs
    from fmagenre.platform.config import ExtractConfig
    from fmagenre.platform.session import session_settings

    sizes = [900_000, 500_000, 400_000, 300_000, 200_000, 100_000, 50_000, 50_000, 1000]
    for i, size in enumerate(sizes):
        (tmp_path / f"{i:06d}.mp3").write_bytes(b"\xff" * size)
    files = list_inputs(spark, [str(tmp_path)], glob="*.mp3")
    config = ExtractConfig(partitions=4)
    previous = spark.conf.get("spark.sql.files.openCostInBytes")
    with session_settings(spark, file_source_conf(spark, files, config)):
        frame = spark.read.format("binaryFile").load([f.path for f in files])
        tasks = frame.rdd.glom().map(lambda rows: [len(r.content) for r in rows]).collect()
    assert sorted(len(t) > 0 for t in tasks) == [True] * len(tasks)
    assert 3 <= len(tasks) <= 6
    assert sorted(size for task in tasks for size in task) == sorted(sizes)
    assert tasks[0][0] == max(sizes)  # largest first
    assert spark.conf.get("spark.sql.files.openCostInBytes") == previous


def test_a_table_keeps_its_file_count_and_overwrite_replaces_its_rows(
    spark, job, capsys, sample_corpus, tmp_path
):
    corpus = _tiny_corpus(sample_corpus, tmp_path / "corpus", "0", "1", "2", "3", "4")
    config = tmp_path / "two.toml"
    config.write_text("[extract]\ntable_files = 2\n")
    output = tmp_path / "features"
    _run(job, spark, capsys, corpus, output, "--config", str(config), "--chunk-files", "2")
    assert {p.name for p in output.glob("*.parquet")} <= {
        "part-00000.parquet",
        "part-00001.parquet",
    }
    assert json.loads((output / "_table.json").read_text())["buckets"] == 2

    # An overwrite without one of the files: the default of 16 files does not apply to an
    # existing table, and the removed file's row is gone once the run is done.
    (corpus / "000" / "000104.mp3").unlink()
    again = _run(job, spark, capsys, corpus, output, "--overwrite")
    assert (again["processed"], again["table_rows"]) == (4, 4)
    assert {p.name for p in output.glob("*.parquet")} <= {
        "part-00000.parquet",
        "part-00001.parquet",
    }
    _assert_one_row_per_file(spark, output, set(corpus.rglob("*.mp3")))
    assert [p.name for p in (output / "_runs").iterdir()] == [again["run_id"]]


def test_a_changed_file_keeps_its_latest_row_even_an_error(spark):
    from fmagenre.tables.feature_table import FEATURE_SCHEMA, latest_rows

    empty = {name: None for name in FEATURE_SCHEMA.names}

    def row(path, size, status, run):
        return {
            **empty,
            "path": path,
            "file_size": size,
            "status": status,
            "chunk_id": f"run-{run}/chunk-00000",
        }

    rows = [
        row("file:/a.mp3", 10, "ok", 1),
        row("file:/a.mp3", 10, "error", 2),  # a timeout of the same file: the ok row stays
        row("file:/b.mp3", 10, "ok", 1),
        row("file:/b.mp3", 11, "error", 2),  # the file changed and now fails: its error
    ]
    latest = latest_rows(spark.createDataFrame(rows, FEATURE_SCHEMA)).collect()
    assert sorted((r.path, r.status, r.chunk_id) for r in latest) == [
        ("file:/a.mp3", "ok", "run-1/chunk-00000"),
        ("file:/b.mp3", "error", "run-2/chunk-00000"),
    ]
