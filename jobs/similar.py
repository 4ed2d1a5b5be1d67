"""Similarity job: build an index of tracks, find the tracks like some queries, evaluate it.

python jobs/similar.py --features out/features --labels out/labels --output out/index
python jobs/similar.py --index out/index --query new.mp3 more_mp3s/ --output out/similar
python jobs/similar.py --index out/index --query-tracks 2,5 --k 5 --output out/similar2
python jobs/similar.py --features out/features --evaluate --labels out/labels \
    --spaces mfcc mfcc,spectral_contrast --output out/similar_report
python jobs/similar.py --features out/features --families network --network out/cnn \
    --labels out/labels --output out/index_network
"""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import SparkSession

from fmagenre.audio.feature_sets import family_columns
from fmagenre.audio.names import NETWORK, flat_names
from fmagenre.extraction.driver import session_conf
from fmagenre.platform.config import Config
from fmagenre.platform.jobs import (
    comma_list,
    hadoop_path,
    job_parser,
    non_negative_int,
    positive_int,
    run_job,
)
from fmagenre.similarity.evaluation import format_evaluation, run_evaluation
from fmagenre.similarity.index import MIN_PROBES, build_index, format_build
from fmagenre.similarity.search import format_query, run_query
from fmagenre.similarity.space import SimilarityError

#: The space of the 518 MIR columns, when no --families is given.
ALL_MIR = "mir"


