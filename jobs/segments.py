"""Genre timeline job: the genre of successive windows of each audio file, and pages to play them.

python jobs/segments.py --model out/model --input sample/fma_full --output out/timeline
spark-submit jobs/segments.py --config conf/emr.toml --model s3a://bucket/model \
    --input s3a://bucket/fma_full --output s3a://bucket/timeline --max-pages 0
"""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import SparkSession

from fmagenre.extraction.driver import session_conf
from fmagenre.platform.config import Config
from fmagenre.platform.jobs import (
    hadoop_path,
    job_parser,
    non_negative_int,
    positive_float,
    positive_int,
    run_job,
)
from fmagenre.timeline.segments import SPLITS, SegmentOptions, format_summary, run


def make_parser() -> argparse.ArgumentParser:
    parser = job_parser(
        "segments",
        "Cut every audio file under the inputs into windows of WINDOW seconds every HOP"
        " seconds (the last one ends at the track's end; a file shorter than a window is one"
        " window), compute FMA's 518 features of each window and of the whole track from"
        " one decoding, and classify them all with the ensemble saved by jobs/train.py."
        " Writes OUTPUT/windows (Parquet, a row per window: genre, each model's vote and"
        " scores), OUTPUT/tracks (a row per file: the genre of most windows, each genre's"
        " share, the whole-track genre), OUTPUT/report.md and OUTPUT/pages/index.html with a"
        " page per file that plays it beside its genre timeline. A file that cannot be"
        " analysed gets one error row, and the job goes on.",
        notes="Audio extraction settings (glob, max_duration, fma_compat, timeouts) come from"
        " the configuration's [extract] section. Pages link to local audio by relative path;"
        " for audio on S3 or HDFS pass --embed-audio, or the page shows the timeline only.",
    )
    parser.add_argument(
        "--model",
        type=hadoop_path,
        metavar="MODEL_DIR",
        help="output directory of jobs/train.py; leave it out with --keep-features to write"
        " the windows' features only (the rows of jobs/train.py --windows)",
    )
    parser.add_argument(
        "--input",
        type=hadoop_path,
        required=True,
        nargs="+",
        metavar="PATH",
        help="directories searched recursively or files (local, file://, hdfs://, s3a://)",
    )
    parser.add_argument(
        "--output", type=hadoop_path, required=True, metavar="DIR", help="directory to create"
    )
    parser.add_argument(
        "--window",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="window length (default %(default)s)",
    )
    parser.add_argument(
        "--hop",
        type=positive_float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between window starts, at most the window (default %(default)s)",
    )
    parser.add_argument(
        "--labels",
        type=hadoop_path,
        metavar="PATH",
        help="label table (jobs/prepare_labels.py): the report then scores the windows and"
        " tracks against their genres",
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="all",
        help="with --labels, the tracks scored (default %(default)s)",
    )
    parser.add_argument(
        "--keep-features",
        action="store_true",
        help="keep the 518 feature columns in OUTPUT/windows",
    )
    parser.add_argument(
        "--max-pages",
        type=non_negative_int,
        default=1000,
        metavar="N",
        help="write pages for at most N files (first by path), 0 for no pages (default"
        " %(default)s); the index lists every file",
    )
    parser.add_argument(
        "--embed-audio",
        action="store_true",
        help="put each file's audio in its page (base64) instead of a relative link",
    )
    parser.add_argument(
        "--similar",
        type=hadoop_path,
        metavar="INDEX",
        help="index of jobs/similar.py: each page lists the file's nearest indexed tracks"
        " (linked to their pages where written), also written to OUTPUT/similar as"
        " jobs/similar.py's query rows",
    )
    parser.add_argument(
        "--similar-k",
        type=positive_int,
        default=10,
        metavar="K",
        help="nearest tracks per file with --similar (default %(default)s)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    return parser


def segments(spark: SparkSession, args: argparse.Namespace, config: Config) -> None:
    options = SegmentOptions(
        window=args.window,
        hop=args.hop,
        labels=args.labels,
        split=args.split,
        keep_features=args.keep_features,
        max_pages=args.max_pages,
        embed_audio=args.embed_audio,
        similar=args.similar,
        similar_k=args.similar_k,
        overwrite=args.overwrite,
    )
    summary = run(
        spark,
        model_dir=args.model,
        inputs=args.input,
        output=args.output,
        options=options,
        extract=config.extract,
    )
    print(format_summary(summary))


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one."""
    return run_job(
        make_parser(),
        segments,
        argv,
        spark=spark,
        spark_conf=lambda config: session_conf(config.spark, config.extract),
    )


if __name__ == "__main__":
    sys.exit(main())
