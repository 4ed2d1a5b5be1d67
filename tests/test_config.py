"""fmagenre.platform.config: TOML sections checked against dataclasses, command-line overrides."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fmagenre.platform.config import (
    Config,
    ConfigError,
    ExtractConfig,
    load_config,
    override,
    parse_spark_overrides,
)

ROOT = Path(__file__).resolve().parent.parent


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(text)
    return path


def _error(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    return message


def test_no_file_gives_the_defaults():
    assert load_config(None) == Config()
    assert Config().extract.batch_size == 4 and Config().spark == {}


@pytest.mark.parametrize("name", ["local.toml", "emr.toml"])
def test_shipped_configurations_load(name):
    config = load_config(ROOT / "conf" / name)
    assert config.extract.glob == "*.mp3" and config.extract.threads == 1
    assert all(key.startswith("spark.") for key in config.spark)
    assert all(isinstance(value, str) for value in config.spark.values())


def test_emr_configuration_budgets_python_memory_per_core():
    spark = load_config(ROOT / "conf" / "emr.toml").spark
    overhead_gib = int(spark["spark.executor.memoryOverhead"].rstrip("g"))
    assert overhead_gib / int(spark["spark.executor.cores"]) >= 1.5
    assert "spark.executor.pyspark.memory" not in spark


def test_sections_are_typed_and_spark_keys_flattened(tmp_path):
    config = load_config(
        _write(
            tmp_path,
            """
            [spark]
            "spark.executor.memory" = "2g"
            spark.sql.shuffle.partitions = 8
            spark.speculation = false
            "spark.speculation.multiplier" = 1.5

            [extract]
            glob = "*.flac"
            max_duration = 30
            fma_compat = false
            batch_size = 2
            """,
        )
    )
    assert config.spark == {
        "spark.executor.memory": "2g",
        "spark.sql.shuffle.partitions": "8",
        "spark.speculation": "false",
        "spark.speculation.multiplier": "1.5",
    }
    assert config.extract == ExtractConfig(
        glob="*.flac", max_duration=30.0, fma_compat=False, batch_size=2
    )
    assert isinstance(config.extract.max_duration, float)


def test_unknown_section_is_named(tmp_path):
    message = _error(tmp_path, "[extracts]\nbatch_size = 2\n")
    assert "unknown section [extracts]" in message and "extract" in message


def test_unknown_key_is_named_with_the_known_ones(tmp_path):
    message = _error(tmp_path, "[extract]\nbatchsize = 2\n")
    assert "[extract]: unknown key 'batchsize'" in message and "batch_size" in message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('batch_size = "4"', "[extract] batch_size must be an integer, got '4' (str)"),
        ("batch_size = true", "[extract] batch_size must be an integer, got True (bool)"),
        ("batch_size = 2.5", "[extract] batch_size must be an integer, got 2.5 (float)"),
        ("fma_compat = 1", "[extract] fma_compat must be true or false, got 1 (int)"),
        ("max_duration = true", "[extract] max_duration must be a number, got True (bool)"),
        ("glob = 5", "[extract] glob must be a string, got 5 (int)"),
    ],
)
def test_wrong_types_are_rejected(tmp_path, line, expected):
    assert expected in _error(tmp_path, f"[extract]\n{line}\n")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("batch_size = 0", "batch_size must be at least 1, got 0"),
        ("max_duration = -1.0", "max_duration must be 0 or more"),
        ("partitions = -2", "partitions must be 0 (automatic) or more"),
        ("max_file_mb = 4096", "max_file_mb must be between 1 and 2047"),
        ('glob = ""', "glob must not be empty"),
    ],
)
def test_out_of_range_values_are_rejected(tmp_path, line, expected):
    message = _error(tmp_path, f"[extract]\n{line}\n")
    assert f"[extract]: {expected}" in message


def test_spark_section_takes_only_spark_properties(tmp_path):
    assert "'executor.memory' is not a Spark property" in _error(
        tmp_path, '[spark]\nexecutor.memory = "2g"\n'
    )
    assert "[spark] spark.jars must be a string" in _error(
        tmp_path, '[spark]\n"spark.jars" = ["a.jar"]\n'
    )


def test_section_that_is_not_a_table(tmp_path):
    assert "[extract] must be a table" in _error(tmp_path, "extract = 3\n")


def test_invalid_toml_and_missing_file(tmp_path):
    assert "not valid TOML" in _error(tmp_path, "[extract\n")
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load_config(tmp_path / "missing.toml")


def test_command_line_overrides_file_values():
    base = ExtractConfig(batch_size=8, glob="*.wav")
    assert override(base, batch_size=None, glob=None) == base
    assert override(base, batch_size=2) == ExtractConfig(batch_size=2, glob="*.wav")
    with pytest.raises(ConfigError, match="command line: batch_size must be at least 1"):
        override(base, batch_size=0)


def test_spark_overrides_from_conf_arguments():
    assert parse_spark_overrides(["spark.a.b=1", "spark.c = x=y"]) == {
        "spark.a.b": "1",
        "spark.c": "x=y",
    }
    for bad in ("spark.a.b", "executor.memory=2g"):
        with pytest.raises(ConfigError, match=r"--conf takes spark\.NAME=VALUE"):
            parse_spark_overrides([bad])


def test_extract_job_reports_config_errors_without_spark(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("extract_job", ROOT / "jobs/extract_features.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    path = _write(tmp_path, "[extract]\nthreads = 0\n")
    argv = ["--input", "in", "--output", "out", "--config", str(path)]
    assert job.main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{path}: [extract]: threads must be at least 1" in error
    assert job.main(["--input", "in", "--output", "out", "--batch-size", "0"]) == 2
    assert "command line: batch_size" in capsys.readouterr().err
