"""Feature extraction job: a corpus of audio files to the Parquet feature table.

python jobs/extract_features.py --input fma_full --output out/features
spark-submit jobs/extract_features.py --config conf/emr.toml --input s3a://bucket/fma_full
    --output s3a://bucket/features

Re-running with the same --output extracts only the files without a current 'ok' row. Any
Parquet reader of --output sees one row per file (pandas.read_parquet, spark.read.parquet,
DuckDB's read_parquet('OUTPUT/*.parquet')); fmagenre.tables.feature_table.read_features reads the
same.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from pyspark.sql import SparkSession

from fmagenre.extraction.driver import format_summary, run_extraction, session_conf
from fmagenre.platform.config import Config, override
from fmagenre.platform.jobs import hadoop_path, job_parser, run_job


def make_parser() -> argparse.ArgumentParser:
    parser = job_parser(
        "extract_features",
        "Extract FMA's 518 features of every audio file under the inputs into a Parquet"
        " feature table, one row per file: status 'ok' with the features, or 'error' with"
        " the reason (a crash or hang of the analysis costs that file alone: 'crashed',"
        " 'timeout'). Re-running processes only new files, earlier errors and files whose"
        " size, modification time, extractor version or max-duration/fma-compat/patches"
        " changed; a"
        " killed run loses at most its unpublished chunk. Any Parquet reader of OUTPUT sees"
        " one row per file. Prints a summary, also written as summary.json in the run's"
        " directory.",
        notes="Options left out take their value from --config, else the defaults shown.",
    )
    parser.add_argument(
        "--input",
        type=hadoop_path,
        required=True,
        nargs="+",
        metavar="PATH",
        help="directories searched recursively, files or globs (local, file://, hdfs://, s3a://)",
    )
    parser.add_argument(
        "--output",
        type=hadoop_path,
        required=True,
        metavar="PATH",
        help="feature table directory (any Hadoop path): the current rows in PATH/part-*.parquet,"
        " each run's chunks in PATH/_runs/<run>/",
    )
    parser.add_argument(
        "--glob", help="file-name pattern of the audio files ([extract] glob, default *.mp3)"
    )
    parser.add_argument(
        "--max-duration",
        type=float,
        metavar="SECONDS",
        help="analyse at most this many seconds from the start of each file, 0 for all"
        " ([extract] max_duration, default 600)",
    )
    parser.add_argument(
        "--fma-compat",
        action=argparse.BooleanOptionalAction,
        help="spectral features on FMA's 22,050 Hz axis as FMA's features.csv, or on the"
        " file's true rate with --no-fma-compat ([extract] fma_compat, default on)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="files per Arrow batch sent to a Python worker ([extract] batch_size, default 4)",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        metavar="N",
        help="tasks to spread the files of a chunk over, 0 for 4 x the default parallelism"
        " ([extract] partitions, default 0)",
    )
    parser.add_argument(
        "--chunk-files",
        type=int,
        metavar="N",
        help="files per published chunk: a killed job loses at most one chunk of work"
        " ([extract] chunk_files, default 5000)",
    )
    parser.add_argument(
        "--max-file-mb",
        type=int,
        metavar="MIB",
        help="files larger than this are not read and get error too_large"
        " ([extract] max_file_mb, default 1024, at most 2047)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="BLAS/OpenMP/numba threads per Python worker ([extract] threads, default 1)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="time limit of one file's analysis, after which it gets error 'timeout'; 0 for"
        " 60 s plus 1 s per second of audio analysed ([extract] timeout_s, default 0)",
    )
    parser.add_argument(
        "--patches",
        action=argparse.BooleanOptionalAction,
        help="also write each file's log-mel patches, the spectrogram network's input, in the"
        " same decoding: column 'patches' (16 patches of 96 mel bands x 128 frames, 2.97 s"
        " each, uint8: 192 KiB a track whatever its length, about 150 KiB after Parquet's"
        " snappy compression on generated music; FMA's 106,574 tracks: about 20 GB before"
        " compression), or"
        " 'patch_error' with the reason (too_short, silent, or the file's error); rerunning"
        " with patches redoes files extracted without ([extract] patches, default off)",
    )
    parser.add_argument(
        "--patch-count",
        type=int,
        metavar="N",
        help="patches per track, evenly spaced, 12 KiB each ([extract] patch_count, default 16)",
    )
    parser.add_argument(
        "--families",
        metavar="LIST",
        help="feature families: mir (the 518, always), or mir,musicnn to add the pretrained"
        " musicnn network's 450 columns in the same decoding (mean and std of its 200-value"
        " embedding over 3 s patches, mean of its 50 tag scores; about 1 s of a core per"
        " minute of audio more; 'musicnn_error' says why a file has none, e.g. too_short"
        " under 3 s); rerunning with other families redoes the files ([extract] families,"
        " default mir)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="extract every file again; once done, the table holds this run's rows alone and"
        " the earlier runs are deleted (readers see the earlier rows until then)",
    )
    return parser


def configure(args: argparse.Namespace, config: Config) -> Config:
    """The configuration with the options given over its ``[extract]`` values."""
    extract = override(
        config.extract,
        glob=args.glob,
        max_duration=args.max_duration,
        fma_compat=args.fma_compat,
        batch_size=args.batch_size,
        partitions=args.partitions,
        chunk_files=args.chunk_files,
        max_file_mb=args.max_file_mb,
        threads=args.threads,
        timeout_s=args.timeout,
        patches=args.patches,
        patch_count=args.patch_count,
        families=args.families,
    )
    return dataclasses.replace(config, extract=extract)


def extract(spark: SparkSession, args: argparse.Namespace, config: Config) -> None:
    summary = run_extraction(
        spark,
        inputs=args.input,
        output=args.output,
        config=config.extract,
        overwrite=args.overwrite,
    )
    print(format_summary(summary))


def main(argv: list[str] | None = None, *, spark=None) -> int:
    """Run the job; ``spark`` is an existing session to use instead of building one."""
    return run_job(
        make_parser(),
        extract,
        argv,
        spark=spark,
        configure=configure,
        spark_conf=lambda config: session_conf(config.spark, config.extract),
    )


if __name__ == "__main__":
    sys.exit(main())
