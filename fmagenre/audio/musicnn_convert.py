"""Convert musicnn's ``MSD_musicnn`` TensorFlow-1 checkpoint to a NumPy ``.npz``, without TF.

Run once; its output ships as ``fmagenre/audio/musicnn_data/msd_musicnn.npz``::

    pip download musicnn==0.1.0 --no-deps -d /tmp/musicnn
    python -m fmagenre.audio.musicnn_convert /tmp/musicnn/musicnn-0.1.0-py3-none-any.whl \\
        fmagenre/audio/musicnn_data/msd_musicnn.npz

The source is the wheel of ``musicnn`` 0.1.0 (ISC licence) or a directory holding the
checkpoint's ``.index`` and ``.data-00000-of-00001`` files. A TF1 checkpoint is an index, a
LevelDB-format table (SSTable) that maps each tensor's name to a ``BundleEntryProto`` (dtype,
shape, shard, offset, size, masked CRC32C), and data shards holding the tensors' raw
little-endian bytes. This module reads the table's blocks and the protobuf fields itself,
checks every block's and every tensor's CRC32C, keeps the 64 inference tensors (792,079
values; the 84 Adam slots and the two Adam power scalars are left out) under short names
(:data:`EXPECTED`), checks their shapes, and writes them as float32 (compressed: 2.99 MB).
"""

from __future__ import annotations

import argparse
import io
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["EXPECTED", "convert", "read_checkpoint"]

#: Prefix of the model's files inside the wheel.
WHEEL_PREFIX = "musicnn/MSD_musicnn/"
_INDEX = ".index"
_SHARD = ".data-00000-of-00001"
_MAGIC = 0xDB4775248B80FB57
_DT_FLOAT = 1


def _layer(tf_name: str, short: str, shape: tuple[int, ...], kind: str) -> dict[str, tuple]:
    """Names and shapes of one layer's variables: ``conv``/``dense`` kernel + bias, or ``bn``."""
    if kind == "bn":
        parts = ("gamma", "beta", "moving_mean", "moving_variance")
        return {f"{short}/{p}": (f"{tf_name}/{p}", shape) for p in parts}
    kernel, bias = shape
    return {
        f"{short}/kernel": (f"{tf_name}/kernel", kernel),
        f"{short}/bias": (f"{tf_name}/bias", bias),
    }


def _expected() -> dict[str, tuple[str, tuple[int, ...]]]:
    """Short name -> (checkpoint name, shape), in the order the network uses them."""
    out: dict[str, tuple[str, tuple[int, ...]]] = {}

    def bn(k: int | None, short: str, n: int) -> None:
        name = "batch_normalization" + ("" if k is None else f"_{k}")
        out.update(_layer(name, short, (n,), "bn"))

    def conv(k: int | None, short: str, kernel: tuple[int, ...], n: int) -> None:
        name = "conv2d" + ("" if k is None else f"_{k}")
        out.update(_layer(name, short, (kernel, (n,)), "conv"))

    # Graph order (tf.layers numbers its layers as they are built).
    bn(None, "input_bn", 1)
    conv(None, "timbral38", (7, 38, 1, 204), 204)
    bn(1, "timbral38_bn", 204)
    conv(1, "timbral67", (7, 67, 1, 204), 204)
    bn(2, "timbral67_bn", 204)
    for k, length in enumerate((128, 64, 32)):
        conv(2 + k, f"temporal{length}", (length, 1, 1, 51), 51)
        bn(3 + k, f"temporal{length}_bn", 51)
    for k, width in enumerate((561, 64, 64)):
        conv(5 + k, f"mid{k + 1}", (7, width, 1, 64), 64)
        bn(6 + k, f"mid{k + 1}_bn", 64)
    bn(9, "pool_bn", 1506)
    out.update(_layer("dense", "dense200", ((1506, 200), (200,)), "conv"))
    bn(10, "dense200_bn", 200)
    out.update(_layer("dense_1", "dense50", ((200, 50), (50,)), "conv"))
    return out


#: Short name -> (name in the checkpoint, shape) of every tensor the converted file holds.
EXPECTED = _expected()


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``: a plain table loop, about 0.1 s per MB."""
    crc, table = 0xFFFFFFFF, _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _unmask(masked: int) -> int:
    """LevelDB's CRC masking undone (``rotate_right(masked - 0xa282ead8, 17)``)."""
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of a protobuf message: ints for varint and fixed types,
    bytes for length-delimited ones."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((number, value))
    return out


