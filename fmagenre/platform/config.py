"""Job configuration: TOML files checked against dataclass schemas, then command-line overrides.

A configuration file has one table per section::

    [spark]                         # any Spark property, applied when the session is built
    "spark.executor.memory" = "2g"  # quoted, or unquoted (spark.executor.memory = ...)

    [extract]                       # jobs/extract_features.py, see ExtractConfig
    batch_size = 4

Every section is optional and every key has a default. Unknown sections and keys, wrong types
and out-of-range values are rejected with a :class:`ConfigError` naming the key and the file.
Values on the command line override the file (:func:`override`, :func:`parse_spark_overrides`);
``spark-submit``'s own settings also win over ``[spark]`` (see :mod:`fmagenre.platform.session`).

Configuration files are local files, read before Spark starts: ``spark-submit --files`` puts
one in a cluster-mode driver's working directory.

To give another job its settings, write a frozen dataclass of scalar fields (``str``, ``int``,
``float``, ``bool``) with defaults, checking ranges in ``__post_init__`` with ``ValueError``,
and add it as a field of :class:`Config`: ``load_config`` then reads its ``[section]``.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fmagenre.errors import InputError

__all__ = [
    "FAULTS",
    "Config",
    "ConfigError",
    "EmrConfig",
    "ExtractConfig",
    "NetworkConfig",
    "PathsConfig",
    "load_config",
    "override",
    "parse_faults",
    "parse_spark_overrides",
]


class ConfigError(InputError, ValueError):
    """A configuration file or override that does not fit the schema."""


#: Crashes that ``[extract] inject_fault`` can ask of the analysis (tests only).
FAULTS = ("segfault", "abort", "kill", "hang")


def parse_faults(setting: str) -> list[tuple[str, str]]:
    """``"KIND:TEXT,KIND:TEXT"`` as (kind, text) pairs, or raise ValueError."""
    faults = []
    for item in filter(None, (part.strip() for part in setting.split(","))):
        kind, _, text = item.partition(":")
        if kind not in FAULTS or not text:
            raise ValueError(
                f"inject_fault items are KIND:TEXT with KIND in {', '.join(FAULTS)}, got {item!r}"
            )
        faults.append((kind, text))
    return faults


#: Feature families the extraction computes.
EXTRACT_FAMILIES = ("mir", "musicnn")


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of the feature extraction job (``[extract]``)."""

    #: File-name pattern of the audio files under the input (Hadoop glob, names only).
    glob: str = "*.mp3"
    #: Seconds analysed from the start of each file; 0 analyses whole files.
    max_duration: float = 600.0
    #: Spectral features on FMA's 22,050 Hz frequency axis, as FMA's features.csv.
    fma_compat: bool = True
    #: Files per Arrow batch sent to a Python worker (spark.sql.execution.arrow.maxRecordsPerBatch).
    batch_size: int = 4
    #: Tasks the files are spread over; 0 means 4 x the default parallelism.
    partitions: int = 0
    #: Files per published chunk: a job killed part-way loses at most one chunk of work.
    chunk_files: int = 5000
    #: Larger files are not read: their row says error ``too_large``. At most 2047 (binaryFile).
    max_file_mb: int = 1024
    #: BLAS, OpenMP and numba threads in each Python worker (Spark runs one per core).
    threads: int = 1
    #: Seconds one file's analysis may take before it is killed (error ``timeout``); 0 means
    #: 60 s plus one second per second of audio analysed.
    timeout_s: float = 0.0
    #: Parquet files of the table's current view, fixed when the table is created.
    table_files: int = 16
    #: Tests only: ``KIND:TEXT,...`` crashes the analysis of files whose path holds TEXT
    #: (KIND: segfault, abort, kill or hang).
    inject_fault: str = ""
    #: Also write each file's log-mel patches (``patches`` column, 192 KiB a track at 16
    #: patches), the spectrogram network's input; see fmagenre.audio.patches.
    patches: bool = False
    #: Patches per track, evenly spaced over the analysed audio (12 KiB each).
    patch_count: int = 16
    #: Feature families, comma-separated: ``mir`` (the 518, always) and ``musicnn`` (the
    #: pretrained network's 450: embedding mean and std, tag means; about 1 s of a core per
    #: minute of audio more; see fmagenre.audio.musicnn).
    families: str = "mir"

    def __post_init__(self):
        if not self.glob:
            raise ValueError("glob must not be empty")
        if self.max_duration < 0:
            raise ValueError(f"max_duration must be 0 or more seconds, got {self.max_duration}")
        if self.timeout_s < 0:
            raise ValueError(f"timeout_s must be 0 (automatic) or more, got {self.timeout_s}")
        if not 1 <= self.table_files <= 10000:
            raise ValueError(f"table_files must be between 1 and 10000, got {self.table_files}")
        parse_faults(self.inject_fault)
        for name in ("batch_size", "chunk_files", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 1 <= self.patch_count <= 64:
            raise ValueError(f"patch_count must be between 1 and 64, got {self.patch_count}")
        if self.partitions < 0:
            raise ValueError(f"partitions must be 0 (automatic) or more, got {self.partitions}")
        if not 1 <= self.max_file_mb <= 2047:
            raise ValueError(f"max_file_mb must be between 1 and 2047, got {self.max_file_mb}")
        families = [name.strip() for name in self.families.split(",") if name.strip()]
        if "mir" not in families or not set(families) <= set(EXTRACT_FAMILIES):
            raise ValueError(
                f"families must be mir or mir,musicnn (the table always holds the 518 MIR"
                f" features), got {self.families!r}"
            )

    @property
    def musicnn(self) -> bool:
        """Whether the musicnn family is extracted too."""
        return "musicnn" in (name.strip() for name in self.families.split(","))

    def with_musicnn(self, wanted: bool = True) -> ExtractConfig:
        """These settings, with the musicnn family added when ``wanted`` (a model or an index
        that uses it)."""
        return dataclasses.replace(self, families="mir,musicnn") if wanted else self


@dataclass(frozen=True)
class EmrConfig:
    """Settings of ``python -m fmagenre.platform.emr`` (``[emr]``): where, what cluster, how."""

    #: AWS region of the cluster and the bucket.
    region: str = "us-east-1"
    #: S3 bucket for code, logs and data; required by upload, create-cluster and submit.
    bucket: str = ""
    #: Key prefix of everything this tool puts in the bucket.
    prefix: str = "fmagenre"
    cluster_name: str = "fmagenre"
    #: EMR release: Spark 3.5 on emr-7.x (the jobs use APIs present in Spark 3.5 and 4).
    #: emr-7.0.0 or later: earlier ones run Spark < 3.5 on Amazon Linux 2 (no dnf, no 3.11).
    release_label: str = "emr-7.5.0"
    #: Where EMR writes cluster and step logs; empty: s3://BUCKET/PREFIX/logs/.
    log_uri: str = ""
    master_instance_type: str = "m6i.xlarge"
    core_instance_type: str = "m6i.4xlarge"
    core_instance_count: int = 4
    #: Executors per core node (vCPUs / spark.executor.cores). The train step runs with this
    #: many x core_instance_count static executors: XGBoost's barrier mode refuses dynamic
    #: allocation.
    executors_per_node: int = 4
    #: Core nodes on the spot market (extraction tolerates lost executors: tasks re-run).
    spot: bool = False
    #: Seconds idle before the cluster terminates itself (EMR allows 60 to 604800).
    idle_timeout_s: int = 3600
    service_role: str = "EMR_DefaultRole"
    job_flow_role: str = "EMR_EC2_DefaultRole"
    #: VPC subnet for the nodes; empty: EMR's default.
    subnet_id: str = ""
    #: Python on the nodes: "bootstrap" (emr/bootstrap.sh) or "archive" (spark.archives).
    environment: str = "bootstrap"
    #: spark-submit deploy mode of the steps: "cluster" (driver in YARN) or "client" (driver
    #: on the primary node; needs environment = "bootstrap").
    deploy_mode: str = "cluster"
    #: File under conf/ that the steps pass to the jobs as --config.
    job_config: str = "emr.toml"
    #: PyTorch for the spectrogram network (jobs/train_cnn.py), installed by emr/bootstrap.sh
    #: with the wheel's dl extra: "" none, "cpu" the CPU build, or a CUDA build's tag of
    #: PyTorch's index ("cu128"...) for GPU nodes. Environment "bootstrap" only.
    torch: str = ""

    @property
    def release_major(self) -> int:
        """The major version of ``release_label`` (7 for ``emr-7.5.0``)."""
        return int(self.release_label.split("-")[1].split(".")[0])

    def __post_init__(self):
        if self.environment not in ("bootstrap", "archive"):
            raise ValueError(f"environment must be bootstrap or archive, got {self.environment!r}")
        if self.deploy_mode not in ("cluster", "client"):
            raise ValueError(f"deploy_mode must be cluster or client, got {self.deploy_mode!r}")
        if self.deploy_mode == "client" and self.environment == "archive":
            raise ValueError(
                "deploy_mode client cannot use environment archive: YARN unpacks the archive"
                " in its containers only, and a client-mode driver runs on the primary node;"
                ' use deploy_mode "cluster" or environment "bootstrap"'
            )
        if not re.fullmatch(r"emr-\d+\.\d+\.\d+", self.release_label) or self.release_major < 7:
            raise ValueError(
                f"release_label must be emr-7.0.0 or later (Spark 3.5+, Amazon Linux 2023),"
                f" got {self.release_label!r}"
            )
        if "/" in self.job_config or not self.job_config.endswith(".toml"):
            raise ValueError(
                f"job_config must be a .toml file name in conf/, got {self.job_config!r}"
            )
        if self.torch and not re.fullmatch(r"cpu|cu\d+", self.torch):
            raise ValueError(
                f'torch must be "", "cpu" or a CUDA tag such as "cu128", got {self.torch!r}'
            )
        if self.torch and self.environment != "bootstrap":
            raise ValueError('torch needs environment "bootstrap" (the bootstrap installs it)')
        for name in ("core_instance_count", "executors_per_node"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 60 <= self.idle_timeout_s <= 604800:
            raise ValueError(f"idle_timeout_s must be 60 to 604800, got {self.idle_timeout_s}")
        if self.bucket.startswith("s3://") or "/" in self.bucket:
            raise ValueError(f"bucket must be a bare bucket name, got {self.bucket!r}")


@dataclass(frozen=True)
class NetworkConfig:
    """Where the spectrogram network trains (``[network]``, ``jobs/train_cnn.py``): the
    processes of ``pyspark.ml.torch.distributor.TorchDistributor``."""

    #: Training processes; 0 means the session's default parallelism (the local cores).
    num_processes: int = 0
    #: True: the processes run on the driver's machine; False: one per Spark barrier task on
    #: the executors (dynamic allocation off).
    local_mode: bool = True
    #: One GPU per process (nccl); False trains on CPUs (gloo), one thread a process.
    use_gpu: bool = False

    def __post_init__(self):
        if self.num_processes < 0:
            raise ValueError(
                f"num_processes must be 0 (automatic) or more, got {self.num_processes}"
            )


@dataclass(frozen=True)
class PathsConfig:
    """How the jobs treat their path options (``[paths]``; see ``fmagenre.platform.jobs``)."""

    #: Local paths (``file:``, ``~``, or relative ones on a local default file system) when the
    #: master is not local (``spark://``, ``yarn``...): "allow" (every node sees the driver's
    #: files: one machine, a shared mount) or "refuse" (one line, exit 2, before Spark starts
    #: where it can tell).
    local_on_cluster: str = "allow"

    def __post_init__(self):
        if self.local_on_cluster not in ("allow", "refuse"):
            raise ValueError(
                f'local_on_cluster must be "allow" or "refuse", got {self.local_on_cluster!r}'
            )


@dataclass(frozen=True)
class Config:
    """A whole configuration: Spark properties and one dataclass per job section."""

    #: Spark properties (``spark.*`` names) as strings, given to the session builder.
    spark: Mapping[str, str] = field(default_factory=dict)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    emr: EmrConfig = field(default_factory=EmrConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _check_scalar(value, expected: type, where: str):
    """``value`` as ``expected`` (ints are accepted as floats), or raise ConfigError."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    raise ConfigError(
        f"{where} must be {_TYPE_NAMES[expected]}, got {value!r} ({type(value).__name__})"
    )


def _section(cls: type, table, where: str):
    """An instance of the section dataclass ``cls`` from its TOML table."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r}; known keys: {', '.join(known)}")
        values[key] = _check_scalar(value, hints[key], f"{where} {key}")
    try:
        return cls(**values)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _spark_section(table, where: str) -> dict[str, str]:
    """Spark properties from ``[spark]``: dotted keys are flattened, values become strings."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    flat: dict[str, str] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                walk(value, name)
            elif isinstance(value, bool):
                flat[name] = "true" if value else "false"
            elif isinstance(value, str | int | float):
                flat[name] = str(value)
            else:
                raise ConfigError(
                    f"{where} {name} must be a string, number or boolean, got {value!r}"
                )

    walk(table, "")
    for name in flat:
        if not name.startswith("spark."):
            raise ConfigError(f"{where}: {name!r} is not a Spark property (spark.*)")
    return flat


def load_config(path: str | Path | None = None) -> Config:
    """Read and check a TOML configuration file; None gives the defaults.

    Raises
    ------
    ConfigError
        Unreadable file, invalid TOML, unknown section or key, wrong type or value; the
        message names the file and the key.
    """
    if path is None:
        return Config()
    try:
        with open(path, "rb") as stream:
            document = tomllib.load(stream)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    sections = {f.name: f for f in dataclasses.fields(Config)}
    values = {}
    for name, table in document.items():
        if name not in sections:
            raise ConfigError(
                f"{path}: unknown section [{name}]; known sections: {', '.join(sections)}"
            )
        where = f"{path}: [{name}]"
        if name == "spark":
            values[name] = _spark_section(table, where)
        else:
            values[name] = _section(typing.get_type_hints(Config)[name], table, where)
    return Config(**values)


def override(section, **values):
    """A copy of a section dataclass with the given values; None values keep the file's.

    Raises
    ------
    ConfigError
        When a value is out of range (the message says it came from the command line).
    """
    given = {key: value for key, value in values.items() if value is not None}
    try:
        return dataclasses.replace(section, **given)
    except ValueError as exc:
        raise ConfigError(f"command line: {exc}") from exc


def parse_spark_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """``["spark.x=1", ...]`` (``--conf`` arguments) as a dict, or raise ConfigError."""
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.startswith("spark."):
            raise ConfigError(f"command line: --conf takes spark.NAME=VALUE, got {pair!r}")
        result[key.strip()] = value.strip()
    return result
