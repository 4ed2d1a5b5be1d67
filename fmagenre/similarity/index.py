"""The similarity index on storage: build it from a feature table, read it back.

Layout of an index directory (any Hadoop path)::

    INDEX/manifest.json   the space (columns, standardisation, PCA), the extractor versions
                          of the table, the IVF parameters and centroids, counts, genres
    INDEX/network/        with a network in the space: a copy of it (jobs/train_cnn.py's
                          files), which places the queries
    INDEX/tracks/         Parquet, a row per indexed track: track_id, path, genre (from
                          --labels, else null), vector (float32 array), cluster
    INDEX/lists/          Parquet, a row per cluster (its inverted list): cluster, size,
                          track_ids, paths, genres, vectors (the float32 rows, C order, as bytes)

The search reads ``lists``: a cluster's vectors travel as one binary value, which Spark moves
to the Python workers without a per-float conversion, and an IVF query reads only the clusters
it probes. The index is an IVF (inverted file) index: k-means places ``lists`` centroids on
a sample of at most :data:`TRAIN_PER_LIST` vectors per centroid, every track goes to its
nearest centroid's list (in the executors). As FAISS trains its coarse quantiser, k-means runs
in one process, on the driver: scikit-learn's, seeded by k-means++. Spark ML's ``KMeans``
(k-means||) left lists of very unequal sizes (100,000 generated tracks, 316 lists: sizes 1 to
940, coefficient of variation 0.91, against 0.23), so that a query probing 32 lists scanned
18% of the tracks instead of 10%: a query is likeliest to probe the largest lists.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sklearn.cluster import KMeans

from fmagenre.audio.names import network_names
from fmagenre.network.inference import (
    add_embeddings,
    copy_network,
    load_network,
    require_network_patches,
)
from fmagenre.platform.hadoop import hadoop_fs, path_exists, read_bytes, write_json
from fmagenre.platform.session import session_settings
from fmagenre.similarity.space import (
    SimilarityError,
    Space,
    feature_matrix,
    fit_space,
)
from fmagenre.tables.inputs import read_feature_rows, read_labels
from fmagenre.tables.label_table import ARROW_ENABLED

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
TRACKS = "tracks"
LISTS = "lists"
STAGING = "_staging"
EMBEDDED = "_embedded"
FORMAT = 1
#: At most this many vectors per centroid train k-means (FAISS warns under 39).
TRAIN_PER_LIST = 64
#: Fewest lists probed by default by an IVF query (more on large indexes: :func:`default_probes`).
MIN_PROBES = 24
KMEANS_ITERATIONS = 20


@dataclass(frozen=True, eq=False)
class Index:
    """An index directory's manifest, read.

    Attributes
    ----------
    path : str
        The directory.
    space : Space
    centroids : numpy.ndarray
        ``lists x dim`` float32.
    list_sizes : numpy.ndarray
        Tracks per list.
    manifest : dict
        Everything else of the manifest (``features``, ``extractor_versions``, ``probes``,
        ``counts``, ``genres``...).
    """

    path: str
    space: Space
    centroids: np.ndarray
    list_sizes: np.ndarray
    manifest: dict

    @property
    def size(self) -> int:
        """Tracks in the index."""
        return int(self.list_sizes.sum())

    def lists(self, spark: SparkSession) -> DataFrame:
        """The inverted lists, a row per cluster."""
        return spark.read.parquet(f"{self.path}/{LISTS}")

    def tracks(self, spark: SparkSession) -> DataFrame:
        """The indexed tracks, a row each."""
        return spark.read.parquet(f"{self.path}/{TRACKS}")


def manifest_json(index: Index) -> dict:
    """The manifest of ``index`` as written to ``manifest.json``."""
    return {
        **index.manifest,
        "format": FORMAT,
        "space": index.space.to_json(),
        "ivf": {
            "lists": len(index.centroids),
            "centroids": index.centroids.tolist(),
            "sizes": index.list_sizes.tolist(),
        },
    }


def index_from_json(path: str, data: Mapping) -> Index:
    """The inverse of :func:`manifest_json`."""
    if data.get("format") != FORMAT:
        raise SimilarityError(
            f"{path} holds an index of format {data.get('format')}, this version reads format"
            f" {FORMAT}: build it again with jobs/similar.py --features"
        )
    rest = {key: value for key, value in data.items() if key not in ("format", "space", "ivf")}
    ivf = data["ivf"]
    return Index(
        path=path,
        space=Space.from_json(data["space"]),
        centroids=np.asarray(ivf["centroids"], dtype=np.float32).reshape(ivf["lists"], -1),
        list_sizes=np.asarray(ivf["sizes"], dtype=np.int64),
        manifest=rest,
    )


def read_index(spark: SparkSession, path: str, *, option: str = "--index") -> Index:
    """The index at ``path``.

    Raises
    ------
    SimilarityError
        When ``path`` holds no index (or one this version cannot read).
    """
    path = path.rstrip("/")
    try:
        data = json.loads(read_bytes(spark, f"{path}/{MANIFEST}"))
    except FileNotFoundError:
        raise SimilarityError(
            f"{option} {path} is not a similarity index (no {MANIFEST}): build one with"
            " jobs/similar.py --features TABLE --output INDEX"
        ) from None
    return index_from_json(path, data)


def prepare_output(spark: SparkSession, output: str, *, overwrite: bool) -> None:
    """Make way for an index at ``output``: refuse an existing one unless ``overwrite``,
    never delete a directory that is not an index."""
    if not path_exists(spark, output):
        return
    if not overwrite:
        raise FileExistsError(f"{output} already exists: pass --overwrite to replace it")
    if not path_exists(spark, f"{output}/{MANIFEST}"):
        raise SimilarityError(
            f"{output} exists and is not a similarity index: choose a new directory"
        )
    fs, root = hadoop_fs(spark, output)
    fs.delete(root, True)


def nearest_centroids(vectors: np.ndarray, centroids: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` nearest centroids of each vector, nearest first (``rows x count``)."""
    distances = (
        -2.0 * (vectors @ centroids.T) + (centroids.astype(np.float64) ** 2).sum(axis=1)[None, :]
    )
    count = min(count, len(centroids))
    if count < len(centroids):
        near = np.argpartition(distances, count - 1, axis=1)[:, :count]
    else:
        near = np.broadcast_to(np.arange(len(centroids)), distances.shape)
    order = np.take_along_axis(distances, near, axis=1).argsort(axis=1, kind="stable")
    return np.take_along_axis(near, order, axis=1)