def _block(table: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of one SSTable block, its CRC checked."""
    contents, kind = table[offset : offset + size], table[offset + size]
    (masked,) = struct.unpack_from("<I", table, offset + size + 1)
    if _unmask(masked) != crc32c(contents + bytes([kind])):
        raise ValueError(f"index block at {offset}: CRC32C mismatch")
    if kind != 0:
        raise ValueError(f"index block at {offset}: compression type {kind} not supported")
    (restarts,) = struct.unpack_from("<I", contents, size - 4)
    end = size - 4 - 4 * restarts
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(contents, pos)
        unshared, pos = _varint(contents, pos)
        length, pos = _varint(contents, pos)
        key = key[:shared] + contents[pos : pos + unshared]
        pos += unshared
        entries.append((key, contents[pos : pos + length]))
        pos += length
    return entries


def _entry(proto: bytes) -> dict:
    """The fields of a ``BundleEntryProto`` this reader needs."""
    entry = {"dtype": 0, "shape": (), "shard": 0, "offset": 0, "size": 0, "crc": None}
    for number, value in _fields(proto):
        if number == 1:
            entry["dtype"] = value
        elif number == 2:  # TensorShapeProto: repeated Dim (field 2) with size (field 1)
            dims = [dict(_fields(dim)).get(1, 0) for n, dim in _fields(value) if n == 2]
            entry["shape"] = tuple(dims)
        elif number == 3:
            entry["shard"] = value
        elif number == 4:
            entry["offset"] = value
        elif number == 5:
            entry["size"] = value
        elif number == 6:
            entry["crc"] = value
        elif number == 7:
            raise ValueError("sliced (partitioned) tensors are not supported")
    return entry


def read_checkpoint(index: bytes, shard: bytes) -> dict[str, np.ndarray]:
    """Every float32 tensor of a single-shard TF1 checkpoint, by its name in the checkpoint.

    Parameters
    ----------
    index : bytes
        The checkpoint's ``.index`` file.
    shard : bytes
        Its ``.data-00000-of-00001`` file.

    Returns
    -------
    dict of str to np.ndarray
        Float32 arrays in their checkpoint shapes; the CRC32C of each one's bytes checked.

    Raises
    ------
    ValueError
        On a file that is not such a checkpoint, or a checksum that does not match.
    """
    if len(index) < 48 or struct.unpack_from("<Q", index, len(index) - 8)[0] != _MAGIC:
        raise ValueError("the index is not a LevelDB-format table (no magic number at its end)")
    footer = index[-48:]
    _, pos = _varint(footer, 0)  # metaindex handle (empty here)
    _, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    tensors: dict[str, np.ndarray] = {}
    for _, handle in _block(index, index_offset, index_size):
        offset, pos = _varint(handle, 0)
        size, _ = _varint(handle, pos)
        for key, value in _block(index, offset, size):
            if not key:  # the BundleHeaderProto
                continue
            name, entry = key.decode(), _entry(value)
            if entry["dtype"] != _DT_FLOAT:
                continue  # the global step (int64)
            if entry["shard"] != 0:
                raise ValueError(f"{name}: shard {entry['shard']}, only one shard is supported")
            raw = shard[entry["offset"] : entry["offset"] + entry["size"]]
            count = int(np.prod(entry["shape"], dtype=np.int64))
            if len(raw) != entry["size"] or entry["size"] != 4 * count:
                raise ValueError(f"{name}: {entry['size']} bytes do not fit {entry['shape']}")
            if entry["crc"] is None or _unmask(entry["crc"]) != crc32c(raw):
                raise ValueError(f"{name}: CRC32C mismatch")
            tensors[name] = np.frombuffer(raw, dtype="<f4").reshape(entry["shape"])
    return tensors


def _checkpoint_files(source: Path) -> tuple[bytes, bytes]:
    if source.is_dir():
        return (source / _INDEX).read_bytes(), (source / _SHARD).read_bytes()
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as wheel:
            return wheel.read(WHEEL_PREFIX + _INDEX), wheel.read(WHEEL_PREFIX + _SHARD)
    raise ValueError(f"{source} is neither a checkpoint directory nor a wheel")


def convert(source: str | Path, output: str | Path) -> dict[str, np.ndarray]:
    """Read the ``MSD_musicnn`` checkpoint and write its inference weights as a float32 ``.npz``.

    Parameters
    ----------
    source : str or Path
        The ``musicnn`` 0.1.0 wheel, or the directory holding ``.index`` and
        ``.data-00000-of-00001``.
    output : str or Path
        The ``.npz`` to write (compressed), one array per :data:`EXPECTED` name.

    Returns
    -------
    dict of str to np.ndarray
        The arrays written.

    Raises
    ------
    ValueError
        When the source is not that checkpoint (a missing tensor, a shape that differs, a
        checksum that does not match).
    """
    source, output = Path(source), Path(output)
    if not source.exists():
        raise ValueError(f"{source} does not exist")
    tensors = read_checkpoint(*_checkpoint_files(source))
    arrays = {}
    for short, (name, shape) in EXPECTED.items():
        if name not in tensors:
            raise ValueError(f"the checkpoint has no tensor {name}")
        if tensors[name].shape != shape:
            raise ValueError(f"{name} has shape {tensors[name].shape}, expected {shape}")
        arrays[short] = np.ascontiguousarray(tensors[name], dtype=np.float32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    output.write_bytes(buffer.getvalue())
    return arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fmagenre.audio.musicnn_convert", description=__doc__.splitlines()[0]
    )
    parser.add_argument("source", help="musicnn-0.1.0 wheel, or the MSD_musicnn checkpoint dir")
    parser.add_argument("output", help="the .npz to write")
    args = parser.parse_args(argv)
    try:
        arrays = convert(args.source, args.output)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    values = sum(a.size for a in arrays.values())
    print(f"wrote {args.output}: {len(arrays)} arrays, {values:,} float32 values")
    return 0


if __name__ == "__main__":
    sys.exit(main())
