"""fmagenre.platform.emr against moto in server mode: a local HTTP endpoint speaking S3 and EMR."""

import json
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.validate import ParamValidator
from job_loader import load_job
from moto.server import ThreadedMotoServer

from fmagenre.platform import emr
from fmagenre.platform.config import ConfigError, EmrConfig

REGION = "eu-west-1"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint, monkeypatch):
    """boto3's standard chain pointed at moto: fake credentials, the endpoint variable."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return moto_endpoint


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The real wheel, built once by `package`."""
    out = tmp_path_factory.mktemp("dist")
    built = emr.package(out, archive=False)
    assert [p.suffix for p in built] == [".whl"]
    return out


@pytest.fixture
def config_file(tmp_path):
    def write(text):
        path = tmp_path / "emr.toml"
        path.write_text(text)
        return str(path)

    return write


def _cfg(bucket="fmagenre-test", **values):
    return EmrConfig(region=REGION, bucket=bucket, **values)


def test_upload_lands_in_the_bucket(aws, dist):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="fmagenre-up", CreateBucketConfiguration={"LocationConstraint": REGION})
    client = emr.Client(REGION, dry_run=False, out=lambda _: None)
    uris = emr.upload(client, _cfg("fmagenre-up", prefix="runs/a"), dist)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="fmagenre-up")["Contents"]}
    assert keys == {uri.removeprefix("s3://fmagenre-up/") for uri in uris}
    assert "runs/a/jobs/extract_features.py" in keys
    assert "runs/a/emr/bootstrap.sh" in keys
    assert "runs/a/conf/emr.toml" in keys
    wheel = next(k for k in keys if k.endswith(".whl"))
    body = s3.get_object(Bucket="fmagenre-up", Key=wheel)["Body"].read()
    assert body == (dist / wheel.rsplit("/", 1)[1]).read_bytes()


def test_create_cluster_and_submit_send_the_expected_requests(aws, dist):
    cfg = _cfg(spot=True, core_instance_count=3)
    client = emr.Client(REGION, dry_run=False)
    cluster_id = emr.create_cluster(client, cfg, dist)
    api = boto3.client("emr", region_name=REGION)
    cluster = api.describe_cluster(ClusterId=cluster_id)["Cluster"]
    assert cluster["ReleaseLabel"] == cfg.release_label
    assert cluster["LogUri"] == "s3://fmagenre-test/fmagenre/logs/"
    groups = api.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]
    core = next(g for g in groups if g["InstanceGroupType"] == "CORE")
    assert (core["Market"], core["RequestedInstanceCount"]) == ("SPOT", 3)
    actions = api.list_bootstrap_actions(ClusterId=cluster_id)["BootstrapActions"]
    assert actions[0]["ScriptPath"] == "s3://fmagenre-test/fmagenre/emr/bootstrap.sh"
    assert actions[0]["Args"][0].endswith(".whl")
    # emr-7 runs Spark 3.5: the bootstrap installs with its constraints.
    assert actions[0]["Args"][1] == "s3://fmagenre-test/fmagenre/emr/constraints-spark35.txt"
    settings = {c["Classification"]: c for c in cluster["Configurations"]}
    assert settings["spark-defaults"]["Properties"] == {
        "spark.executorEnv.NUMBA_CACHE_DIR": emr.NODE_NUMBA_CACHE,
        "spark.yarn.appMasterEnv.NUMBA_CACHE_DIR": emr.NODE_NUMBA_CACHE,
    }
    (export,) = settings["spark-env"]["Configurations"]
    assert export["Properties"] == {"NUMBA_CACHE_DIR": emr.NODE_NUMBA_CACHE}

    where = emr.Locations(audio="s3://data/fma_full", metadata="s3://data/meta", work="s3://w/r")
    step_ids = emr.submit(
        client, cfg, cluster_id, ["extract", "labels"], where, {"spark.executor.cores": "4"}
    )
    steps = {s["Id"]: s for s in api.list_steps(ClusterId=cluster_id)["Steps"]}
    extract = steps[step_ids[0]]["Config"]
    assert extract["Jar"] == "command-runner.jar"
    args = extract["Args"]
    assert args[:3] == ["spark-submit", "--deploy-mode", "cluster"]
    assert "spark.pyspark.python=/opt/fmagenre/venv/bin/python" in args
    assert "spark.executor.cores=4" in args
    script = args.index("s3://fmagenre-test/fmagenre/jobs/extract_features.py")
    assert args[script + 1 :] == [
        "--config",
        "emr.toml",
        "--input",
        "s3://data/fma_full",
        "--output",
        "s3://w/r/features",
    ]
    assert steps[step_ids[1]]["Name"] == "fmagenre labels"