def _vectors(batches: Iterator[pa.RecordBatch], space: Space):
    for batch in batches:
        vectors, has = space.vectors(feature_matrix(batch, space.columns))
        keep = np.flatnonzero(has)
        flat = pa.array(vectors[keep].reshape(-1), type=pa.float32())
        offsets = pa.array(np.arange(len(keep) + 1, dtype=np.int32) * space.dim)
        yield pa.RecordBatch.from_arrays(
            [
                batch.column("track_id").take(keep),
                batch.column("path").take(keep),
                pa.ListArray.from_arrays(offsets, flat),
            ],
            names=["track_id", "path", "vector"],
        )


def _assign(batches: Iterator[pa.RecordBatch], centroids: np.ndarray, dim: int):
    for batch in batches:
        vectors = batch.column("vector").flatten().to_numpy().reshape(-1, dim)
        cluster = nearest_centroids(vectors, centroids, 1)[:, 0].astype(np.int32)
        yield batch.append_column("cluster", pa.array(cluster))


def _inverted_list(key, rows):
    """One cluster's rows as its inverted list (a row)."""
    rows = rows.sort_values(["track_id", "path"], na_position="last")
    vectors = np.stack(rows["vector"].to_numpy()).astype(np.float32)
    return pd.DataFrame(
        {
            "cluster": [int(key[0])],
            "size": [len(rows)],
            "track_ids": [rows["track_id"].tolist()],
            "paths": [rows["path"].tolist()],
            "genres": [rows["genre"].tolist()],
            "vectors": [np.ascontiguousarray(vectors).tobytes()],
        }
    )


LIST_SCHEMA = (
    "cluster int, size long, track_ids array<long>, paths array<string>,"
    " genres array<string>, vectors binary"
)


