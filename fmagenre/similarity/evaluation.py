"""How good and how fast an index is: recall of the IVF search against the exact one, genre
precision, queries per second; for one index, or for several spaces built on the fly.

The queries are the indexed tracks of the label table's test split (at most ``max_queries``,
a fixed pseudo-random choice), each excluded from its own neighbours. Per query, recall@k is
the share of its exact ``k`` nearest that the IVF search finds, and genre precision@k the
share of its ``k`` neighbours whose genre (the label table's) is its own; both are averaged
over the queries. Queries per second are the queries over the wall time of one search of all
of them (a Spark job, the driver's merge included), after a one-query search that starts the
Python workers; both searches read the same cached lists.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from fmagenre.audio.names import NETWORK
from fmagenre.errors import InputError
from fmagenre.platform.hadoop import path_exists, write_output
from fmagenre.platform.session import session_settings
from fmagenre.similarity.index import Index, build_index, read_index
from fmagenre.similarity.search import timed_search
from fmagenre.similarity.space import SimilarityError
from fmagenre.tables.inputs import read_labels
from fmagenre.tables.label_table import ARROW_ENABLED

log = logging.getLogger(__name__)

REPORT_MD = "report.md"
REPORT_JSON = "report.json"
INDEXES = "indexes"


def recall_at_k(approximate: pd.DataFrame, exact: pd.DataFrame) -> float:
    """Mean over the queries of the share of their exact neighbours the other search found
    (frames of :func:`fmagenre.similarity.search.search`)."""

    def sets(found):
        keys = zip(found["q"], found["track_id"].astype(object), found["path"], strict=True)
        result: dict[int, set] = {}
        for q, track, path in keys:
            result.setdefault(q, set()).add((track, path))
        return result

    truth, got = sets(exact), sets(approximate)
    return float(np.mean([len(truth[q] & got.get(q, set())) / len(truth[q]) for q in truth]))


def genre_precision(found: pd.DataFrame, query_genres: Sequence, genres: Mapping) -> float:
    """Mean over the queries of the share of their neighbours of their own genre."""
    theirs = [genres.get(track) for track in found["track_id"].tolist()]
    same = pd.Series(
        [g is not None and g == query_genres[q] for q, g in zip(found["q"], theirs, strict=True)]
    )
    return float(same.groupby(found["q"].to_numpy()).mean().mean())


def evaluate_index(
    spark: SparkSession,
    index: Index,
    *,
    labels: str,
    k: int = 10,
    probes: int | None = None,
    max_queries: int = 1000,
    seed: int = 0,
) -> dict:
    """Recall@k of the IVF search against the exact one, genre precision@k of both, and
    their queries per second, on the test split's tracks.

    Raises
    ------
    SimilarityError
        When no track of the test split is in the index, or on bad ``max_queries``.
    """
    if max_queries < 1:
        raise SimilarityError(f"--max-queries must be at least 1, got {max_queries}")
    probes = probes or index.manifest["probes"]
    table = read_labels(spark, labels)
    genres = {
        row.track_id: row.genre_top for row in table.select("track_id", "genre_top").collect()
    }
    test = table.where(F.col("split") == "test").select("track_id")
    with session_settings(spark, {ARROW_ENABLED: "true"}):
        chosen = (
            index.tracks(spark)
            .join(test, "track_id")
            .dropDuplicates(["track_id"])
            .orderBy(F.xxhash64("track_id", F.lit(seed)))
            .limit(max_queries)
            .select("track_id", "path", "vector")
            .toPandas()
        )
    if chosen.empty:
        raise SimilarityError(
            f"no track of the test split of --labels {labels} is in the index {index.path}:"
            " give the label table of the index's tracks"
        )
    vectors = np.stack(chosen["vector"].to_numpy()).astype(np.float32)
    options = {
        "k": k,
        "track_ids": chosen["track_id"].tolist(),
        "paths": chosen["path"].tolist(),
    }
    lists = index.lists(spark).cache()
    lists.count()
    try:
        timed_search(spark, index, vectors[:1], k=k, probes=None, lists=lists)
        log.info("evaluating %s: %d queries, %d probes", index.path, len(vectors), probes)
        approximate, approximate_s = timed_search(
            spark, index, vectors, probes=probes, lists=lists, **options
        )
        exact, exact_s = timed_search(spark, index, vectors, probes=None, lists=lists, **options)
    finally:
        lists.unpersist()
    query_genres = [genres.get(track) for track in chosen["track_id"].tolist()]
    return {
        "space": index.space.name,
        "index": index.path,
        "columns": len(index.space.columns),
        "dim": index.space.dim,
        "tracks": index.size,
        "lists": len(index.centroids),
        "probes": probes,
        "queries": len(vectors),
        "k": k,
        "recall": round(recall_at_k(approximate, exact), 4),
        "precision_ivf": round(genre_precision(approximate, query_genres, genres), 4),
        "precision_exact": round(genre_precision(exact, query_genres, genres), 4),
        "qps_ivf": round(len(vectors) / approximate_s, 1),
        "qps_exact": round(len(vectors) / exact_s, 1),
        "speedup": round(exact_s / approximate_s, 2),
    }


def run_evaluation(
    spark: SparkSession,
    *,
    output: str,
    labels: str,
    index: str | None = None,
    features: str | None = None,
    spaces: Sequence[tuple[str, Sequence[str], Sequence[str] | None]] = (),
    pca: int = 0,
    lists: int = 0,
    k: int = 10,
    probes: int | None = None,
    max_queries: int = 1000,
    seed: int = 0,
    network: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Evaluate an index, or each space of a feature table (an index built on the fly under
    ``OUTPUT/indexes/SPACE``); write ``report.md`` and ``report.json``; return the report.

    Parameters
    ----------
    spaces : sequence of (name, columns, families)
        With ``features``: the spaces to compare. A space the table has no value in (all-null
        columns) or lacks gets its error in the report instead of figures.
    pca, lists : int
        Of the indexes built (see :func:`fmagenre.similarity.index.build_index`).
    network : str or None
        The network of the spaces whose families include ``network`` (its last hidden layer).

    Raises
    ------
    SimilarityError
        On neither or both of ``index`` and ``features``, or a bad option.
    FileExistsError
        When ``output`` exists and ``overwrite`` is false.
    """
    started = time.perf_counter()
    if (index is None) == (features is None) or (features is not None and not spaces):
        raise SimilarityError("--evaluate needs --index, or --features with spaces to build")
    if not overwrite and path_exists(spark, output):
        raise FileExistsError(f"{output} already exists: pass --overwrite to replace it")
    output = output.rstrip("/")
    options = {"labels": labels, "k": k, "probes": probes, "max_queries": max_queries, "seed": seed}
    results = []
    if index is not None:
        results.append(evaluate_index(spark, read_index(spark, index), **options))
    for name, columns, families in spaces:
        log.info("space %s: building its index", name)
        uses_network = NETWORK in (families or ())
        try:
            if uses_network and network is None:
                raise SimilarityError(
                    f"the space {name} needs --network MODEL_DIR (jobs/train_cnn.py's output)"
                )
            build_index(
                spark,
                features=features,
                output=f"{output}/{INDEXES}/{name}",
                name=name,
                columns=columns,
                families=families,
                pca=pca,
                labels=labels,
                lists=lists,
                probes=probes or 0,
                seed=seed,
                network=network if uses_network else None,
                overwrite=True,
            )
        except (SimilarityError, InputError) as error:
            results.append({"space": name, "error": str(error).splitlines()[0]})
            continue
        built = read_index(spark, f"{output}/{INDEXES}/{name}")
        results.append(evaluate_index(spark, built, **options))
    report = {
        "job": "similar",
        "mode": "evaluate",
        "labels": labels,
        "features": features,
        "pca": pca,
        "spaces": results,
        "output": output,
        "wall_s": round(time.perf_counter() - started, 3),
    }
    write_output(spark, output, REPORT_JSON, json.dumps(report, indent=2) + "\n")
    write_output(spark, output, REPORT_MD, report_markdown(report))
    return report