def test_a_step_that_does_not_finish_is_reported_with_its_logs(aws, dist):
    cfg = _cfg()
    client_lines = []
    client = emr.Client(REGION, dry_run=False, out=client_lines.append)
    cluster_id = emr.create_cluster(client, cfg, dist)
    where = emr.Locations(work="s3://w/r")
    step_ids = emr.submit(client, cfg, cluster_id, ["train"], where, {})
    boto3.client("emr", region_name=REGION).terminate_job_flows(JobFlowIds=[cluster_id])
    assert emr.wait(client, cfg, cluster_id, step_ids, poll_s=0.01, timeout_s=30) is False
    report = client_lines[-1]
    assert report.startswith("FAILED: step 'fmagenre train'")
    assert cluster_id in report and "TERMINATED" in report
    assert f"s3://fmagenre-test/fmagenre/logs/{cluster_id}/steps/{step_ids[0]}/" in report


def _closed_port_endpoint():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_dry_run_prints_valid_requests_for_the_whole_chain_and_sends_nothing(
    dist, config_file, monkeypatch, capsys
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", _closed_port_endpoint())  # any call would fail
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSHOULDNOTAPPEAR")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-should-not-appear")
    path = config_file('[emr]\nbucket = "b"\nregion = "us-west-2"\nenvironment = "archive"\n')
    (dist / emr.ARCHIVE_NAME).write_bytes(b"stand-in for the venv-pack archive")
    code = emr.main(
        [
            "submit",
            "--config",
            path,
            "--dist",
            str(dist),
            "--dry-run",
            "--steps",
            ",".join(emr.STEPS),
            "--audio",
            "s3://d/fma_full",
            "--metadata",
            "s3://d/fma_metadata",
            "--work",
            "s3://d/work",
            "--predict-input",
            "s3://d/new",
            "--landing",
            "s3://d/landing",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert "the watch step s-DRYRUN5 runs until cancelled: aws emr cancel-steps" in err
    assert "AKID" not in out and "secret" not in out
    payloads = json.JSONDecoder().raw_decode
    requests, rest = [], out.strip()
    while rest:
        payload, end = payloads(rest)
        requests.append(payload)
        rest = rest[end:].strip()
    assert [r["operation"] for r in requests] == ["run_job_flow", "add_job_flow_steps"]
    model = botocore.session.get_session().get_service_model("emr")
    for r in requests:
        operation = model.operation_model(
            "".join(part.title() for part in r["operation"].split("_"))
        )
        report = ParamValidator().validate(r["request"], operation.input_shape)
        assert not report.has_errors(), report.generate_report()
    steps = requests[1]["request"]["Steps"]
    assert [s["Name"] for s in steps] == [f"fmagenre {n}" for n in emr.STEPS]
    assert (
        "spark.archives=s3://b/fmagenre/dist/fmagenre-env.tar.gz#environment"
        in (steps[0]["HadoopJarStep"]["Args"])
    )
    bootstrap = requests[0]["request"]["BootstrapActions"][0]["ScriptBootstrapAction"]
    assert bootstrap["Args"] == []  # Python only: the environment comes with the steps


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[emr]\nbuckett = 'x'\n", "unknown key 'buckett'"),
        ("[emr]\ncore_instance_count = 'four'\n", "core_instance_count must be an integer"),
        ("[emr]\nenvironment = 'docker'\n", "environment must be bootstrap or archive"),
        ("[emr]\nregion = 'eu-west-1'\n", "bucket is empty"),
        (
            "[emr]\nbucket = 'b'\nenvironment = 'archive'\ndeploy_mode = 'client'\n",
            "deploy_mode client cannot use environment archive",
        ),
        ("[emr]\nbucket = 'b'\nrelease_label = 'emr-6.15.0'\n", "emr-7.0.0 or later"),
        ("[emr]\nbucket = 'b'\nrelease_label = '7.5.0'\n", "emr-7.0.0 or later"),
        ("[emr]\nbucket = 'b'\njob_config = 'conf/emr.toml'\n", "job_config must be a .toml"),
    ],
)
def test_bad_config_stops_with_a_clear_message(text, message, config_file, dist, capsys):
    code = emr.main(["create-cluster", "--config", config_file(text), "--dist", str(dist)])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_steps_need_their_locations():
    with pytest.raises(ConfigError, match="--audio"):
        emr.add_steps_request(_cfg(), "j-1", ["extract"], emr.Locations(work="s3://w"), {})
    with pytest.raises(ConfigError, match="unknown step 'score'"):
        emr.add_steps_request(_cfg(), "j-1", ["score"], emr.Locations(work="s3://w"), {})


