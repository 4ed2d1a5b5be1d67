"""Small files on any Hadoop path (local, ``file://``, ``hdfs://``, ``s3a://``) through Spark's JVM.

The jobs read their side inputs (metadata, column lists, search spaces) and write their small
outputs (summaries, reports, state) here, so that every path option takes what Spark takes.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Mapping

from pyspark.sql import SparkSession


def hadoop_fs(spark: SparkSession, path: str):
    """The Hadoop file system of ``path`` and the path as a Hadoop ``Path``."""
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def path_exists(spark: SparkSession, path: str) -> bool:
    """Whether ``path`` (any Hadoop path) exists."""
    fs, hadoop_path = hadoop_fs(spark, path)
    return bool(fs.exists(hadoop_path))


def write_bytes(spark: SparkSession, path: str, data: str | bytes) -> None:
    """Create (or replace) a small file through Hadoop: one object on S3, seen at close.

    Text is written as UTF-8.
    """
    fs, hadoop_path = hadoop_fs(spark, path)
    _write(fs.create(hadoop_path, True), data)


def _write(stream, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to a Hadoop output ``stream`` and close it."""
    try:
        stream.write(bytearray(data.encode("utf-8") if isinstance(data, str) else data))
    finally:
        stream.close()


def create_new(spark: SparkSession, path: str, data: str | bytes) -> bool:
    """Create the small file ``path`` holding ``data`` unless it exists; whether this call
    created it.

    One step on local disks (``O_EXCL``) and HDFS (its create without overwrite); on object
    stores a check, then a write.
    """
    fs, hadoop_path = hadoop_fs(spark, path)
    if (fs.getUri().getScheme() or "file") == "file":
        local = hadoop_path.toUri().getPath()
        os.makedirs(os.path.dirname(local), exist_ok=True)
        try:
            descriptor = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "wb") as sink:
            sink.write(data.encode("utf-8") if isinstance(data, str) else data)
        return True
    if fs.exists(hadoop_path):
        return False
    try:
        stream = fs.create(hadoop_path, False)
    except Exception:  # FileAlreadyExistsException, HDFS's AlreadyBeingCreatedException
        if fs.exists(hadoop_path):
            return False
        raise
    _write(stream, data)
    return True


def write_output(spark: SparkSession, directory: str, name: str, data: str | bytes) -> str:
    """Create or replace the file ``directory/name`` (:func:`write_bytes`); return its path."""
    path = f"{directory.rstrip('/')}/{name}"
    write_bytes(spark, path, data)
    return path


def read_bytes(spark: SparkSession, path: str, *, piece: int = 1 << 23) -> bytes:
    """The bytes of a file on any Hadoop path, moved from the JVM in ``piece``-byte parts.

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a file.
    """
    fs, hadoop_path = hadoop_fs(spark, path)
    if not fs.isFile(hadoop_path):
        raise FileNotFoundError(f"{path}: no such file")
    stream = fs.open(hadoop_path)
    parts = []
    try:
        while part := stream.readNBytes(piece):
            parts.append(bytes(part))
    finally:
        stream.close()
    return b"".join(parts)


def replace_file(spark: SparkSession, source: str, target: str) -> None:
    """Put ``source`` in place of ``target`` in one step, as readers see it, and remove it.

    A local file is renamed over the old one (POSIX rename, checksum files dropped), an
    HDFS file likewise (``FileContext.rename`` with OVERWRITE is atomic there); on object
    stores an object becomes visible whole when written, so a copy replaces it.
    """
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    fs, src = hadoop_fs(spark, source)
    _, dst = hadoop_fs(spark, target)
    scheme = fs.getUri().getScheme() or "file"
    if scheme == "file":
        local = [src.toUri().getPath(), dst.toUri().getPath()]
        for path in local:
            folder, name = os.path.split(path)
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(folder, f".{name}.crc"))
        os.replace(*local)
    elif scheme in ("hdfs", "viewfs"):
        rename = jvm.org.apache.hadoop.fs.Options.Rename
        options = spark.sparkContext._gateway.new_array(rename, 1)
        options[0] = rename.OVERWRITE
        jvm.org.apache.hadoop.fs.FileContext.getFileContext(dst.toUri(), conf).rename(
            src, dst, options
        )
    else:
        jvm.org.apache.hadoop.fs.FileUtil.copy(fs, src, fs, dst, True, True, conf)


def write_json(spark: SparkSession, path: str, data: Mapping) -> None:
    """Write ``data`` as a JSON file that readers see whole or not at all.

    On local disks and HDFS a file exists from its creation on: the text goes to a hidden
    file beside it first, which then takes its place (:func:`replace_file`).
    """
    folder, name = path.rstrip("/").rsplit("/", 1)
    staged = f"{folder}/_{name}.{secrets.token_hex(4)}"
    write_bytes(spark, staged, json.dumps(data, indent=2, allow_nan=False) + "\n")
    replace_file(spark, staged, path)
