"""Python-worker side of feature extraction: Arrow batches of file bytes in, feature rows out.

:func:`analyse_frames` is the function that the driver (:mod:`fmagenre.extraction.driver`)
maps over the files with ``mapInPandas``. In each Spark Python worker it pins the thread pools,
compiles numba's kernels once, and hands one file at a time to the worker's analysing child
(:func:`fmagenre.extraction.isolation.analyse_isolated`), so that a failure on one file is that
file's error row and never the worker's end.

Memory. Spark runs one Python worker per executor core, outside the JVM heap. A worker holds
one Arrow batch of ``batch_size`` files' bytes (twice: Arrow and pandas) and hands one file at
a time to its analysing child, with BLAS, OpenMP and numba pinned to ``threads`` threads;
``max_duration`` caps what is decoded of long tracks. On a 10-minute 44.1 kHz stereo MP3 a
fresh worker is about 200 MiB resident and peaks at about 410 MiB, its child at about 710 MiB,
pages shared with the worker included (``python -m fmagenre.bench spark --memory 600``).
Budget 1.5 GiB per executor core for the Python side
(``spark.executor.memoryOverhead`` on YARN), plus 2 x ``batch_size`` x the largest file, and
a small JVM heap: the JVM only moves bytes and rows.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from pyspark.sql.types import DoubleType, IntegerType, LongType, StructField, StructType

from fmagenre.audio.names import flat_names, musicnn_names
from fmagenre.audio.patches import PatchSettings, patches_to_bytes
from fmagenre.platform.config import ExtractConfig
from fmagenre.platform.threads import THREAD_VARS
from fmagenre.tables.feature_table import FEATURE_SCHEMA

log = logging.getLogger(__name__)

#: Error reason of files over ``max_file_mb``, which are not read.
TOO_LARGE = "too_large"
#: Columns produced by the Python workers: the table's, less those derived in Spark, plus the
#: file's modification time in microseconds, passed through.
RESULT_SCHEMA = StructType(
    [
        *(
            f
            for f in FEATURE_SCHEMA.fields
            if f.name not in ("track_id", "features", "chunk_id", "modified_at", "settings")
        ),
        StructField("modified_us", LongType()),
    ]
)


#: The musicnn family's columns, then why a row has none.
MUSICNN_COLUMNS = (*musicnn_names(), "musicnn_error")
#: Rows of a windowed analysis (:func:`analyse_frames` with ``window``): per file, one row
#: with a null ``window`` (the whole track, or the file's error), then one row per window.
#: ``patches`` and ``patch_error`` are those of the track, or of the window (null when not
#: asked for).
WINDOW_SCHEMA = StructType(
    [
        *(
            f
            for f in RESULT_SCHEMA.fields
            if f.name in ("path", "file_size", "duration_s", "sample_rate", "analysed_s")
        ),
        StructField("window", IntegerType()),
        StructField("start_s", DoubleType()),
        StructField("end_s", DoubleType()),
        *(f for f in RESULT_SCHEMA.fields if f.name in flat_names()),
        *(f for f in RESULT_SCHEMA.fields if f.name in ("status", "error", "error_reason")),
        *(f for f in RESULT_SCHEMA.fields if f.name in ("patches", "patch_error")),
        *(f for f in RESULT_SCHEMA.fields if f.name in MUSICNN_COLUMNS),
    ]
)


def pin_threads(threads: int) -> None:
    """Limit BLAS, OpenMP and numba to ``threads`` in this process.

    The variables reach libraries not loaded yet (numba reads its own at import); the
    libraries already loaded (numpy's BLAS) are limited through threadpoolctl.
    """
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


def _feature_columns(
    features: Sequence[np.ndarray | None], names: Sequence[str] | None = None
) -> dict[str, pd.arrays.FloatingArray]:
    """The feature columns ``names`` (default: the 518) of rows with ``features`` (None: no
    features, the row is null).

    They are pandas' masked float32 arrays: the mask makes error rows null, while the NaN of
    an undefined statistic stays NaN (a plain float column would turn it to null).
    """
    names = flat_names() if names is None else names
    values = np.full((len(features), len(names)), np.nan, dtype=np.float32)
    missing = np.ones(len(features), dtype=bool)
    for i, row in enumerate(features):
        if row is not None:
            values[i] = row
            missing[i] = False
    by_column = np.ascontiguousarray(values.T)
    return {name: pd.arrays.FloatingArray(by_column[j], missing) for j, name in enumerate(names)}


def _stored(patches: np.ndarray | None) -> bytes | None:
    return None if patches is None else patches_to_bytes(patches)


def _result_frame(frame: pd.DataFrame, results: Sequence, seconds: Sequence[float]) -> pd.DataFrame:
    """Worker output for one input batch: :data:`RESULT_SCHEMA`'s columns."""

    def meta(name: str, dtype: str | None = None):
        column = [getattr(r, name) for r in results]
        return pd.array(column, dtype=dtype) if dtype else column

    columns = {
        "path": list(frame["path"]),
        "file_size": pd.array(list(frame["file_size"]), dtype="Int64"),
        "duration_s": meta("duration_s", "Float64"),
        "sample_rate": meta("sample_rate", "Int32"),
        "channels": meta("channels", "Int32"),
        "format": meta("format"),
        "analysed_s": meta("analysed_s", "Float64"),
    }
    columns.update(_feature_columns([r.features for r in results]))
    columns.update(
        status=meta("status"),
        error=meta("error"),
        error_reason=meta("error_reason"),
        extractor_version=meta("extractor_version"),
        extract_s=pd.array(seconds, dtype="Float64"),
        patches=[_stored(r.patches) for r in results],
        patch_error=meta("patch_error"),
    )
    columns.update(_feature_columns([r.musicnn for r in results], musicnn_names()))
    columns.update(
        musicnn_error=meta("musicnn_error"),
        modified_us=pd.array(list(frame["modified_us"]), dtype="Int64"),
    )
    return pd.DataFrame(columns)


def _window_frame(frame: pd.DataFrame, results: Sequence) -> pd.DataFrame:
    """Worker output of a windowed analysis: :data:`WINDOW_SCHEMA`'s columns."""
    rows, values, musicnn = [], [], []
    for path, size, result in zip(frame["path"], frame["file_size"], results, strict=True):
        file = {
            "path": path,
            "file_size": size,
            "duration_s": result.duration_s,
            "sample_rate": result.sample_rate,
            "analysed_s": result.analysed_s,
            "status": result.status,
            "error": result.error,
            "error_reason": result.error_reason,
        }
        rows.append(
            {
                **file,
                "window": None,
                "start_s": 0.0,
                "end_s": result.analysed_s,
                "patches": _stored(result.patches),
                "patch_error": result.patch_error,
                "musicnn_error": result.musicnn_error,
            }
        )
        values.append(result.features)
        musicnn.append(result.musicnn)
        windows = result.windows
        for k in range(0 if windows is None else len(windows.start_s)):
            rows.append(
                {
                    **file,
                    "window": k,
                    "start_s": windows.start_s[k],
                    "end_s": windows.end_s[k],
                    "patches": None if windows.patches is None else _stored(windows.patches[k]),
                    "patch_error": None if windows.patches is None else windows.patch_errors[k],
                    "musicnn_error": None if windows.musicnn is None else windows.musicnn_errors[k],
                }
            )
            values.append(windows.values[k])
            musicnn.append(None if windows.musicnn is None else windows.musicnn[k])
    out = pd.DataFrame(rows)
    columns = {
        "path": out["path"],
        "file_size": pd.array(out["file_size"], dtype="Int64"),
        "duration_s": pd.array(out["duration_s"], dtype="Float64"),
        "sample_rate": pd.array(out["sample_rate"], dtype="Int32"),
        "analysed_s": pd.array(out["analysed_s"], dtype="Float64"),
        "window": pd.array(out["window"], dtype="Int32"),
        "start_s": pd.array(out["start_s"], dtype="Float64"),
        "end_s": pd.array(out["end_s"], dtype="Float64"),
    }
    columns.update(_feature_columns(values))
    for name in ("status", "error", "error_reason"):
        columns[name] = out[name]
    columns["patches"] = list(out["patches"])
    columns["patch_error"] = list(out["patch_error"])
    columns.update(_feature_columns(musicnn, musicnn_names()))
    columns["musicnn_error"] = list(out["musicnn_error"])
    return pd.DataFrame(columns)


def analyse_frames(
    frames: Iterable[pd.DataFrame],
    config: ExtractConfig,
    *,
    window: float | None = None,
    hop: float | None = None,
    patches: PatchSettings | None = None,
) -> Iterator[pd.DataFrame]:
    """Batches of (path, file_size, modified_us, content) to :data:`RESULT_SCHEMA` rows, or
    with ``window`` (seconds, every ``hop``) to :data:`WINDOW_SCHEMA` rows.

    ``content`` is null for empty files, which Spark does not read, and for files over
    ``max_file_mb``, which get error ``too_large``. Each file is analysed by the worker's
    analysing child (:func:`fmagenre.extraction.isolation.analyse_isolated`): nothing raises and
    nothing crashes the worker; a failure on one file is that file's error row. With
    ``patches``, rows also carry the log-mel patches, or ``patch_error``: a file without
    features (any error, a crash or a timeout included) has its error there too.
    """
    pin_threads(config.threads)
    # After pinning (numba reads its variable at import); compiled once, under a lock.
    from fmagenre.audio import numba_cache
    from fmagenre.audio.features import TrackFeatures
    from fmagenre.extraction.isolation import analyse_isolated, fault_for

    numba_cache.warm_up()
    for frame in frames:
        results, seconds = [], []
        for path, size, content in zip(
            frame["path"], frame["file_size"], frame["content"], strict=True
        ):
            started = time.perf_counter()
            if content is None and size > 0:
                detail = f"{size} bytes, over the max_file_mb limit of {config.max_file_mb} MiB"
                result = TrackFeatures(None, "error", f"{TOO_LARGE}: {detail}", TOO_LARGE)
            else:
                result = analyse_isolated(
                    content or b"",
                    max_duration=config.max_duration,
                    fma_compat=config.fma_compat,
                    timeout_s=config.timeout_s,
                    fault=fault_for(path, config.inject_fault),
                    window=window,
                    hop=hop,
                    patches=patches,
                    musicnn=config.musicnn,
                )
            if patches is not None and result.patches is None and result.patch_error is None:
                result.patch_error = result.error
            if config.musicnn and result.musicnn is None and result.musicnn_error is None:
                result.musicnn_error = result.error
            seconds.append(time.perf_counter() - started)
            results.append(result)
            if result.status != "ok":
                log.warning("%s: %s", path, result.error)
        if window is None:
            yield _result_frame(frame, results, seconds)
        else:
            yield _window_frame(frame, results)
