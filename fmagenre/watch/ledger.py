"""The watch job's outputs on storage, and the ledger that makes it exactly once.

Layout under ``--output`` (any Hadoop path)::

    OUTPUT/predictions/run-20261207T180000123456Z-1a2b3c4d.parquet
                        one file per micro-batch: a row per file version classified
    OUTPUT/features/    a feature table (:mod:`fmagenre.tables.feature_table`): a chunk per
                        micro-batch, the same one-row-per-file view as the extraction job's
    OUTPUT/_watch.json  what writes here: the model, the landing folder
    OUTPUT/_status.json where the watch stands, replaced after every micro-batch
    OUTPUT/_lease.json  the watch writing here now (:mod:`fmagenre.watch.lease`)

A micro-batch's predictions are written as one Parquet file to a staging folder, then renamed
into ``predictions/``: that rename is the batch's commit. A reader of ``predictions/`` sees a
batch whole or not at all, and the ledger (:func:`classified`) is what the committed files
hold: a file version (path, size, modification time) with a row is never classified again, one
without a row is. So a ``kill -9`` at any moment costs at most the batch in flight, which the
next start redoes; its feature chunk, published before the kill or not, is left out of the view
or shadowed by the redone one (the view keeps one row per file).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from typing import NamedTuple

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fmagenre.errors import InputError
from fmagenre.platform.hadoop import hadoop_fs, path_exists, read_bytes, write_json
from fmagenre.tables.feature_table import path_key

PREDICTIONS = "predictions"
FEATURES = "features"
IDENTITY = "_watch.json"
STATUS = "_status.json"
STAGING = "_staging"
#: What the watch writes in its checkpoint folder beside Spark's own files.
CHECKPOINT_IDENTITY = "fmagenre-watch.json"


class WatchSetupError(InputError, ValueError):
    """An output or checkpoint that belongs to another watch, model or job."""


class Version(NamedTuple):
    """One version of a landed file: its key (:func:`path_key`), size and modification time."""

    key: str
    size: int
    modified_us: int


def join(root: str, *names: str) -> str:
    return "/".join((root.rstrip("/"), *names))


def identity(*, model: str, input: str, output: str) -> dict:
    """What a watch is: the model it classifies with, where files land, where rows go."""
    return {
        "job": "watch",
        "model": model.rstrip("/"),
        "input": input.rstrip("/"),
        "output": output.rstrip("/"),
    }


def _read_identity(spark: SparkSession, path: str) -> dict | None:
    try:
        return json.loads(read_bytes(spark, path))
    except FileNotFoundError:
        return None
    except ValueError:
        return {}


def claim(spark: SparkSession, *, output: str, checkpoint: str, mine: Mapping) -> None:
    """Record ``mine`` (:func:`identity`) in the output and the checkpoint, or check that
    they already hold it.

    Raises
    ------
    WatchSetupError
        When the checkpoint holds another query's state (another job's, or a watch of
        another model, landing folder or output), or the output another watch's rows.
    """
    marker = join(checkpoint, CHECKPOINT_IDENTITY)
    found = _read_identity(spark, marker)
    if found is None and path_exists(spark, join(checkpoint, "offsets")):
        raise WatchSetupError(
            f"checkpoint {checkpoint} holds another streaming query's state, not jobs/watch.py's:"
            " give this job a --checkpoint of its own"
        )
    if found is not None and found != dict(mine):
        raise WatchSetupError(
            f"checkpoint {checkpoint} belongs to the watch of {found.get('model')} on"
            f" {found.get('input')} into {found.get('output')}: pass those options, or a new"
            " --checkpoint for this model, landing folder and output"
        )
    owner = _read_identity(spark, join(output, IDENTITY))
    if owner is not None and {k: owner.get(k) for k in ("job", "model")} != {
        "job": "watch",
        "model": mine["model"],
    }:
        raise WatchSetupError(
            f"{output} holds the rows of the watch of {owner.get('model')}: write the"
            " predictions of this model to another --output"
        )
    if owner is None:
        fs, root = hadoop_fs(spark, output)
        if fs.exists(root) and fs.listStatus(root):
            raise WatchSetupError(
                f"{output} is not a watch job's output (it holds other files): choose an empty"
                " or new directory"
            )
        write_json(spark, join(output, IDENTITY), mine)
    if found is None:
        write_json(spark, marker, mine)


def _committed_files(spark: SparkSession, output: str) -> list[str]:
    fs, pattern = hadoop_fs(spark, join(output, PREDICTIONS, "run-*.parquet"))
    return sorted(status.getPath().toString() for status in fs.globStatus(pattern) or [])


def _version_of(row) -> Version:
    return Version(path_key(row.path), row.file_size, row.us)


def versions_of(rows: DataFrame) -> set[Version]:
    """The file versions of prediction rows."""
    picked = rows.select("path", "file_size", F.unix_micros("modified_at").alias("us"))
    return {_version_of(r) for r in picked.collect()}


def classified(spark: SparkSession, output: str) -> set[Version]:
    """The file versions that have a committed prediction row: the ledger."""
    files = _committed_files(spark, output)
    return versions_of(spark.read.parquet(*files)) if files else set()


def committed_rows(spark: SparkSession, path: str) -> list[tuple[Version, str, float]]:
    """(version, status, latency_s) of each row of a committed predictions file: one read."""
    picked = spark.read.parquet(path).select(
        "path", "file_size", F.unix_micros("modified_at").alias("us"), "status", "latency_s"
    )
    return [(_version_of(r), r.status, r.latency_s) for r in picked.collect()]


def commit(
    spark: SparkSession,
    rows: DataFrame,
    output: str,
    name: str,
    *,
    before_rename: Callable[[], None] = lambda: None,
) -> str:
    """Write ``rows`` as one Parquet file, then rename it to ``predictions/NAME.parquet``
    (the batch's commit); return its path. ``before_rename`` may stop it (by raising) once the
    file is written."""
    staging = join(output, STAGING, f"{name}-{secrets.token_hex(4)}")
    rows.repartition(1).write.parquet(staging)
    fs, pattern = hadoop_fs(spark, join(staging, "part-*.parquet"))
    (written,) = fs.globStatus(pattern)
    before_rename()
    target = join(output, PREDICTIONS, f"{name}.parquet")
    _, destination = hadoop_fs(spark, target)
    fs.mkdirs(destination.getParent())
    if not fs.rename(written.getPath(), destination):
        raise OSError(f"could not rename {written.getPath().toString()} to {target}")
    fs.delete(hadoop_fs(spark, staging)[1], True)
    return target


def write_status(spark: SparkSession, output: str, status: Mapping) -> None:
    write_json(spark, join(output, STATUS), status)


def version(file) -> Version:
    """The version of a listed file (:class:`fmagenre.extraction.driver.ListedFile`)."""
    return Version(path_key(file.path), file.size, file.modified_us)
