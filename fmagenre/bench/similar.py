"""Similarity search: index build time, IVF against exact search, recall@10, side by side.

``python -m fmagenre.bench similar`` writes generated feature tables of each ``--sizes``
(518 columns, the thesis' 16 genres: :mod:`fmagenre.synthetic.feature_tables`), builds the
index of each (:func:`fmagenre.similarity.index.build_index`) in one local session, and
searches the ``k`` nearest tracks of ``--queries`` indexed tracks (each excluded from its own
neighbours) exactly (every list scanned, matrix products in the Python workers) and with IVF
for each ``--probes``, alternating, ``--rounds`` times; the faster round of each is reported,
and recall@k against the exact search. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time

import numpy as np

from fmagenre.bench import training_session
from fmagenre.platform.jobs import comma_list, int_range, non_negative_int, positive_int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fmagenre.bench similar",
        description="Build time, queries per second and recall@k of the similarity index's IVF"
        " search against exact search, on generated 518-column feature tables in Spark"
        " local mode.",
    )
    parser.add_argument(
        "--sizes",
        type=comma_list(int_range(100)),
        default=[10_000, 100_000],
        help="tracks of each table, comma-separated (default 10000,100000)",
    )
    parser.add_argument(
        "--queries", type=positive_int, default=1000, help="queries (default %(default)s)"
    )
    parser.add_argument(
        "--probes",
        type=comma_list(positive_int),
        default=[24, 32],
        help="IVF lists probed, comma-separated: one row each (default 24,32)",
    )
    parser.add_argument(
        "--lists", type=non_negative_int, default=0, help="IVF lists; 0: sqrt(tracks) (default)"
    )
    parser.add_argument(
        "--pca", type=non_negative_int, default=0, help="principal components; 0: none (default)"
    )
    parser.add_argument("--k", type=positive_int, default=10, help="default %(default)s")
    parser.add_argument("--rounds", type=positive_int, default=2, help="default %(default)s")
    parser.add_argument(
        "--separation",
        type=float,
        default=0.05,
        help="spread of the genre means in noise units (default %(default)s)",
    )
    parser.add_argument("--master", default="local[2]", help="default %(default)s")
    parser.add_argument("--driver-memory", default="6g", help="default %(default)s")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  " + "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    from pyspark.sql import functions as F

    from fmagenre.audio.names import flat_names
    from fmagenre.similarity.evaluation import recall_at_k
    from fmagenre.similarity.index import build_index, read_index
    from fmagenre.similarity.search import timed_search
    from fmagenre.synthetic.feature_tables import THESIS_GENRE_SHARES, write_synthetic_tables

    spark = training_session(
        "fmagenre-bench-similar",
        master=args.master,
        driver_memory=args.driver_memory,
        progress=False,
    )
    load_before = " ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"bench similar: {args.master}, {os.cpu_count()} CPUs, 518 columns"
        f"{f', PCA {args.pca}' if args.pca else ''}, {args.queries} queries of k = {args.k},"
        f" best of {args.rounds} alternating rounds",
        flush=True,
    )
    header = ["tracks", "dims", "lists", "build s", "search", "probes", "s", "q/s", "vs exact"]
    header.append(f"recall@{args.k}")
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-similar-") as tmp:
            started = time.perf_counter()
            features, labels = write_synthetic_tables(
                tmp,
                rows=size,
                genre_shares=THESIS_GENRE_SHARES,
                separation=args.separation,
                seed=args.seed,
            )
            generated = time.perf_counter() - started
            started = time.perf_counter()
            build_index(
                spark,
                features=features,
                output=f"{tmp}/index",
                name="mir",
                columns=flat_names(),
                pca=args.pca,
                labels=labels,
                lists=args.lists,
                seed=args.seed,
            )
            built = time.perf_counter() - started
            index = read_index(spark, f"{tmp}/index")
            chosen = (
                index.tracks(spark)
                .orderBy(F.xxhash64("track_id", F.lit(args.seed)))
                .limit(args.queries)
                .select("track_id", "path", "vector")
                .toPandas()
            )
            vectors = np.stack(chosen["vector"].to_numpy()).astype(np.float32)
            options = {
                "k": args.k,
                "track_ids": chosen["track_id"].tolist(),
                "paths": chosen["path"].tolist(),
            }
            lists = index.lists(spark).cache()
            lists.count()
            timed_search(spark, index, vectors[:1], k=args.k, probes=None, lists=lists)
            best: dict = {}
            found: dict = {}
            for _ in range(args.rounds):
                for probes in [None, *args.probes]:
                    result, seconds = timed_search(
                        spark, index, vectors, probes=probes, lists=lists, **options
                    )
                    found[probes] = result
                    best[probes] = min(seconds, best.get(probes, seconds))
            lists.unpersist()
            print(
                f"  {size} tracks: generated in {generated:.1f} s, index built in {built:.1f} s",
                flush=True,
            )
            for probes in [None, *args.probes]:
                seconds = best[probes]
                rows.append(
                    [
                        str(size),
                        str(index.space.dim),
                        str(len(index.centroids)),
                        f"{built:.1f}",
                        "exact" if probes is None else "ivf",
                        "all" if probes is None else str(probes),
                        f"{seconds:.2f}",
                        f"{len(vectors) / seconds:.0f}",
                        f"{best[None] / seconds:.1f}x",
                        f"{recall_at_k(found[probes], found[None]):.3f}",
                    ]
                )
    spark.stop()
    print(f"load average {load_before} -> {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    _table(header, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