def test_missing_wheel_says_to_package(tmp_path, capsys, config_file):
    code = emr.main(
        [
            "create-cluster",
            "--config",
            config_file("[emr]\nbucket = 'b'\n"),
            "--dist",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "run `python -m fmagenre.platform.emr package` first" in capsys.readouterr().err


def test_train_step_runs_static_executors_and_as_many_xgboost_workers():
    cfg = _cfg(core_instance_count=3, executors_per_node=2)
    conf = {"spark.dynamicAllocation.enabled": "true", "spark.executor.cores": "4"}
    where = emr.Locations(audio="s3://b/audio", work="s3://b/work")
    steps = emr.add_steps_request(cfg, "j-1", ["extract", "train"], where, conf)["Steps"]
    extract, train = (step["HadoopJarStep"]["Args"] for step in steps)
    assert "spark.dynamicAllocation.enabled=true" in extract
    assert "spark.dynamicAllocation.enabled=false" in train
    assert "spark.executor.instances=6" in train
    assert train[-2:] == ["--xgb-workers", "24"]
    assert train[train.index("--features") + 1] == "s3://b/work/features"
    with pytest.raises(ValueError, match="executors_per_node must be at least 1"):
        _cfg(executors_per_node=0)


def test_every_step_s_arguments_parse_in_its_job():
    where = emr.Locations("s3://b/audio", "s3://b/meta", "s3://b/work", "s3://b/new", "s3://b/in")
    for cfg in (_cfg(), _cfg(deploy_mode="client")):
        for step in emr.add_steps_request(cfg, "j-1", emr.STEPS, where, {})["Steps"]:
            args = step["HadoopJarStep"]["Args"]
            if args[0] != "spark-submit":
                continue
            script = next(arg for arg in args if arg.endswith(".py"))
            parser = load_job(Path(script).stem).make_parser()
            parsed = parser.parse_args(args[args.index(script) + 1 :])
            assert parsed.config == args[args.index("--config") + 1]


def test_the_watch_step_is_last_and_keeps_its_checkpoint_in_work():
    where = emr.Locations(work="s3://b/work", landing="s3://b/landing")
    (step,) = emr.add_steps_request(_cfg(), "j-1", ["watch"], where, {})["Steps"]
    args = step["HadoopJarStep"]["Args"]
    assert args[args.index("--input") + 1] == "s3://b/landing"
    assert args[args.index("--checkpoint") + 1] == "s3://b/work/watch-checkpoint"
    with pytest.raises(ConfigError, match="the watch step runs until it is cancelled: put it last"):
        emr.add_steps_request(_cfg(), "j-1", ["watch", "predict"], where, {})
    with pytest.raises(ConfigError, match="the watch step needs --landing"):
        emr.add_steps_request(_cfg(), "j-1", ["watch"], emr.Locations(work="s3://w"), {})


def test_client_mode_copies_the_job_config_to_the_driver_first():
    cfg = _cfg(deploy_mode="client")
    where = emr.Locations(metadata="s3://b/meta", work="s3://b/work")
    copy, labels = emr.add_steps_request(cfg, "j-1", ["labels"], where, {})["Steps"]
    assert copy["HadoopJarStep"]["Args"] == [
        "aws",
        "s3",
        "cp",
        "--quiet",
        "s3://fmagenre-test/fmagenre/conf/emr.toml",
        "/tmp/fmagenre/emr.toml",
    ]
    args = labels["HadoopJarStep"]["Args"]
    assert args[:3] == ["spark-submit", "--deploy-mode", "client"]
    assert args[args.index("--config") + 1] == "/tmp/fmagenre/emr.toml"
    with pytest.raises(ConfigError, match="no step given"):
        emr.add_steps_request(cfg, "j-1", [], where, {})


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory):
    """A throwaway venv with the wheel installed (no dependencies): python, data folder."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    wheel = next(dist.glob("fmagenre-*.whl"))
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    subprocess.run([*pip, "--no-deps", "--no-index", str(wheel)], check=True)
    return python, venv / "share" / "fmagenre"


def _upload_dry_run(python: Path, dist: Path, cwd: Path) -> subprocess.CompletedProcess:
    command = [str(python), "-m", "fmagenre.platform.emr", "upload", "--dry-run", "--bucket", "b"]
    return subprocess.run(
        [*command, "--dist", str(dist)], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_an_installed_wheel_uploads_every_job(installed, dist, tmp_path):
    python, data = installed
    result = _upload_dry_run(python, dist, tmp_path)
    assert result.returncode == 0, result.stderr
    requests = [json.loads(line)["request"] for line in result.stdout.splitlines()]
    planned = {request["Key"].removeprefix("fmagenre/"): request for request in requests}
    jobs = {p.name for p in (ROOT / "jobs").glob("*.py")}
    assert {k.removeprefix("jobs/") for k in planned if k.startswith("jobs/")} == jobs
    assert {"conf/emr.toml", "emr/bootstrap.sh", "emr/constraints-spark35.txt"} <= set(planned)
    for key, request in planned.items():
        if not key.startswith("dist/"):  # the project files come from the install
            assert request["Filename"] == str(data / key)
            assert Path(request["Filename"]).read_bytes() == (ROOT / key).read_bytes()


def test_an_install_missing_a_job_says_so_in_one_line(installed, dist, tmp_path):
    python, data = installed
    train = data / "jobs" / "train.py"
    kept = train.read_bytes()
    train.unlink()
    try:
        result = _upload_dry_run(python, dist, tmp_path)
    finally:
        train.write_bytes(kept)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert f"{train} is missing: reinstall fmagenre from its wheel" in result.stderr


def test_the_wheel_holds_every_library_package_but_the_benchmarks(dist):
    wheel = next(dist.glob("fmagenre-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        packages = {
            name.rsplit("/", 1)[0].replace("/", ".")
            for name in archive.namelist()
            if name.startswith("fmagenre/") and name.endswith("/__init__.py")
        }
    source = {
        str(p.parent.relative_to(ROOT)).replace("/", ".")
        for p in (ROOT / "fmagenre").rglob("__init__.py")
    }
    assert packages == {name for name in source if not name.startswith("fmagenre.bench")}
    assert "fmagenre.bench" in source