def train_centroids(staged: DataFrame, *, indexed: int, lists: int, seed: int) -> np.ndarray:
    """``lists x dim`` float32 k-means centroids of a sample of the ``vector`` column of
    ``staged`` (at most :data:`TRAIN_PER_LIST` rows per list), on the driver."""
    sample = staged
    if indexed > TRAIN_PER_LIST * lists:
        sample = staged.sample(fraction=TRAIN_PER_LIST * lists / indexed, seed=seed)
    with session_settings(staged.sparkSession, {ARROW_ENABLED: "true"}):
        vectors = sample.select("vector").toPandas()["vector"]
    points = np.stack(vectors.to_numpy()).astype(np.float32)
    lists = min(lists, len(points))
    model = KMeans(lists, init="k-means++", n_init=1, max_iter=KMEANS_ITERATIONS, random_state=seed)
    return model.fit(points).cluster_centers_.astype(np.float32)


def default_lists(tracks: int) -> int:
    """Lists of an index of ``tracks``: about the square root (at least 1)."""
    return max(1, round(math.sqrt(tracks)))


def default_probes(lists: int) -> int:
    """Lists an IVF query probes by default: a tenth of them, at least :data:`MIN_PROBES`
    (measured with ``python -m fmagenre.bench similar``: recall@10 0.926 at 100,000
    generated tracks, 316 lists, 32 probes, 0.892 at 24; 0.898 at 10,000 tracks, 100 lists,
    16 probes, 0.981 at 32)."""
    return min(lists, max(MIN_PROBES, math.ceil(lists / 10)))


