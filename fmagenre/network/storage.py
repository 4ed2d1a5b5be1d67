"""Files on any path the training processes can reach, through pyarrow's file systems.

The training processes (:mod:`fmagenre.network.ranks`) have no Spark session, so they read the
patches table and write checkpoints and the model with pyarrow: local paths and ``file:``,
``s3://`` (``s3a://`` and ``s3n://`` are the same objects), ``hdfs://`` (pyarrow's libhdfs:
``HADOOP_HOME``, ``JAVA_HOME`` and ``CLASSPATH=$(hadoop classpath --glob)`` set, as on EMR),
``gs://``. The driver hands them fully qualified URIs (:func:`fmagenre.network.data.qualified`).
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import unquote, urlsplit

import pyarrow.fs as pafs

_S3_ALIASES = re.compile(r"^s3[an]://")


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow file system of ``uri`` and the path in it."""
    uri = _S3_ALIASES.sub("s3://", uri)
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        return pafs.LocalFileSystem(), unquote(parts.path) if parts.scheme else uri
    return pafs.FileSystem.from_uri(uri)


def read_file(uri: str) -> bytes | None:
    """The bytes of the file at ``uri``; None when there is none."""
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        return stream.read()


def write_file(uri: str, data: bytes) -> None:
    """Create or replace the file at ``uri`` so that readers see it whole: written beside it
    under a hidden name, then moved over it (a rename on local disks and HDFS; on object
    stores the object appears whole when the copy ends)."""
    fs, path = filesystem(uri)
    folder, name = path.rstrip("/").rsplit("/", 1)
    fs.create_dir(folder, recursive=True)
    staged = f"{folder}/_{name}.{secrets.token_hex(4)}"
    with fs.open_output_stream(staged) as stream:
        stream.write(data)
    fs.move(staged, path)


def delete_dir(uri: str) -> None:
    """Remove the directory at ``uri`` with its contents, when it exists."""
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        fs.delete_dir(path)