_HEADER = (
    "space",
    "dims",
    "tracks",
    "lists",
    "probes",
    "queries",
    "recall@k",
    "genre prec. ivf",
    "genre prec. exact",
    "q/s ivf",
    "q/s exact",
    "speed-up",
)


def _cells(result: Mapping) -> list[str]:
    if "error" in result:
        return [result["space"], result["error"]]
    return [
        result["space"],
        str(result["dim"]),
        str(result["tracks"]),
        str(result["lists"]),
        str(result["probes"]),
        str(result["queries"]),
        f"{result['recall']:.3f}",
        f"{result['precision_ivf']:.3f}",
        f"{result['precision_exact']:.3f}",
        f"{result['qps_ivf']:.0f}",
        f"{result['qps_exact']:.0f}",
        f"{result['speedup']:.1f}x",
    ]


def report_markdown(report: Mapping) -> str:
    """``report.md``: a table of the spaces' figures."""
    lines = [
        "# Similarity search: IVF against exact",
        "",
        f"Labels {report['labels']}; queries: tracks of its test split, each excluded from its"
        " own neighbours; k = "
        + ", ".join(sorted({str(r["k"]) for r in report["spaces"] if "k" in r}) or ["-"])
        + ".",
        "",
        "| " + " | ".join(_HEADER) + " |",
        "|" + " --- |" * len(_HEADER),
    ]
    for result in report["spaces"]:
        cells = _cells(result)
        lines.append("| " + " | ".join(cells + [""] * (len(_HEADER) - len(cells))) + " |")
    return "\n".join(lines) + "\n"


def format_evaluation(report: Mapping) -> str:
    """The printed form of :func:`run_evaluation`'s report."""
    lines = [f"similar: evaluated {len(report['spaces'])} space(s) in {report['wall_s']:.1f} s"]
    for result in report["spaces"]:
        if "error" in result:
            lines.append(f"  {result['space']}: {result['error']}")
            continue
        lines.append(
            f"  {result['space']}: recall@{result['k']} {result['recall']:.3f} ({result['probes']}"
            f" of {result['lists']} lists), genre precision {result['precision_ivf']:.3f} ivf /"
            f" {result['precision_exact']:.3f} exact, {result['qps_ivf']:.0f} vs"
            f" {result['qps_exact']:.0f} queries/s ({result['speedup']:.1f}x), {result['queries']}"
            " queries"
        )
    lines.append(f"  report  {report['output']}/{REPORT_MD}")
    return "\n".join(lines)