def build_index(
    spark: SparkSession,
    *,
    features: str,
    output: str,
    name: str,
    columns: Sequence[str],
    families: Sequence[str] | None = None,
    pca: int = 0,
    labels: str | None = None,
    lists: int = 0,
    probes: int = 0,
    seed: int = 0,
    network: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Build the index of every ``ok`` row of a feature table; return a summary.

    Parameters
    ----------
    spark : SparkSession
    features : str
        Feature table or Parquet (any Hadoop path).
    output : str
        The index directory to write.
    name : str
        The space's name (its families as given).
    columns : sequence of str
        Its feature columns (the network's are added with ``network``).
    families : sequence of str or None
        The families asked for, kept in the manifest; None: the 518 MIR columns.
    pca : int
        0, or the principal components to keep.
    labels : str or None
        A label table: each track's ``genre_top`` goes to the index.
    lists : int
        IVF lists (k-means centroids); 0: :func:`default_lists` of the tracks.
    probes : int
        Lists an IVF query probes by default (the query may say otherwise); 0:
        :func:`default_probes` of the lists.
    seed : int
        Of k-means.
    network : str or None
        A spectrogram network's model directory (jobs/train_cnn.py): its last hidden layer,
        each track's mean over the ``patches`` of the table, joins the space
        (:func:`~fmagenre.audio.names.network_names`); the index keeps a copy of the network
        (``INDEX/network``) to place its queries.
    overwrite : bool
        Replace an existing index.

    Raises
    ------
    fmagenre.tables.inputs.InputTableError
        On a missing or unreadable table, or one that lacks the columns.
    EmptySpaceError
        When no ``ok`` row has a value in the columns.
    SimilarityError
        On bad ``pca``, ``lists`` or ``probes``, or an output that is not an index.
    FileExistsError
        When ``output`` exists and ``overwrite`` is false.
    """
    started = time.perf_counter()
    if lists < 0 or probes < 0:
        raise SimilarityError("--lists and --probes must be at least 0 (0: automatic)")
    output = output.rstrip("/")
    model = None if network is None else load_network(spark, network, option="--network")
    prepare_output(spark, output, overwrite=overwrite)
    needed = ("path", *columns, *(() if model is None else ("patches",)))
    rows = read_feature_rows(spark, features, option="--features", columns=needed)
    total = rows.count()
    ok = rows.where(F.col("status") == "ok") if "status" in rows.columns else rows
    if "track_id" not in ok.columns:
        ok = ok.withColumn("track_id", F.lit(None).cast("long"))
    if model is not None:
        require_network_patches(ok, model, source=features)
        log.info("the network's last hidden layer of each track (%s)", network)
        keys = [name for name in ("track_id", "path", "extractor_version") if name in ok.columns]
        embedded = add_embeddings(model, ok.select(*keys, *columns, "patches")).drop("patches")
        embedded.write.parquet(f"{output}/{EMBEDDED}")
        ok = spark.read.parquet(f"{output}/{EMBEDDED}")
        columns = (*columns, *network_names(model.embedding_width))
        copy_network(spark, network, output)
    versions = []
    if "extractor_version" in ok.columns:
        found = ok.select("extractor_version").distinct().collect()
        versions = sorted(row[0] for row in found if row[0] is not None)
    log.info("fitting the space %s (%d columns, pca %d) on %s", name, len(columns), pca, features)
    space, counts = fit_space(ok, name=name, columns=columns, pca=pca, source=features)
    vectors = ok.select("track_id", "path", *space.columns).mapInArrow(
        partial(_vectors, space=space), "track_id long, path string, vector array<float>"
    )
    if labels is not None:
        genres = read_labels(spark, labels, columns=("track_id", "genre_top"))
        vectors = vectors.join(
            genres.select("track_id", F.col("genre_top").alias("genre")), "track_id", "left"
        )
    else:
        vectors = vectors.withColumn("genre", F.lit(None).cast("string"))
    staging = f"{output}/{STAGING}"
    vectors.write.mode("overwrite").parquet(staging)
    staged = spark.read.parquet(staging)
    indexed = staged.count()
    lists = min(lists or default_lists(indexed), indexed)
    probes = probes or default_probes(lists)
    log.info("k-means: %d lists over %d tracks (%d dimensions)", lists, indexed, space.dim)
    centroids = train_centroids(staged, indexed=indexed, lists=lists, seed=seed)
    log.info("assigning %d tracks to %d lists", indexed, len(centroids))
    schema = "track_id long, path string, vector array<float>, genre string, cluster int"
    tracks = staged.select("track_id", "path", "vector", "genre").mapInArrow(
        partial(_assign, centroids=centroids, dim=space.dim), schema
    )
    tracks.write.parquet(f"{output}/{TRACKS}")
    tracks = spark.read.parquet(f"{output}/{TRACKS}")
    files = max(1, 2 * spark.sparkContext.defaultParallelism)
    (
        tracks.groupBy("cluster")
        .applyInPandas(_inverted_list, LIST_SCHEMA)
        .repartition(files)
        .write.parquet(f"{output}/{LISTS}")
    )
    sizes = np.zeros(len(centroids), dtype=np.int64)
    for row in tracks.groupBy("cluster").count().collect():
        sizes[row.cluster] = row["count"]
    genres = None
    if labels is not None:
        genres = {
            row.genre or "(none)": row["count"]
            for row in tracks.groupBy("genre").count().orderBy(F.desc("count")).collect()
        }
    for temporary in (staging, f"{output}/{EMBEDDED}"):
        fs, path = hadoop_fs(spark, temporary)
        fs.delete(path, True)
    index = Index(
        path=output,
        space=space,
        centroids=centroids,
        list_sizes=sizes,
        manifest={
            "features": features,
            "families": None if families is None else list(families),
            "extractor_versions": versions,
            "labels": labels,
            "network": network,
            "genres": genres,
            "probes": probes,
            "kmeans": {
                "trainer": "scikit-learn KMeans, k-means++, on the driver",
                "iterations": KMEANS_ITERATIONS,
                "seed": seed,
                "train_per_list": TRAIN_PER_LIST,
            },
            "counts": {
                "rows": total,
                "ok": counts["rows"],
                "no_values": counts["no_values"],
                "indexed": indexed,
            },
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    write_json(spark, f"{output}/{MANIFEST}", manifest_json(index))
    return {
        "job": "similar",
        "mode": "build",
        "index": output,
        "space": name,
        "columns": len(space.columns),
        "dim": space.dim,
        "rows": total,
        "indexed": indexed,
        "no_values": counts["no_values"],
        "lists": len(centroids),
        "probes": probes,
        "genres": genres,
        "wall_s": round(time.perf_counter() - started, 3),
    }


def format_build(summary: Mapping) -> str:
    """The printed form of :func:`build_index`'s summary."""
    genres = summary["genres"]
    lines = [
        f"similar: indexed {summary['indexed']} of {summary['rows']} rows ({summary['space']}:"
        f" {summary['columns']} columns, {summary['dim']} dimensions), {summary['lists']} IVF"
        f" lists, {summary['probes']} probed by default, in {summary['wall_s']:.1f} s",
    ]
    if summary["no_values"]:
        lines.append(f"  left out {summary['no_values']} ok rows without a value in the space")
    if genres:
        lines.append("  genres  " + ", ".join(f"{g} {n}" for g, n in genres.items()))
    lines.append(f"  index   {summary['index']}")
    return "\n".join(lines)
