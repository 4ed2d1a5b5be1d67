"""The ``k`` nearest tracks of queries in an index: exact, or by probing IVF lists.

Queries are vectors on the driver (:func:`queries_from_tracks`, :func:`queries_from_rows`:
indexed tracks, or feature rows of a table or of audio files extracted on the fly). Both
searches are one Spark job over the index's inverted lists (``mapInArrow``): every task
takes each list of its partition as one float32 matrix, computes the squared distances to
the queries that probe it as a matrix product (``|x|^2 - 2 q.x``, then ``+ |q|^2``), and
keeps each query's ``k`` best over its lists; the driver merges the tasks' candidates. The
exact search probes every list with every query (the whole index scanned, nothing skipped);
the IVF search gives each query its ``probes`` nearest lists by centroid (more when those hold
fewer than ``k + 1`` tracks), and reads only the lists some query probes. The queries travel
as a broadcast.

A query that is itself in the index (same track id, or same path) is not its own neighbour:
``k + 1`` are searched, the query's own row dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fmagenre.audio.names import uses_musicnn
from fmagenre.errors import shown_names
from fmagenre.extraction.driver import extraction_frame, file_source_conf, list_inputs
from fmagenre.network.inference import add_embeddings, load_network
from fmagenre.network.model_dir import NetworkModel
from fmagenre.platform.config import ExtractConfig
from fmagenre.platform.hadoop import path_exists
from fmagenre.platform.session import session_settings
from fmagenre.similarity.index import Index, nearest_centroids, read_index
from fmagenre.similarity.space import SimilarityError, feature_matrix
from fmagenre.tables.feature_table import S3_ALIASES
from fmagenre.tables.inputs import read_feature_rows
from fmagenre.tables.label_table import ARROW_ENABLED

log = logging.getLogger(__name__)

#: The columns of a query's keys and status, before its neighbours' (see :func:`result_rows`).
QUERY_COLUMNS = ("query", "query_track_id", "query_path", "status", "error", "error_reason")
OUTPUT_SCHEMA = (
    "query string, query_track_id long, query_path string, rank int, track_id long,"
    " path string, genre string, distance double, status string, error string,"
    " error_reason string"
)
_CANDIDATES = "q int, d double, track_id long, path string, genre string"
_CANDIDATE_SCHEMA = pa.schema(
    [
        ("q", pa.int32()),
        ("d", pa.float64()),
        ("track_id", pa.int64()),
        ("path", pa.string()),
        ("genre", pa.string()),
    ]
)
_PAYLOAD = ("track_ids", "paths", "genres")


class IndexMismatchError(SimilarityError):
    """Queries whose features are not those the index was built from."""


def _scan(batches: Iterator[pa.RecordBatch], shared, k: int, dim: int):
    """A task's candidates: each query's ``k`` nearest among the lists of its partition."""
    queries, probes_of = shared.value
    m = len(queries)
    best_d = np.full((m, k), np.inf, dtype=np.float32)
    best_h = np.full((m, k), -1, dtype=np.int64)
    payload = []
    for batch in batches:
        clusters = batch.column("cluster").to_pylist()
        for i, cluster in enumerate(clusters):
            who = slice(None) if probes_of is None else probes_of.get(cluster)
            if who is None:
                continue
            vectors = np.frombuffer(batch.column("vectors")[i].as_buffer(), dtype=np.float32)
            vectors = vectors.reshape(-1, dim)
            distances = (vectors.astype(np.float32) ** 2).sum(axis=1)[None, :] - 2.0 * (
                queries[who] @ vectors.T
            )
            keep = min(k, len(vectors))
            if keep < len(vectors):
                near = np.argpartition(distances, keep - 1, axis=1)[:, :keep]
            else:
                near = np.broadcast_to(np.arange(len(vectors)), distances.shape)
            handles = (len(payload) << 32) | near
            merged_d = np.hstack([best_d[who], np.take_along_axis(distances, near, axis=1)])
            merged_h = np.hstack([best_h[who], handles])
            top = np.argpartition(merged_d, k - 1, axis=1)[:, :k]
            best_d[who] = np.take_along_axis(merged_d, top, axis=1)
            best_h[who] = np.take_along_axis(merged_h, top, axis=1)
            payload.append([batch.column(name)[i].values for name in _PAYLOAD])
    if not payload:
        return
    q, slot = np.nonzero(best_h >= 0)
    handles = best_h[q, slot]
    # A handle's list and row, as a row of the task's lists laid end to end.
    starts = np.cumsum([0, *(len(arrays[0]) for arrays in payload)])
    rows = pa.array(starts[handles >> 32] + (handles & 0xFFFFFFFF))
    values = [pa.concat_arrays(column).take(rows) for column in zip(*payload, strict=True)]
    q_d = [pa.array(q, pa.int32()), pa.array(best_d[q, slot].astype(np.float64))]
    yield pa.RecordBatch.from_arrays([*q_d, *values], schema=_CANDIDATE_SCHEMA)


def probe_lists(index: Index, vectors: np.ndarray, *, probes: int, k: int) -> dict[int, np.ndarray]:
    """The queries (row numbers of ``vectors``) that probe each list: each query's ``probes``
    nearest lists, and the next ones while those hold fewer than ``k`` tracks."""
    lists = len(index.centroids)
    probes = min(probes, lists)
    order = nearest_centroids(vectors, index.centroids, probes)
    short = np.flatnonzero(index.list_sizes[order].sum(axis=1) < k)
    pairs = [(np.repeat(np.arange(len(vectors)), probes), order.reshape(-1))]
    if len(short):  # these queries' nearest lists hold fewer than k tracks: probe further
        further = nearest_centroids(vectors[short], index.centroids, lists)
        sizes = index.list_sizes[further].cumsum(axis=1)
        # Lists before the first whose running size reaches k, that one included.
        counts = np.minimum((sizes < k).sum(axis=1) + 1, lists)
        for query, row, count in zip(short, further, counts, strict=True):
            extra = row[probes:count]
            pairs.append((np.full(len(extra), query), extra))
    queries = np.concatenate([p[0] for p in pairs])
    clusters = np.concatenate([p[1] for p in pairs])
    by_list = np.argsort(clusters, kind="stable")
    found, starts = np.unique(clusters[by_list], return_index=True)
    groups = np.split(queries[by_list], starts[1:])
    return {int(cluster): group for cluster, group in zip(found, groups, strict=True)}


def search(
    spark: SparkSession,
    index: Index,
    vectors: np.ndarray,
    *,
    k: int,
    probes: int | None,
    track_ids: Sequence[int | None] | None = None,
    paths: Sequence[str | None] | None = None,
    lists: DataFrame | None = None,
) -> pd.DataFrame:
    """The ``k`` nearest indexed tracks of each query vector.

    Parameters
    ----------
    spark : SparkSession
    index : Index
    vectors : numpy.ndarray
        ``queries x index.space.dim``, in the index's space.
    k : int
    probes : int or None
        Lists probed per query (IVF); None: exact search.
    track_ids, paths : sequences or None
        Each query's own track id and path, when known: its row in the index is skipped.
    lists : DataFrame or None
        The index's lists, already read (e.g. cached); None reads them.

    Returns
    -------
    pandas.DataFrame
        ``q`` (the query's row in ``vectors``), ``rank`` (1..k), ``track_id``, ``path``,
        ``genre``, ``distance`` (Euclidean, in the index's space); by ``q`` and ``rank``.
    """
    if k < 1:
        raise SimilarityError(f"--k must be at least 1, got {k}")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    count = len(vectors)
    columns = ["q", "rank", "track_id", "path", "genre", "distance"]
    if not count:
        return pd.DataFrame(columns=columns)
    wanted = k + 1
    probes_of = None if probes is None else probe_lists(index, vectors, probes=probes, k=wanted)
    lists = index.lists(spark) if lists is None else lists
    if probes_of is not None and len(probes_of) < len(index.centroids):
        lists = lists.where(F.expr(f"cluster IN ({','.join(map(str, probes_of))})"))
    shared = spark.sparkContext.broadcast((vectors, probes_of))
    try:
        scan = partial(_scan, shared=shared, k=wanted, dim=index.space.dim)
        with session_settings(spark, {ARROW_ENABLED: "true"}):
            found = lists.mapInArrow(scan, _CANDIDATES).toPandas()
    finally:
        shared.destroy()
    found["distance"] = np.sqrt(
        np.maximum(
            found["d"].to_numpy() + (vectors.astype(np.float64) ** 2).sum(axis=1)[found["q"]], 0
        )
    )
    own = np.zeros(len(found), dtype=bool)
    if track_ids is not None:
        mine = pd.array(list(track_ids), dtype="Int64")[found["q"].to_numpy()]
        own |= (pd.array(found["track_id"], dtype="Int64") == mine).fillna(False).to_numpy(bool)
    if paths is not None:
        keys = pd.Series(list(paths), dtype=object).str.replace(S3_ALIASES, "s3://", regex=True)
        theirs = found["path"].str.replace(S3_ALIASES, "s3://", regex=True)
        mine = keys.to_numpy()[found["q"].to_numpy()]
        own |= (theirs.to_numpy() == mine) & pd.notna(mine)
    found = found[~own].sort_values(["q", "distance", "track_id", "path"], kind="stable")
    found["rank"] = found.groupby("q").cumcount() + 1
    found = found[found["rank"] <= k]
    return found[columns].reset_index(drop=True)


def queries_from_tracks(
    spark: SparkSession, index: Index, track_ids: Sequence[int]
) -> tuple[pd.DataFrame, np.ndarray]:
    """Queries of indexed tracks: their rows (:data:`QUERY_COLUMNS`) and the vectors of the
    ``ok`` ones; an id not in the index is an error row (``not_in_index``)."""
    wanted = list(dict.fromkeys(int(i) for i in track_ids))
    with session_settings(spark, {ARROW_ENABLED: "true"}):
        found = (
            index.tracks(spark)
            .where(F.col("track_id").isin(wanted))
            .select("track_id", "path", "vector")
            .toPandas()
            .drop_duplicates("track_id")
            .set_index("track_id")
        )
    rows, vectors = [], []
    for track_id in wanted:
        if track_id in found.index:
            vectors.append(np.asarray(found.at[track_id, "vector"], dtype=np.float32))
            rows.append((str(track_id), track_id, found.at[track_id, "path"], "ok", None, None))
        else:
            error = f"track {track_id} is not in the index {index.path}"
            rows.append((str(track_id), track_id, None, "error", error, "not_in_index"))
    frame = pd.DataFrame(rows, columns=list(QUERY_COLUMNS))
    return frame, np.array(vectors, dtype=np.float32).reshape(len(vectors), index.space.dim)


def check_rows(index: Index, columns: Sequence[str], versions: Sequence[str], *, source: str):
    """Check that feature rows with ``columns`` and extractor ``versions`` (their ``ok``
    rows') can query ``index``.

    Raises
    ------
    IndexMismatchError
        On a column of the index the rows lack, or an extractor version the index's table
        does not have: the message says which, and what to do.
    """
    space = index.space
    missing = [name for name in space.columns if name not in columns]
    if missing:
        raise IndexMismatchError(
            f"the index {index.path} was built on the space {space.name} and {source} lacks"
            f" {len(missing)} of its columns ({shown_names(missing, limit=3)}): query with"
            " features that have them, or build an index on the space of the queries"
            " (--features TABLE --families ...)"
        )
    built = index.manifest["extractor_versions"]
    other = sorted(set(versions) - set(built))
    if built and other:
        raise IndexMismatchError(
            f"the index {index.path} was built from features of extractor"
            f" {', '.join(built)} and {source} has features of extractor {', '.join(other)}:"
            " rebuild the index from a table extracted with the same version, or query with"
            " features of that version"
        )


def queries_from_rows(
    index: Index, rows: pd.DataFrame, *, labels: Sequence[str], source: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """Queries of feature rows (``path``, ``track_id``, ``status``, ``error``,
    ``error_reason``, ``extractor_version`` where known, the index's columns).

    ``labels`` names each row's query in the output. A row that is not ``ok`` stays an error
    row with its error; an ``ok`` row without any value in the index's columns becomes one
    (``no_values``).

    Raises
    ------
    IndexMismatchError
        See :func:`check_rows`.
    """
    status = rows["status"] if "status" in rows else pd.Series("ok", index=rows.index)
    ok = (status == "ok").to_numpy()
    versions = []
    if "extractor_version" in rows:
        versions = rows.loc[ok, "extractor_version"].dropna().unique().tolist()
    check_rows(index, list(rows.columns), versions, source=source)
    values = feature_matrix(
        pa.Table.from_pandas(rows[list(index.space.columns)]), index.space.columns
    )
    vectors, has = index.space.vectors(values)

    def column(name):
        return rows[name].tolist() if name in rows else [None] * len(rows)

    frame = pd.DataFrame(
        {
            "query": list(labels),
            "query_track_id": pd.array(column("track_id"), dtype="Int64"),
            "query_path": column("path"),
            "status": status.tolist(),
            "error": column("error"),
            "error_reason": column("error_reason"),
        }
    )
    empty = ok & ~has
    if empty.all() and len(rows):
        raise IndexMismatchError(
            f"{source} has no value in the columns of the index's space {index.space.name}:"
            " extract those features for the queries, or query an index of their space"
        )
    frame.loc[empty, "status"] = "error"
    frame.loc[empty, "error"] = f"no value in the columns of the space {index.space.name}"
    frame.loc[empty, "error_reason"] = "no_values"
    return frame, vectors[ok & has]


def result_rows(queries: pd.DataFrame, found: pd.DataFrame) -> pd.DataFrame:
    """The output rows: each ``ok`` query's neighbours (``found``, by its row among the ``ok``
    queries), each other query's one row with a null rank."""
    ok = np.flatnonzero((queries["status"] == "ok").to_numpy())
    neighbours = (
        queries.iloc[ok[found["q"].to_numpy(dtype=np.int64)]]  # typed when empty too
        .reset_index()
        .assign(
            rank=found["rank"].to_numpy(),
            track_id=found["track_id"].to_numpy(),
            path=found["path"].to_numpy(),
            genre=found["genre"].to_numpy(),
            distance=found["distance"].to_numpy(),
        )
    )
    failed = queries[queries["status"] != "ok"].reset_index()
    rows = pd.concat([neighbours, failed], ignore_index=True)
    rows = rows.sort_values(["index", "rank"], kind="stable", na_position="first")
    columns = [name.split()[0] for name in OUTPUT_SCHEMA.split(",")]
    rows = rows.reindex(columns=columns)
    rows["rank"] = pd.array(rows["rank"], dtype="Int32")
    rows["track_id"] = pd.array(rows["track_id"], dtype="Int64")
    return rows.reset_index(drop=True)


def neighbours(
    spark: SparkSession,
    index: Index,
    rows: pd.DataFrame,
    *,
    k: int,
    labels: Sequence[str],
    source: str,
    probes: int | None = None,
) -> pd.DataFrame:
    """The rows of :data:`OUTPUT_SCHEMA` for feature rows already on the driver (see
    :func:`queries_from_rows`): the ``k`` nearest indexed tracks of each ``ok`` row, by IVF
    search with ``probes`` (None: the index's default), itself excluded.

    Raises
    ------
    IndexMismatchError
        See :func:`check_rows`.
    """
    queries, vectors = queries_from_rows(index, rows, labels=labels, source=source)
    ok = queries["status"] == "ok"
    found = search(
        spark,
        index,
        vectors,
        k=k,
        probes=probes or index.manifest["probes"],
        track_ids=queries.loc[ok, "query_track_id"].tolist(),
        paths=queries.loc[ok, "query_path"].tolist(),
    )
    return result_rows(queries, found)


def timed_search(spark, index, vectors, **options) -> tuple[pd.DataFrame, float]:
    """:func:`search` and its wall seconds."""
    started = time.perf_counter()
    found = search(spark, index, vectors, **options)
    return found, time.perf_counter() - started


def query_rows(
    spark: SparkSession, frame: DataFrame, index: Index, *, source: str, settings: Mapping
) -> pd.DataFrame:
    """The rows of ``frame`` a query needs, on the driver (one action: audio is extracted
    once)."""
    check_rows(index, frame.columns, [], source=source)
    keys = ("track_id", "path", "status", "error", "error_reason", "extractor_version")
    kept = [name for name in keys if name in frame.columns]
    with session_settings(spark, {**settings, ARROW_ENABLED: "true"}):
        return frame.select(*kept, *index.space.columns).toPandas()


def index_network(spark: SparkSession, index: Index) -> NetworkModel | None:
    """The copy of the network an index's space holds (None when it holds none)."""
    if index.manifest.get("network") is None:
        return None
    return load_network(spark, index.path, option="--index")


def query_patches(
    index_path: str, network: Mapping | None, model: Mapping | None
) -> Mapping | None:
    """The patch settings to extract queries of an index with: those of the index's
    ``network`` (None: the index holds none), else the classifying ``model``'s (None: it
    needs no patches).

    Raises
    ------
    IndexMismatchError
        When both cut patches, differently (one extraction serves both).
    """
    if network is None:
        return model
    if model is not None and model != network:
        raise IndexMismatchError(
            f"the network of the --similar index {index_path} cuts other patches than the"
            " model's network: build the index with the model's network, or on features"
        )
    return network


def embedded(model: NetworkModel | None, rows: DataFrame) -> DataFrame:
    """``rows`` with the network's columns of ``model`` (none without)."""
    return rows if model is None else add_embeddings(model, rows)


def run_query(
    spark: SparkSession,
    *,
    index: str,
    output: str,
    audio: Sequence[str] = (),
    track_ids: Sequence[int] = (),
    table: str | None = None,
    k: int = 10,
    probes: int | None = None,
    exact: bool = False,
    columns: Sequence[str] | None = None,
    extract: ExtractConfig | None = None,
    overwrite: bool = False,
) -> dict:
    """Find the ``k`` nearest indexed tracks of each query; write Parquet; return a summary.

    Parameters
    ----------
    spark : SparkSession
    index : str
        The index directory.
    output : str
        Parquet directory to write (:data:`OUTPUT_SCHEMA`): ``k`` rows per query (fewer only
        when the index holds fewer tracks), one row with a null rank and the error for a query
        that failed (a file that cannot be decoded, a track id not in the index...).
    audio : sequence of str
        Audio files or folders (searched recursively): their features are extracted on the
        fly, as jobs/extract_features.py does.
    track_ids : sequence of int
        Tracks of the index.
    table : str or None
        A feature table or Parquet whose rows are queries.
    k : int
    probes : int or None
        IVF lists probed per query; None: the index's default.
    exact : bool
        Exact search instead.
    columns : sequence of str or None
        The columns the user asked for (``--families``): they must be the index's.
    extract : ExtractConfig or None
        Extraction settings for audio queries (the musicnn family is added when the index
        uses it; the patches of its network, when it has one).
    overwrite : bool
        Replace an existing output.

    Raises
    ------
    SimilarityError
        On no query source or several, no audio file, bad ``k`` or ``probes``, no index.
    IndexMismatchError
        When the queries' features (columns, extractor version) are not the index's.
    FileExistsError
        When ``output`` exists and ``overwrite`` is false.
    """
    started = time.perf_counter()
    sources = [bool(audio), bool(track_ids), table is not None]
    if sum(sources) != 1:
        raise SimilarityError("give one kind of query: --query, --query-tracks or --query-table")
    if probes is not None and probes < 1:
        raise SimilarityError(f"--probes must be at least 1, got {probes}")
    built = read_index(spark, index)
    if columns is not None and tuple(columns) != built.space.columns:
        raise IndexMismatchError(
            f"the index {built.path} was built on the space {built.space.name}"
            f" ({len(built.space.columns)} columns), not on the --families asked for"
            f" ({len(columns)} columns): leave --families out, or build an index of those"
            " families"
        )
    if not overwrite and path_exists(spark, output):
        raise FileExistsError(f"{output} already exists: pass --overwrite to replace it")
    extract = (extract or ExtractConfig()).with_musicnn(uses_musicnn(built.space.columns))
    # Indexed tracks have their vectors: only feature rows need the index's network.
    embedder = None if track_ids else index_network(spark, built)
    if track_ids:
        queries, vectors = queries_from_tracks(spark, built, track_ids)
        kind = "tracks"
    elif table is not None:
        frame = embedded(embedder, read_feature_rows(spark, table, option="--query-table"))
        source = f"--query-table {table}"
        rows = query_rows(spark, frame, built, source=source, settings={})
        paths = rows["path"] if "path" in rows else [None] * len(rows)
        names = [
            p if p is not None else str(t) for p, t in zip(paths, rows["track_id"], strict=True)
        ]
        queries, vectors = queries_from_rows(built, rows, labels=names, source=source)
        kind = "table"
    else:
        files = list_inputs(spark, list(audio), glob=extract.glob)
        if not files:
            raise SimilarityError(f"no file matching {extract.glob} under {', '.join(audio)}")
        log.info("extracting the features of %d query files", len(files))
        patches = None if embedder is None else embedder.settings
        rows = query_rows(
            spark,
            embedded(embedder, extraction_frame(spark, files, extract, patches=patches)),
            built,
            source="the query files",
            settings=file_source_conf(spark, files, extract),
        )
        queries, vectors = queries_from_rows(
            built, rows, labels=rows["path"].tolist(), source="the query files"
        )
        kind = "audio"
    probes = None if exact else probes or built.manifest["probes"]
    ok = queries["status"] == "ok"
    log.info("searching %d queries (%s)", len(vectors), "exact" if exact else f"{probes} probes")
    found, search_s = timed_search(
        spark,
        built,
        vectors,
        k=k,
        probes=probes,
        track_ids=queries.loc[ok, "query_track_id"].tolist(),
        paths=queries.loc[ok, "query_path"].tolist(),
    )
    rows = result_rows(queries, found)
    with session_settings(spark, {ARROW_ENABLED: "true"}):
        spark.createDataFrame(rows, OUTPUT_SCHEMA).write.mode(
            "overwrite" if overwrite else "errorifexists"
        ).parquet(output)
    failed = queries.loc[~ok, "error_reason"].fillna("error").value_counts()
    return {
        "job": "similar",
        "mode": "query",
        "index": built.path,
        "input": kind,
        "queries": len(queries),
        "ok": int(ok.sum()),
        "errors": {str(reason): int(n) for reason, n in failed.items()},
        "k": k,
        "search": "exact" if exact else f"ivf, {probes} of {len(built.centroids)} lists",
        "rows": len(rows),
        "search_s": round(search_s, 3),
        "output": output,
        "wall_s": round(time.perf_counter() - started, 3),
    }


def format_query(summary: Mapping) -> str:
    """The printed form of :func:`run_query`'s summary."""
    errors = ", ".join(f"{reason} {n}" for reason, n in summary["errors"].items()) or "none"
    return "\n".join(
        [
            f"similar: {summary['queries']} queries ({summary['input']}), {summary['ok']} ok,"
            f" {summary['k']} neighbours each by {summary['search']} search in"
            f" {summary['search_s']:.1f} s; {summary['wall_s']:.1f} s in all",
            f"  errors  {errors}",
            f"  output  {summary['output']} ({summary['rows']} rows)",
        ]
    )
