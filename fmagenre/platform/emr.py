"""Run the jobs on Amazon EMR: package, upload, create a cluster, submit steps, wait.

``python -m fmagenre.platform.emr COMMAND --config conf/emr.toml [options]``; see ``--help``.

- ``package``: build the fmagenre wheel into ``dist/`` and, with ``--archive``, a relocatable
  environment (venv-pack) for ``spark.archives``; needs the project's source.
- ``upload``: put the wheel (and archive), ``jobs/``, ``conf/``, ``emr/bootstrap.sh`` and the
  release's pip constraints under ``s3://BUCKET/PREFIX/``.
- ``create-cluster``: RunJobFlow from the ``[emr]`` section (release, instances, spot,
  log URI, auto-termination, bootstrap action, numba's cache directory).
- ``submit``: AddJobFlowSteps for any of ``extract,labels,train,predict,segments,watch`` as
  ``command-runner.jar spark-submit ...``, then (``--wait``) follow them and, on failure, print
  the step's state, reason and where its logs are.

``jobs/``, ``conf/`` and ``emr/`` are found in the project checkout this module runs from,
else where the installed wheel put them (``PREFIX/share/fmagenre``, see :func:`project_root`).
A configuration that cannot work (see :class:`fmagenre.platform.config.EmrConfig`) is refused with
one
line before anything is built, uploaded or created.

``--dry-run`` prints each API request as JSON and sends nothing. Credentials come only from
boto3's standard chain (environment, profile, instance role); the endpoint can be redirected
with boto3's ``AWS_ENDPOINT_URL`` (the tests point it at a local moto server).

Python on the nodes, two ways (``[emr] environment``):

``bootstrap`` (default)
    ``emr/bootstrap.sh`` installs Python 3.11 and the wheel into ``/opt/fmagenre/venv`` on
    every node and warms numba's cache in ``/opt/fmagenre/numba-cache``, which the cluster's
    configuration gives Spark as ``NUMBA_CACHE_DIR``; steps set ``spark.pyspark.python``.
``archive``
    steps ship ``fmagenre-env.tar.gz#environment`` with ``spark.archives`` and use
    ``./environment/bin/python`` (Spark's documented way for Python dependencies); the
    bootstrap action then only installs Python 3.11, which the packed venv links to.

Either way pip's pyspark is removed from the environment: the cluster's own Spark provides it,
and pip installs with the constraints of the release's Spark (emr-7, Spark 3.5:
``emr/constraints-spark35.txt``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fmagenre.errors import InputError
from fmagenre.platform.config import ConfigError, EmrConfig, load_config, override

#: The project checkout, when this module runs from one (or from an editable install).
SOURCE_ROOT = Path(__file__).resolve().parents[2]
#: Where the wheel's data files (pyproject.toml's data-files) land under an install prefix.
INSTALLED_DATA = Path("share", "fmagenre")
NODE_VENV = "/opt/fmagenre/venv"
#: numba's cache on the nodes, warmed by emr/bootstrap.sh (environment = "bootstrap").
NODE_NUMBA_CACHE = "/opt/fmagenre/numba-cache"
ARCHIVE_NAME = "fmagenre-env.tar.gz"
#: Where the nodes' Python 3.11 lives (emr/bootstrap.sh installs it from the distribution).
NODE_PYTHON_PREFIX = "/usr"
STEPS = ("extract", "labels", "train", "predict", "segments", "watch")
#: pip constraints (under emr/) by EMR release major version: the Spark the release runs.
CONSTRAINTS = {7: "constraints-spark35.txt"}
#: Where a client-mode step's driver (on the primary node) reads the job configuration.
CLIENT_CONFIG_DIR = "/tmp/fmagenre"


class EmrError(InputError, RuntimeError):
    """An EMR run that cannot go on; the message says what to do."""


@dataclass(frozen=True)
class Locations:
    """Where the data of a run lives (S3 URIs)."""

    audio: str = ""
    metadata: str = ""
    work: str = ""
    predict_input: str = ""
    landing: str = ""


def s3_root(cfg: EmrConfig) -> str:
    if not cfg.bucket:
        raise ConfigError("[emr] bucket is empty: set it in the config or pass --bucket BUCKET")
    prefix = cfg.prefix.strip("/")
    return f"s3://{cfg.bucket}/{prefix}" if prefix else f"s3://{cfg.bucket}"


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def project_root() -> Path:
    """The folder holding ``jobs/``, ``conf/`` and ``emr/``.

    The project checkout this module runs from, else ``share/fmagenre`` under the install
    prefix (pip puts the wheel's data files there: the environment's, or ``--user``'s).

    Raises
    ------
    EmrError
        When neither has ``jobs/``.
    """
    prefixes = {sysconfig.get_path("data"), sysconfig.get_path("data", f"{os.name}_user")}
    candidates = [SOURCE_ROOT, *(Path(prefix) / INSTALLED_DATA for prefix in sorted(prefixes))]
    for root in candidates:
        if (root / "jobs").is_dir():
            return root
    raise EmrError(
        f"no jobs/ folder in {' or '.join(map(str, candidates))}: reinstall fmagenre from its"
        " wheel (it ships jobs/, conf/ and emr/) or run from the project checkout"
    )


def project_file(root: Path, relative: str) -> Path:
    """``root / relative``, or an EmrError saying that it is missing and what to do."""
    path = root / relative
    if not path.is_file():
        raise EmrError(
            f"{path} is missing: reinstall fmagenre from its wheel, or restore {relative} in the"
            " project checkout"
        )
    return path


def constraints_name(cfg: EmrConfig) -> str | None:
    """The pip constraints file (under ``emr/``) of the release's Spark, or None."""
    return CONSTRAINTS.get(cfg.release_major)


def _wheel(dist: Path) -> Path:
    wheels = sorted(dist.glob("fmagenre-*.whl"))
    if not wheels:
        raise EmrError(
            f"no fmagenre wheel in {dist}: run `python -m fmagenre.platform.emr package` first"
        )
    return wheels[-1]


# -- package ---------------------------------------------------------------------------------


def package(
    dist: Path,
    *,
    archive: bool,
    python: str = sys.executable,
    constraints: Path | None = None,
    python_prefix: str = NODE_PYTHON_PREFIX,
) -> list[Path]:
    """Build the wheel (and, with ``archive``, the venv-pack environment) into ``dist``.

    ``constraints`` is a pip constraints file for the archive's environment;
    ``python_prefix`` is where the machines that unpack it have their Python 3.11 (its
    ``bin/python``): EMR's nodes by default, the local one (``sys.base_prefix``) for a
    cluster on this machine.

    Raises
    ------
    EmrError
        Without the project's source, or when ``archive`` is asked of a ``python`` that is
        not the nodes' (Linux, Python 3.11).
    """
    if not (SOURCE_ROOT / "pyproject.toml").is_file():
        raise EmrError(
            f"package builds from the project's source, and {SOURCE_ROOT} has no pyproject.toml:"
            " run it from a checkout of fmagenre (or copy an already built wheel to --dist)"
        )
    if archive:
        _check_archive_python(python)
    dist.mkdir(parents=True, exist_ok=True)
    # setuptools builds in SOURCE_ROOT/build and never removes what it copied there: a module
    # since moved or deleted would still travel in the wheel.
    shutil.rmtree(SOURCE_ROOT / "build", ignore_errors=True)
    subprocess.run(
        [python, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(SOURCE_ROOT)],
        check=True,
    )
    built = [_wheel(dist)]
    if archive:
        env = dist / "emr-venv"
        subprocess.run([python, "-m", "venv", "--clear", str(env)], check=True)
        pip = [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        pip += ["-c", str(constraints)] if constraints else []
        subprocess.run([*pip, str(built[0]), "venv-pack>=0.2,<0.3"], check=True)
        subprocess.run(
            [str(env / "bin" / "python"), "-m", "pip", "uninstall", "-y", "-q", "pyspark", "py4j"],
            check=True,
        )
        _link_python_for_packing(env)
        target = dist / ARCHIVE_NAME
        pack = [str(env / "bin" / "venv-pack"), "-p", str(env), "-o", str(target), "-f"]
        subprocess.run([*pack, "--python-prefix", python_prefix], check=True)
        shutil.rmtree(env)
        built.append(target)
    return built


def _check_archive_python(python: str) -> None:
    """Refuse to pack an environment that the nodes' Python 3.11 (Linux) cannot run."""
    found = subprocess.run(
        [python, "-c", "import sys; print(sys.platform, *sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if found != ["linux", "3", "11"]:
        raise EmrError(
            f"package --archive packs {python} ({found[0]}, Python {'.'.join(found[1:])}), but"
            " the nodes run the archive with Linux Python 3.11: run it with a Linux Python 3.11,"
            ' or use [emr] environment = "bootstrap"'
        )


def _link_python_for_packing(env: Path) -> None:
    """Point the venv's interpreter links where venv-pack's ``--python-prefix`` rewrite works.

    venv-pack replaces the text ``BASE/bin/python`` in the link targets; a link to
    ``BASE/bin/python3.11`` (what ``venv`` makes) would become ``/usr/bin/python3.113.11``.
    """
    bin_dir = env / "bin"
    python = bin_dir / "python"
    base = subprocess.run(
        [str(python), "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    versioned = [p for p in bin_dir.glob("python3*") if p.is_symlink()]
    for link in [python, *versioned]:
        link.unlink()
    python.symlink_to(Path(base) / "bin" / "python")
    for link in versioned:
        link.symlink_to("python")


# -- requests --------------------------------------------------------------------------------


def upload_plan(cfg: EmrConfig, dist: Path, project: Path | None = None) -> list[tuple[Path, str]]:
    """(local file, S3 URI) pairs that ``upload`` puts on S3.

    ``project`` holds ``jobs/``, ``conf/`` and ``emr/``; default: :func:`project_root`.

    Raises
    ------
    EmrError
        When the wheel, the archive (environment = "archive"), a step's job, the job
        configuration, the bootstrap script or the release's constraints file is missing.
    """
    root = s3_root(cfg)
    files = [(_wheel(dist), f"{root}/dist/{_wheel(dist).name}")]
    if cfg.environment == "archive":
        archive = dist / ARCHIVE_NAME
        if not archive.exists():
            raise EmrError(
                f"{archive} is missing: run `python -m fmagenre.platform.emr package --archive`"
            )
        files.append((archive, f"{root}/dist/{ARCHIVE_NAME}"))
    project = project or project_root()
    needed = [f"jobs/{script}" for script in JOB_SCRIPTS.values()]
    needed += [f"conf/{cfg.job_config}", "emr/bootstrap.sh"]
    if constraints_name(cfg):
        needed.append(f"emr/{constraints_name(cfg)}")
    for relative in needed:
        project_file(project, relative)
    for folder, pattern in (("jobs", "*.py"), ("conf", "*.toml")):
        files += [
            (p, f"{root}/{folder}/{p.name}") for p in sorted((project / folder).glob(pattern))
        ]
    files += [(project / name, f"{root}/{name}") for name in needed if name.startswith("emr/")]
    return files


def run_job_flow_request(cfg: EmrConfig, dist: Path) -> dict:
    """The RunJobFlow request for the configured cluster."""
    root = s3_root(cfg)
    market = "SPOT" if cfg.spot else "ON_DEMAND"
    instances = {
        "InstanceGroups": [
            {
                "Name": "primary",
                "InstanceRole": "MASTER",
                "Market": "ON_DEMAND",
                "InstanceType": cfg.master_instance_type,
                "InstanceCount": 1,
            },
            {
                "Name": "core",
                "InstanceRole": "CORE",
                "Market": market,
                "InstanceType": cfg.core_instance_type,
                "InstanceCount": cfg.core_instance_count,
            },
        ],
        "KeepJobFlowAliveWhenNoSteps": True,
    }
    if cfg.subnet_id:
        instances["Ec2SubnetId"] = cfg.subnet_id
    request = {
        "Name": cfg.cluster_name,
        "ReleaseLabel": cfg.release_label,
        "LogUri": cfg.log_uri or f"{root}/logs/",
        "Applications": [{"Name": "Spark"}, {"Name": "Hadoop"}],
        "Instances": instances,
        "ServiceRole": cfg.service_role,
        "JobFlowRole": cfg.job_flow_role,
        "VisibleToAllUsers": True,
        "AutoTerminationPolicy": {"IdleTimeout": cfg.idle_timeout_s},
        "Tags": [{"Key": "project", "Value": "fmagenre"}],
    }
    # Both ways need Python 3.11 on the nodes; "bootstrap" also installs the wheel there.
    args = []
    if cfg.environment == "bootstrap":
        args.append(f"{root}/dist/{_wheel(dist).name}")
        if constraints_name(cfg):
            args.append(f"{root}/emr/{constraints_name(cfg)}")
        if cfg.torch:
            args.append(f"torch={cfg.torch}")
        # The bootstrap warms this cache for every user; the containers and a client-mode
        # driver must use it (numba's defaults are not writable by YARN's user).
        request["Configurations"] = [
            {
                "Classification": "spark-defaults",
                "Properties": {
                    "spark.executorEnv.NUMBA_CACHE_DIR": NODE_NUMBA_CACHE,
                    "spark.yarn.appMasterEnv.NUMBA_CACHE_DIR": NODE_NUMBA_CACHE,
                },
            },
            {
                "Classification": "spark-env",
                "Configurations": [
                    {
                        "Classification": "export",
                        "Properties": {"NUMBA_CACHE_DIR": NODE_NUMBA_CACHE},
                    }
                ],
                "Properties": {},
            },
        ]
    request["BootstrapActions"] = [
        {
            "Name": "fmagenre",
            "ScriptBootstrapAction": {"Path": f"{root}/emr/bootstrap.sh", "Args": args},
        }
    ]
    return request


def _python_conf(cfg: EmrConfig) -> list[str]:
    if cfg.environment == "archive":
        archive = f"{s3_root(cfg)}/dist/{ARCHIVE_NAME}#environment"
        python = "./environment/bin/python"
        return ["--conf", f"spark.archives={archive}", *_pyspark_python(python)]
    return _pyspark_python(f"{NODE_VENV}/bin/python")


def _pyspark_python(python: str) -> list[str]:
    return [
        "--conf",
        f"spark.pyspark.python={python}",
        "--conf",
        f"spark.yarn.appMasterEnv.PYSPARK_PYTHON={python}",
        "--conf",
        f"spark.executorEnv.PYSPARK_PYTHON={python}",
    ]


def step_arguments(name: str, where: Locations) -> list[str]:
    """Job arguments of one step, from the run's locations."""
    required = {
        "extract": ("audio", "work"),
        "labels": ("metadata", "work"),
        "train": ("work",),
        "predict": ("predict_input", "work"),
        "segments": ("predict_input", "work"),
        "watch": ("landing", "work"),
    }[name]
    missing = [f"--{key.replace('_', '-')}" for key in required if not getattr(where, key)]
    if missing:
        raise ConfigError(f"the {name} step needs {' and '.join(missing)}")
    work = where.work.rstrip("/")
    return {
        "extract": ["--input", where.audio, "--output", f"{work}/features"],
        "labels": ["--metadata", where.metadata, "--output", f"{work}/labels", "--overwrite"],
        "train": [
            "--features",
            f"{work}/features",
            "--labels",
            f"{work}/labels",
            "--output",
            f"{work}/model",
        ],
        "predict": [
            "--model",
            f"{work}/model",
            "--input",
            where.predict_input,
            "--output",
            f"{work}/predictions",
        ],
        # Pages of audio on S3 carry it (a browser cannot fetch s3://): 100 of them.
        "segments": [
            "--model",
            f"{work}/model",
            "--input",
            where.predict_input,
            "--output",
            f"{work}/timeline",
            "--max-pages",
            "100",
            "--embed-audio",
        ],
        # A streaming query: the step runs until it is cancelled.
        "watch": [
            "--model",
            f"{work}/model",
            "--input",
            where.landing,
            "--output",
            f"{work}/watch",
            "--checkpoint",
            f"{work}/watch-checkpoint",
        ],
    }[name]


JOB_SCRIPTS = {
    "extract": "extract_features.py",
    "labels": "prepare_labels.py",
    "train": "train.py",
    "predict": "predict.py",
    "segments": "segments.py",
    "watch": "watch.py",
}


def add_steps_request(
    cfg: EmrConfig, cluster_id: str, steps: Sequence[str], where: Locations, spark_conf: dict
) -> dict:
    """The AddJobFlowSteps request: one ``spark-submit`` step per job, in order.

    In client mode the driver runs on the primary node, where ``--files`` puts nothing: a
    first step copies the job configuration there.
    """
    root = s3_root(cfg)
    conf_file = f"{root}/conf/{cfg.job_config}"
    if not steps:
        raise ConfigError(f"no step given: --steps takes a subset of {','.join(STEPS)}")
    if "watch" in steps[:-1]:
        raise ConfigError("the watch step runs until it is cancelled: put it last in --steps")
    result = []
    if cfg.deploy_mode == "client":
        copy = ["aws", "s3", "cp", "--quiet", conf_file, _config_argument(cfg)]
        result.append(
            {
                "Name": "fmagenre config",
                "ActionOnFailure": "CANCEL_AND_WAIT",
                "HadoopJarStep": {"Jar": "command-runner.jar", "Args": copy},
            }
        )
    for name in steps:
        if name not in STEPS:
            raise ConfigError(f"unknown step {name!r}; steps are {', '.join(STEPS)}")
        conf, extra = train_settings(cfg, spark_conf) if name == "train" else (spark_conf, [])
        args = ["spark-submit", "--deploy-mode", cfg.deploy_mode, "--files", conf_file]
        args += _python_conf(cfg)
        for key, value in sorted(conf.items()):
            args += ["--conf", f"{key}={value}"]
        args += [f"{root}/jobs/{JOB_SCRIPTS[name]}", "--config", _config_argument(cfg)]
        args += step_arguments(name, where) + extra
        result.append(
            {
                "Name": f"fmagenre {name}",
                "ActionOnFailure": "CANCEL_AND_WAIT",
                "HadoopJarStep": {"Jar": "command-runner.jar", "Args": args},
            }
        )
    return {"JobFlowId": cluster_id, "Steps": result}


def train_settings(cfg: EmrConfig, spark_conf: dict) -> tuple[dict, list[str]]:
    """The train step's Spark settings and extra job arguments.

    XGBoost trains in barrier mode, which Spark refuses under dynamic allocation: the step
    gets a fixed set of ``core_instance_count x executors_per_node`` executors, and as many
    XGBoost workers as they have task slots.
    """
    executors = cfg.core_instance_count * cfg.executors_per_node
    cores = int(spark_conf.get("spark.executor.cores", 1))
    task_cpus = int(spark_conf.get("spark.task.cpus", 1))
    conf = {
        **spark_conf,
        "spark.dynamicAllocation.enabled": "false",
        "spark.executor.instances": str(executors),
    }
    return conf, ["--xgb-workers", str(max(1, executors * cores // task_cpus))]


def _config_argument(cfg: EmrConfig) -> str:
    """The job's --config: YARN localizes ``--files`` into a cluster-mode driver's working
    directory; a client-mode driver reads the copy of the first step."""
    if cfg.deploy_mode == "cluster":
        return cfg.job_config
    return f"{CLIENT_CONFIG_DIR}/{cfg.job_config}"


# -- sending ---------------------------------------------------------------------------------


class Client:
    """Sends requests through boto3, or only prints them (dry run)."""

    def __init__(self, region: str, *, dry_run: bool, out: Callable[[str], None] = print):
        self.dry_run = dry_run
        self.out = out
        self.region = region
        self._clients: dict[str, object] = {}

    def _client(self, service: str):
        if service not in self._clients:
            import boto3

            self._clients[service] = boto3.client(service, region_name=self.region)
        return self._clients[service]

    def call(self, service: str, operation: str, request: dict, *, dry_result=None):
        if self.dry_run:
            payload = {"service": service, "operation": operation, "request": request}
            self.out(json.dumps(payload, indent=2, default=str))
            return dry_result
        return getattr(self._client(service), operation)(**request)

    def upload(self, local: Path, uri: str) -> None:
        bucket, key = _split_s3(uri)
        if self.dry_run:
            request = {"Filename": str(local), "Bucket": bucket, "Key": key}
            self.out(json.dumps({"service": "s3", "operation": "upload_file", "request": request}))
            return
        self._client("s3").upload_file(str(local), bucket, key)


def upload(client: Client, cfg: EmrConfig, dist: Path) -> list[str]:
    uris = []
    for local, uri in upload_plan(cfg, dist):
        client.upload(local, uri)
        uris.append(uri)
    return uris


def create_cluster(client: Client, cfg: EmrConfig, dist: Path) -> str:
    response = client.call(
        "emr",
        "run_job_flow",
        run_job_flow_request(cfg, dist),
        dry_result={"JobFlowId": "j-DRYRUN"},
    )
    return response["JobFlowId"]


def submit(
    client: Client,
    cfg: EmrConfig,
    cluster_id: str,
    steps: Sequence[str],
    where: Locations,
    spark_conf: dict,
) -> list[str]:
    request = add_steps_request(cfg, cluster_id, steps, where, spark_conf)
    dry = {"StepIds": [f"s-DRYRUN{i}" for i in range(len(steps))]}
    return client.call("emr", "add_job_flow_steps", request, dry_result=dry)["StepIds"]


TERMINAL_FAILED = {"CANCELLED", "FAILED", "INTERRUPTED"}
CLUSTER_GONE = {"TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS"}


def wait(
    client: Client,
    cfg: EmrConfig,
    cluster_id: str,
    step_ids: Sequence[str],
    *,
    poll_s: float = 30.0,
    timeout_s: float = 24 * 3600,
) -> bool:
    """Follow the steps until all complete (True) or one fails or the cluster ends (False)."""
    emr = client._client("emr")
    deadline = time.monotonic() + timeout_s
    last: dict[str, str] = {}
    while time.monotonic() < deadline:
        cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
        states = {}
        for step_id in step_ids:
            step = emr.describe_step(ClusterId=cluster_id, StepId=step_id)["Step"]
            states[step_id] = step["Status"]["State"]
            if states[step_id] != last.get(step_id):
                client.out(f"{step['Name']} ({step_id}): {states[step_id]}")
            if states[step_id] in TERMINAL_FAILED:
                client.out(_failure_report(cfg, cluster_id, step, cluster))
                return False
        last = states
        if all(state == "COMPLETED" for state in states.values()):
            client.out("all steps completed")
            return True
        if cluster["Status"]["State"] in CLUSTER_GONE:
            pending = next(s for s in step_ids if states[s] != "COMPLETED")
            step = emr.describe_step(ClusterId=cluster_id, StepId=pending)["Step"]
            client.out(_failure_report(cfg, cluster_id, step, cluster))
            return False
        time.sleep(poll_s)
    client.out(f"gave up waiting after {timeout_s:.0f} s; the steps go on: {', '.join(step_ids)}")
    return False


def _failure_report(cfg: EmrConfig, cluster_id: str, step: dict, cluster: dict) -> str:
    status = step["Status"]
    reason = (status.get("FailureDetails") or {}).get("Reason") or (
        status.get("StateChangeReason") or {}
    ).get("Message")
    cluster_status = cluster["Status"]
    cluster_reason = (cluster_status.get("StateChangeReason") or {}).get("Message")
    log_uri = (cluster.get("LogUri") or cfg.log_uri or f"{s3_root(cfg)}/logs/").rstrip("/")
    log_file = (status.get("FailureDetails") or {}).get("LogFile")
    logs = log_file or f"{log_uri}/{cluster_id}/steps/{step['Id']}/"
    return (
        f"FAILED: step {step['Name']!r} ({step['Id']}) is {status['State']}"
        f" on cluster {cluster_id} ({cluster_status['State']})."
        f" Reason: {reason or cluster_reason or 'none given'}."
        f" Logs: {logs} (stderr.gz has the driver's output)."
    )


# -- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fmagenre.platform.emr",
        description=__doc__.split("\n\n")[0],
        epilog="Credentials come from boto3's standard chain; nothing secret is printed.",
    )
    parser.add_argument("command", choices=["package", "upload", "create-cluster", "submit"])
    parser.add_argument(
        "--config", help="TOML file; default: conf/emr.toml of the project (or installed copy)"
    )
    parser.add_argument("--bucket", help="S3 bucket (overrides [emr] bucket)")
    parser.add_argument("--region", help="AWS region (overrides [emr] region)")
    parser.add_argument(
        "--dist", default="dist", help="where package builds, and upload finds, the wheel"
    )
    parser.add_argument("--archive", action="store_true", help="package: also the venv archive")
    parser.add_argument("--dry-run", action="store_true", help="print requests, send nothing")
    parser.add_argument("--cluster-id", help="submit to this cluster instead of creating one")
    parser.add_argument(
        "--steps", default="extract,labels", help=f"comma-separated subset of {','.join(STEPS)}"
    )
    parser.add_argument("--audio", default="", help="S3 folder of the MP3s (extract)")
    parser.add_argument("--metadata", default="", help="S3 folder of fma_metadata (labels)")
    parser.add_argument("--work", default="", help="S3 folder for features, labels, model...")
    parser.add_argument(
        "--predict-input", default="", help="S3 folder to classify (predict, segments)"
    )
    parser.add_argument("--landing", default="", help="S3 folder where new audio lands (watch)")
    parser.add_argument(
        "--wait",
        action="store_true",
        help="follow the steps to the end (all but the watch, which runs until cancelled)",
    )
    parser.add_argument("--poll", type=float, default=30.0, help="seconds between checks")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    dist = Path(args.dist)
    try:
        config = load_config(args.config or project_file(project_root(), "conf/emr.toml"))
        cfg = override(config.emr, bucket=args.bucket, region=args.region)
        if args.command == "package":
            name = constraints_name(cfg) if args.archive else None
            constraints = project_file(project_root(), f"emr/{name}") if name else None
            for path in package(dist, archive=args.archive, constraints=constraints):
                print(f"built {path}")
            return 0
        client = Client(cfg.region, dry_run=args.dry_run)
        if args.command == "upload":
            for uri in upload(client, cfg, dist):
                print(f"uploaded {uri}", file=sys.stderr)
            return 0
        if args.command == "create-cluster":
            print(create_cluster(client, cfg, dist))
            return 0
        steps = [s.strip() for s in args.steps.split(",") if s.strip()]
        where = Locations(args.audio, args.metadata, args.work, args.predict_input, args.landing)
        add_steps_request(cfg, "j-CHECK", steps, where, {})  # validate before creating
        cluster_id = args.cluster_id or create_cluster(client, cfg, dist)
        step_ids = submit(client, cfg, cluster_id, steps, where, dict(config.spark))
        print(f"cluster {cluster_id}: steps {', '.join(step_ids)}", file=sys.stderr)
        if steps[-1] == "watch":
            print(
                f"the watch step {step_ids[-1]} runs until cancelled: aws emr cancel-steps"
                f" --cluster-id {cluster_id} --step-ids {step_ids[-1]}",
                file=sys.stderr,
            )
            step_ids = step_ids[:-1]
        if args.wait and not args.dry_run:
            return 0 if wait(client, cfg, cluster_id, step_ids, poll_s=args.poll) else 1
        return 0
    except (ConfigError, EmrError) as exc:
        print(f"fmagenre.platform.emr: {exc}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as exc:
        print(
            f"fmagenre.platform.emr: {' '.join(exc.cmd[:4])}... failed ({exc.returncode})",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # botocore's errors: one line, not a traceback
        if type(exc).__module__.startswith(("botocore", "boto3")):
            print(f"fmagenre.platform.emr: AWS said: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