def make_parser() -> argparse.ArgumentParser:
    parser = job_parser(
        "similar",
        "Tracks like this one. Build: --features TABLE --output INDEX indexes every ok row"
        " (standardised feature vectors, optional PCA, an IVF index of k-means lists). Query:"
        " --index INDEX with --query (audio files or folders, features extracted on the fly"
        " with the configuration's [extract] settings), --query-tracks (track ids of the"
        " index) or --query-table (a feature table's rows) writes Parquet to --output: per"
        " query its k nearest tracks (query, rank, track_id, path, genre, distance), or one"
        " row with a null rank and its error. Evaluate: --evaluate --labels LABELS (--index"
        " INDEX, or --features TABLE --spaces ...) writes report.md and report.json to"
        " --output: recall@k of the IVF search against the exact one, genre precision@k,"
        " queries per second.",
    )
    parser.add_argument(
        "--features", type=hadoop_path, metavar="TABLE", help="feature table or Parquet to index"
    )
    parser.add_argument(
        "--families",
        type=comma_list(),
        metavar="FAMILY,...",
        help="feature families of the space: mir (the 518 MIR columns, the default), musicnn"
        " (the pretrained network's 450: a table extracted with --families mir,musicnn),"
        " network (the last hidden layer of --network, from the table's patches: extracted"
        " with --patches), combinations (mir,musicnn, mir,network), or MIR families (e.g."
        " mfcc,spectral_contrast)",
    )
    parser.add_argument(
        "--network",
        type=hadoop_path,
        metavar="MODEL_DIR",
        help="the spectrogram network (jobs/train_cnn.py's output) of the family network",
    )
    parser.add_argument(
        "--pca",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="project the standardised vectors on N principal components (default: none)",
    )
    parser.add_argument(
        "--lists",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="IVF lists (k-means centroids); default 0: the square root of the tracks",
    )
    parser.add_argument(
        "--probes",
        type=positive_int,
        metavar="N",
        help="lists an IVF query probes (default: the index's; when built, a tenth of the"
        f" lists, at least {MIN_PROBES})",
    )
    parser.add_argument(
        "--labels",
        type=hadoop_path,
        metavar="LABELS",
        help="label table: the tracks' genres in the index; the test split for --evaluate",
    )
    parser.add_argument("--index", type=hadoop_path, metavar="INDEX", help="index to query")
    parser.add_argument(
        "--query",
        type=hadoop_path,
        nargs="+",
        default=[],
        metavar="PATH",
        help="audio files or folders (searched recursively for the [extract] glob)",
    )
    parser.add_argument(
        "--query-tracks",
        type=comma_list(non_negative_int),
        default=[],
        metavar="ID,...",
        help="track ids of the index",
    )
    parser.add_argument(
        "--query-table", type=hadoop_path, metavar="TABLE", help="feature table whose rows query"
    )
    parser.add_argument(
        "--k", type=positive_int, default=10, help="neighbours per query (default %(default)s)"
    )
    parser.add_argument("--exact", action="store_true", help="exact search instead of IVF")
    parser.add_argument("--evaluate", action="store_true", help="evaluate instead of querying")
    parser.add_argument(
        "--spaces",
        nargs="+",
        type=comma_list(),
        default=[],
        metavar="FAMILY,...",
        help="with --evaluate --features: spaces to compare, each its own index (e.g. mir"
        " musicnn mir,musicnn)",
    )
    parser.add_argument(
        "--max-queries",
        type=positive_int,
        default=1000,
        metavar="N",
        help="test tracks --evaluate queries at most (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="of k-means and the query sample")
    parser.add_argument(
        "--output", type=hadoop_path, required=True, metavar="PATH", help="what to write"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    return parser


def space(families: list[str] | None) -> tuple[str, tuple[str, ...], list[str] | None]:
    """(name, columns, families) of ``--families``/a ``--spaces`` value; the network's
    columns are not among the columns (the index adds them)."""
    if families is None:
        return ALL_MIR, flat_names(), None
    others = [family for family in families if family != NETWORK]
    return ",".join(families), family_columns(others) if others else (), families


def network_of(args: argparse.Namespace, families: list[str] | None) -> str | None:
    """``--network`` where the families ask for it, checked."""
    if NETWORK not in (families or ()):
        if args.network:
            raise SimilarityError("--network goes with --families network (or mir,network...)")
        return None
    if not args.network:
        raise SimilarityError("the family network needs --network MODEL_DIR (jobs/train_cnn.py)")
    return args.network


def similar(spark: SparkSession, args: argparse.Namespace, config: Config) -> None:
    queried = bool(args.query or args.query_tracks or args.query_table)
    if args.evaluate:
        if not args.labels:
            raise SimilarityError("--evaluate needs --labels (its test split are the queries)")
        spaces = [space(families) for families in args.spaces]
        if args.features and not spaces:
            spaces = [space(args.families)]
        if args.network and not any(NETWORK in (s[2] or ()) for s in spaces):
            raise SimilarityError("--network goes with a space of the family network")
        report = run_evaluation(
            spark,
            output=args.output,
            labels=args.labels,
            index=args.index,
            features=args.features,
            spaces=spaces,
            pca=args.pca,
            lists=args.lists,
            k=args.k,
            probes=args.probes,
            max_queries=args.max_queries,
            seed=args.seed,
            network=args.network,
            overwrite=args.overwrite,
        )
        print(format_evaluation(report))
    elif args.index:
        if not queried:
            raise SimilarityError("--index needs queries: --query, --query-tracks or --query-table")
        summary = run_query(
            spark,
            index=args.index,
            output=args.output,
            audio=args.query,
            track_ids=args.query_tracks,
            table=args.query_table,
            k=args.k,
            probes=args.probes,
            exact=args.exact,
            columns=(
                None
                if args.families is None or NETWORK in args.families
                else space(args.families)[1]
            ),
            extract=config.extract,
            overwrite=args.overwrite,
        )
        print(format_query(summary))
    elif args.features:
        if queried:
            raise SimilarityError("queries go to an index: give --index, not --features")
        name, columns, families = space(args.families)
        network = network_of(args, families)
        summary = build_index(
            spark,
            features=args.features,
            output=args.output,
            name=name,
            columns=columns,
            families=families,
            pca=args.pca,
            labels=args.labels,
            lists=args.lists,
            probes=args.probes or 0,
            seed=args.seed,
            network=network,
            overwrite=args.overwrite,
        )
        print(format_build(summary))
    else:
        raise SimilarityError(
            "give --features TABLE to build an index, --index INDEX with queries to search"
            " it, or --evaluate"
        )


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one."""
    return run_job(
        make_parser(),
        similar,
        argv,
        spark=spark,
        spark_conf=lambda config: session_conf(config.spark, config.extract),
    )


if __name__ == "__main__":
    sys.exit(main())
