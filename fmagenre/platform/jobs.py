"""The runner of the ``spark-submit`` jobs (``jobs/*.py``): options, configuration, session, exit.

A job builds its parser with :func:`job_parser`, which adds the options every job shares
(``--config``, ``--master``, ``--conf``) and the exit statuses to its ``--help``; its ``main``
hands the parser and the job's function to :func:`run_job`, which parses the command line,
sets up logging, loads the configuration once, builds the session (unless a test passes one),
calls the function with the session, the options and the configuration, and stops the session
it started (:func:`~fmagenre.platform.session.job_session`: the JVM of a ``spark-submit`` ends
with the job, on Spark 3.5 too).

One exit rule for every job (:data:`EXIT_STATUS`):

* 0: done, rows that record a file's error included;
* 2: the user must change something: an option (argparse's own usage errors exit 2 too), the
  configuration file or ``--conf``, a path, the input data, an existing output. Every
  :class:`~fmagenre.errors.InputError`, :class:`FileNotFoundError` and
  :class:`FileExistsError` ends the job with one line on stderr, ``PROG: message``;
* 3: the cluster failed under the job, and a rerun on a whole cluster succeeds: a barrier
  stage (XGBoost's or the network's tasks, which start and end together) lost a task with its
  executor, or needs more task slots at once than the cluster has left (:func:`cluster_failure`);
  one line on stderr says so and what to do;
* 1: the job failed for another reason: the exception propagates with its traceback.

The argparse types of the jobs' options (:func:`int_range`, :data:`positive_int`,
:func:`fraction`, :func:`comma_list`...) live here too, so that every job checks numbers and
lists alike and says so in the same words.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fmagenre.errors import InputError
from fmagenre.platform.config import Config, load_config, parse_spark_overrides
from fmagenre.platform.session import is_local_master, job_session, plan_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EXIT_DONE = 0
EXIT_INPUT = 2
EXIT_CLUSTER = 3
#: The exit statuses, as every job's ``--help`` ends.
EXIT_STATUS = (
    "Exit status: 0 done (rows that record a file's error included); 2 something to change,"
    " said in one line on stderr (an option, the configuration file or --conf, a path, the"
    " input data, an existing output); 3 the cluster lost executors that a barrier stage"
    " (XGBoost, the network) needed: rerun when it is whole; 1 any other failure, with its"
    " traceback."
)

#: Spark's words for a barrier stage that the cluster, not the job, failed: (markers, what
#: happened). A barrier ResultStage is never retried: one lost task ends the job; it is the
#: cluster's doing when the task was lost with its executor (a task's own error is the job's).
_BARRIER_FAILURES = (
    (
        ("Could not recover from a failed barrier ResultStage", "ExecutorLostFailure"),
        "a barrier stage lost one of its tasks with its executor",
    ),
    (("[SPARK-24819]",), "a barrier stage needs more task slots at once than the cluster has"),
    # fmagenre.platform.barrier.BarrierSlotsError: its own message says it.
    (("[fmagenre] a barrier stage needs",), None),
)
_LOST = re.compile(r"(ExecutorLostFailure[^\n]*)")


def cluster_failure(error: BaseException) -> str | None:
    """What to tell the user when ``error`` (or an error it was raised from) is a barrier
    stage that the cluster failed; None for any other error.

    XGBoost's ``num_workers`` tasks and the network's processes run as a Spark barrier stage:
    they start together and exchange data all along, so an executor lost in the middle (a
    node gone, a spot instance reclaimed, a ``kill -9``) fails them all, and Spark aborts the
    job rather than retry a result stage. A barrier task that fails by its own error (a bug,
    bad parameters) is not the cluster's doing: None, and the job keeps its traceback.
    """
    seen = []
    while error is not None and error not in seen:
        seen.append(error)
        text = str(error)
        for markers, what in _BARRIER_FAILURES:
            if all(marker in text for marker in markers):
                lost = _LOST.search(text)
                detail = f" ({lost.group(1).strip()})" if lost else ""
                if what is None:
                    what, detail = text.splitlines()[0].removeprefix("[fmagenre] "), ""
                return (
                    f"{what}{detail}: rerun when the cluster has its executors back (its outputs"
                    " so far are intact), or with fewer tasks that start together"
                    " (train.py --xgb-workers, train_cnn.py --num-processes)"
                )
        error = error.__cause__ or error.__context__
    return None


#: What a job does once its session is built: ``job(spark, args, config)``.
JobFunction = Callable[["SparkSession", argparse.Namespace, Config], None]


def job_parser(prog: str, description: str, *, notes: str = "") -> argparse.ArgumentParser:
    """A job's parser with the shared options, its ``--help`` ending with ``notes`` and
    :data:`EXIT_STATUS`.

    ``--config``, ``--master`` and ``--conf`` come in a group of their own, after the
    job's options.
    """
    parser = argparse.ArgumentParser(
        prog=prog, description=description, epilog=" ".join(filter(None, (notes, EXIT_STATUS)))
    )
    shared = parser.add_argument_group("configuration and Spark")
    shared.add_argument(
        "--config",
        metavar="TOML",
        help="local configuration file, e.g. conf/local.toml, conf/emr.toml (in YARN cluster"
        " mode, ship it with spark-submit --files and give its name); its [spark] settings"
        " apply where spark-submit's (--conf, --properties-file, spark-defaults) do not",
    )
    shared.add_argument(
        "--master",
        help="Spark master (local[4]...); default: spark-submit's, or local[*] under python",
    )
    shared.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="spark.NAME=VALUE",
        help="Spark property, repeatable; wins over spark-submit's settings and --config's",
    )
    return parser


def error_line(prog: str, error: BaseException) -> str:
    """``PROG: first line of the message`` (the class name when the message is empty)."""
    lines = str(error).strip().splitlines()
    return f"{prog}: {lines[0] if lines else type(error).__name__}"


def run_job(
    parser: argparse.ArgumentParser,
    job: JobFunction,
    argv: Sequence[str] | None = None,
    *,
    spark: SparkSession | None = None,
    configure: Callable[[argparse.Namespace, Config], Config] | None = None,
    spark_conf: Callable[[Config], Mapping[str, str]] | None = None,
) -> int:
    """Run a job from its command line; return its exit status (see the module's rule).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The job's parser (:func:`job_parser`); its ``prog`` starts the error line.
    job : callable
        ``job(spark, args, config)``: the library call and the printed summary.
    argv : sequence of str or None
        The arguments; None reads ``sys.argv``.
    spark : SparkSession or None
        A session to use (the tests' shared one) instead of building one from the options.
    configure : callable or None
        ``configure(args, config)``: the configuration with the job's options applied
        (e.g. the extraction's options over ``[extract]``); None keeps the file's.
    spark_conf : callable or None
        ``spark_conf(config)``: the Spark properties of the session; None takes ``[spark]``.

    Returns
    -------
    int
        :data:`EXIT_DONE`, or :data:`EXIT_INPUT` after printing :func:`error_line`.

    Raises
    ------
    SystemExit
        From argparse: status 0 after ``--help``, 2 on a usage error.
    Exception
        Any error that is not the user's to fix, with its traceback (Python exits 1).
    """
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # a line per closed connection
    try:
        config = load_config(args.config)
        if configure is not None:
            config = configure(args, config)
        overrides = parse_spark_overrides(args.conf)
        policy = config.paths.local_on_cluster
        if spark is not None:
            resolve_path_options(spark, parser, args, policy=policy)
            job(spark, args, config)
            return EXIT_DONE
        conf = config.spark if spark_conf is None else spark_conf(config)
        master = plan_session(master=args.master, conf=conf, overrides=overrides).master
        check_local_paths(parser, args, master=master, policy=policy)  # before Spark starts
        with job_session(
            f"fmagenre-{parser.prog.replace('_', '-')}",
            master=args.master,
            conf=conf,
            overrides=overrides,
        ) as session:
            resolve_path_options(session, parser, args, policy=policy)
            job(session, args, config)
    except (InputError, FileNotFoundError, FileExistsError) as error:
        print(error_line(parser.prog, error), file=sys.stderr)
        return EXIT_INPUT
    except Exception as error:
        what = cluster_failure(error)
        if what is None:
            raise
        print(f"{parser.prog}: {what}", file=sys.stderr)
        return EXIT_CLUSTER
    return EXIT_DONE


# -- path options --------------------------------------------------------------------------

#: A URI scheme at the start of a path (``file:``, ``hdfs://``, ``s3a://``...).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def hadoop_path(text: str) -> str:
    """argparse type of the options that take a Hadoop path (local, ``file:``, ``hdfs://``,
    ``s3a://``...).

    ``~`` and ``~USER`` are the driver's: expanded as the shell does, to a ``file:`` URI. A
    relative path is left for :func:`resolve_path_options`, which needs the session.
    """
    if not text.strip():
        raise argparse.ArgumentTypeError("give a path")
    if not text.startswith("~"):
        return text
    expanded = os.path.expanduser(text)
    if expanded == text:
        raise argparse.ArgumentTypeError(f"cannot expand {text}: no such user")
    return f"file:{expanded}"


def driver_path(text: str) -> str:
    """argparse type of the options that take a file the driver reads or writes itself (a
    CSV): ``~`` expanded, made absolute."""
    if not text.strip():
        raise argparse.ArgumentTypeError("give a path")
    return os.path.abspath(os.path.expanduser(text))


def _path_values(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """(option, index or None, value) of every :func:`hadoop_path` value given."""
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if action.type is not hadoop_path or value is None:
            continue
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield action, index, item
        else:
            yield action, None, value


def _refuse(action: argparse.Action, value: str, master: str) -> None:
    option = "/".join(action.option_strings)
    raise InputError(
        f"{option} {value}: a path on the driver's disk, which the executors of master"
        f' {master} do not see ([paths] local_on_cluster = "refuse"): put the data on'
        " HDFS or S3 (hdfs://, s3://) and give its URI"
    )


def check_local_paths(
    parser: argparse.ArgumentParser, args: argparse.Namespace, *, master: str, policy: str
) -> None:
    """Refuse the ``file:`` path options (``~`` ones included) under a master that is not
    local, when ``policy`` is "refuse" (``[paths] local_on_cluster``).

    Schemeless paths belong to the cluster's default file system, known once the session is
    up: :func:`resolve_path_options` decides on those.

    Raises
    ------
    InputError
        Naming the first such option and what to do.
    """
    if policy != "refuse" or is_local_master(master):
        return
    for action, _, value in _path_values(parser, args):
        if value.lower().startswith("file:"):
            _refuse(action, value, master)


def resolve_path_options(
    spark: SparkSession, parser: argparse.ArgumentParser, args: argparse.Namespace, *, policy: str
) -> None:
    """Make the relative :func:`hadoop_path` values of ``args`` absolute URIs of the default
    file system, in place, and apply ``[paths] local_on_cluster``.

    On a local default file system (``file:``), a relative path is the driver's working folder's
    (``file:/abs/path``), which the executors, each in a folder of its own, would not find;
    on HDFS it is the user's home there (``hdfs://NAMENODE/user/NAME/path``), as Hadoop has it.

    Raises
    ------
    InputError
        When ``policy`` is "refuse", the master is not local and a path (after resolution) is
        on the local file system.
    """
    values = list(_path_values(parser, args))
    if not values:
        return
    jvm = spark.sparkContext._jvm
    fs = jvm.org.apache.hadoop.fs.FileSystem.get(spark.sparkContext._jsc.hadoopConfiguration())
    local_default = fs.getUri().getScheme() == "file"
    master = spark.sparkContext.master
    refuse = policy == "refuse" and not is_local_master(master)
    for action, index, value in values:
        if not _SCHEME.match(value) and not value.startswith("/"):
            relative = os.path.abspath(value) if local_default else value
            value = str(fs.makeQualified(jvm.org.apache.hadoop.fs.Path(relative)))
            if index is None:
                setattr(args, action.dest, value)
            else:
                getattr(args, action.dest)[index] = value
        scheme = _SCHEME.match(value)
        on_local_disk = scheme.group().lower() == "file:" if scheme else local_default
        if refuse and on_local_disk:
            _refuse(action, value, master)


# -- argparse types ------------------------------------------------------------------------


def _bounded(kind: type, text: str, what: str, *, low, high=None, low_open=False, high_open=False):
    """``kind(text)`` within the bounds, or ArgumentTypeError saying it must be ``what``."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    above = value > low if low_open else value >= low
    below = high is None or (value < high if high_open else value <= high)
    if not (above and below):  # NaN fails both comparisons
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """argparse type: an integer from ``low`` to ``high`` (no upper bound when None)."""
    what = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"

    def parse(text: str) -> int:
        return _bounded(int, text, what, low=low, high=high)

    return parse


#: argparse type: an integer > 0.
positive_int = int_range(1)
#: argparse type: an integer >= 0.
non_negative_int = int_range(0)


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    return _bounded(float, text, "a number > 0", low=0, low_open=True)


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0."""
    return _bounded(float, text, "a number >= 0", low=0)


def fraction(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    return _bounded(
        float, text, "a number > 0 and < 1", low=0, high=1, low_open=True, high_open=True
    )


def share(text: str) -> float:
    """argparse type: a number > 0 and <= 1."""
    return _bounded(float, text, "a number > 0 and <= 1", low=0, high=1, low_open=True)


def cores(text: str) -> int:
    """argparse type: a number of cores, or -1 for all of them."""
    if text.strip() == "-1":
        return -1
    return _bounded(int, text, "an integer >= 1, or -1 for all cores", low=1)


def comma_list(
    item: Callable[[str], Any] = str,
    *,
    choices: Iterable[str] | None = None,
    allow_empty: bool = False,
) -> Callable[[str], list]:
    """argparse type: comma-separated items, each read by ``item``.

    An empty or repeated item, or one not in ``choices`` (when given), is refused; so is
    ``''``, which gives ``[]`` with ``allow_empty``.
    """
    allowed = None if choices is None else tuple(choices)

    def parse(text: str) -> list:
        if not text.strip():
            if allow_empty:
                return []
            raise argparse.ArgumentTypeError("give at least one item")
        items = [part.strip() for part in text.split(",")]
        if not all(items):
            raise argparse.ArgumentTypeError(f"empty item in {text!r}")
        for name in items:
            if allowed is not None and name not in allowed:
                raise argparse.ArgumentTypeError(
                    f"invalid choice: {name!r} (choose from {', '.join(allowed)})"
                )
            if items.count(name) > 1:
                raise argparse.ArgumentTypeError(f"{name!r} is given twice")
        return [item(name) for name in items]

    return parse
