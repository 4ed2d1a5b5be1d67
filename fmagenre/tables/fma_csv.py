"""FMA's ``features.csv`` to and from the feature table.

FMA publishes its features as a CSV with three header rows and an index row::

    feature,chroma_cens,chroma_cens,...,zcr
    statistics,kurtosis,kurtosis,...,std
    number,01,02,...,01
    track_id,,,...,
    2,7.1806526184e+00,5.2303447723e+00,...

which FMA's loader reads with ``pd.read_csv(path, index_col=0, header=[0, 1, 2])``. Values
are written with ``%.10e``; an undefined statistic (the skew of a constant row) is an empty
field, read as NaN.

:func:`import_fma_csv` checks the header (every one of the 518 columns once, in any order) and
every data row, then publishes the rows in the feature table layout with status ``ok``, no
path and ``extractor_version`` :data:`FMA_VERSION`. :func:`export_fma_csv` writes the ``ok``
rows of a feature table back in FMA's layout.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fmagenre.audio.names import N_FEATURES, feature_index, flat_names
from fmagenre.errors import InputError
from fmagenre.platform.session import session_settings
from fmagenre.tables.feature_table import (
    FEATURE_SCHEMA,
    check_output,
    chunk_id,
    drop_runs_before,
    new_run_id,
    open_table,
    publish_chunk,
    refresh_view,
    run_path,
    write_summary,
)
from fmagenre.tables.inputs import ok_rows, read_feature_rows

#: ``extractor_version`` of imported rows.
FMA_VERSION = "fma-features.csv"
#: FMA's number format.
FLOAT_FORMAT = "%.10e"
#: First field of each of the four header rows.
HEADER_LABELS = ("feature", "statistics", "number", "track_id")


class FmaCsvError(InputError, ValueError):
    """A file that is not in FMA's features.csv layout; the message says what is wrong."""


def parse_header(lines: Sequence[str], *, source: str = "features.csv") -> list[int]:
    """Check FMA's four header lines; return where each feature is in a data row.

    Parameters
    ----------
    lines : sequence of str
        The file's first four lines.
    source : str
        Name used in error messages.

    Returns
    -------
    list of int
        For each of the 518 flat features in FMA's order, its field index in a data row
        (0 is ``track_id``).

    Raises
    ------
    FmaCsvError
        Naming the line and what is wrong with it.
    """
    if len(lines) < 4:
        raise FmaCsvError(
            f"{source}: {len(lines)} line(s); FMA's features.csv starts with 4 header lines"
            f" ({', '.join(HEADER_LABELS)})"
        )
    rows = [next(csv.reader([line])) if line else [""] for line in lines[:4]]
    for number, (row, label) in enumerate(zip(rows, HEADER_LABELS, strict=True), start=1):
        if row[0] != label:
            raise FmaCsvError(
                f"{source}: line {number} should start with {label!r}, found {row[0][:40]!r}"
                " (is this FMA's features.csv with its 3-row header and track_id row?)"
            )
    width = len(rows[0])
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != width:
            raise FmaCsvError(
                f"{source}: line {number} has {len(row)} fields but line 1 has {width}"
            )
    if any(rows[3][1:]):
        raise FmaCsvError(f"{source}: line 4 should be 'track_id' followed by empty fields")
    expected = {triple: k for k, triple in enumerate(feature_index())}
    position: dict[tuple, int] = {}
    for field, triple in enumerate(zip(*(row[1:] for row in rows[:3]), strict=True), start=1):
        if triple not in expected:
            raise FmaCsvError(
                f"{source}: column {field + 1} is {triple}, not one of FMA's 518 features"
                " (feature, statistics, number as in ('mfcc', 'mean', '01'))"
            )
        if triple in position:
            raise FmaCsvError(f"{source}: column {field + 1} repeats {triple}")
        position[triple] = field
    missing = [triple for triple in expected if triple not in position]
    if missing:
        raise FmaCsvError(
            f"{source}: {len(missing)} of the 518 features missing, e.g. {missing[0]}"
        )
    return [position[triple] for triple in feature_index()]


def read_fma_csv(spark: SparkSession, path: str) -> DataFrame:
    """FMA's features.csv (any Hadoop path) as feature table rows, checked.

    Returns
    -------
    DataFrame
        Every column of :data:`fmagenre.tables.feature_table.FEATURE_SCHEMA` but ``chunk_id``.

    Raises
    ------
    FmaCsvError
        Bad header, a data row with the wrong number of fields, a track id that is not an
        integer, a value that is not a number, or a track id twice.
    """
    text = spark.read.text(path)
    positions = parse_header([row.value for row in text.head(4)], source=path)
    fields = F.col("fields")
    data = (
        text.where(F.trim("value") != "")
        .select(
            F.split("value", ",", -1).alias("fields"), F.substring("value", 1, 60).alias("start")
        )
        .where(~fields[0].isin(*HEADER_LABELS))
    )
    # SQL text: Column.try_cast is Spark 4 only, EMR 7 runs Spark 3.5.
    track_id = F.expr("try_cast(trim(fields[0]) AS BIGINT)")
    not_number = F.expr(
        f"exists(slice(fields, 2, {N_FEATURES}),"
        " v -> trim(v) != '' AND try_cast(trim(v) AS DOUBLE) IS NULL)"
    )
    problem = (
        F.when(F.size(fields) != N_FEATURES + 1, F.format_string("%d fields", F.size(fields)))
        .when(track_id.isNull(), F.lit("a track_id that is not an integer"))
        .when(not_number, F.lit("a value that is not a number"))
    )
    bad = data.select(problem.alias("problem"), "start").where(F.col("problem").isNotNull())
    first = bad.first()
    if first is not None:
        raise FmaCsvError(
            f"{path}: {bad.count()} malformed data row(s), e.g. {first.problem}"
            f" (expected {N_FEATURES + 1}) in the row starting {first.start!r}"
        )
    twice = data.groupBy(track_id.alias("track_id")).count().where(F.col("count") > 1).first()
    if twice is not None:
        raise FmaCsvError(f"{path}: track_id {twice.track_id} appears {twice['count']} times")
    parsed = ["try_cast(trim(fields[0]) AS BIGINT) AS track_id"]
    for name, position in zip(flat_names(), positions, strict=True):
        text = f"trim(fields[{position}])"
        parsed.append(f"CAST(IF({text} = '', 'NaN', {text}) AS FLOAT) AS {name}")
    computed = {
        "track_id": "track_id",
        **{name: name for name in flat_names()},
        "features": f"array({', '.join(flat_names())}) AS features",
        "status": "'ok' AS status",
        "extractor_version": f"'{FMA_VERSION}' AS extractor_version",
    }
    row = [
        computed.get(f.name, f"CAST(NULL AS {f.dataType.simpleString()}) AS {f.name}")
        for f in FEATURE_SCHEMA.fields
        if f.name != "chunk_id"
    ]
    return data.selectExpr(*parsed).selectExpr(*row)


def import_fma_csv(spark: SparkSession, csv_path: str, output: str, *, overwrite: bool = False):
    """Publish FMA's features.csv as one run of the feature table at ``output``.

    Rows imported again later replace these (the latest run wins, per track id).

    Returns
    -------
    dict
        The run's summary (``tracks`` imported), also written as the run's summary.json.
    """
    check_output(spark, output)
    frame = read_fma_csv(spark, csv_path)
    open_table(spark, output)
    run_id = new_run_id()
    chunk = chunk_id(run_id, 0)
    stats = publish_chunk(spark, frame.withColumn("chunk_id", F.lit(chunk)), output, chunk)
    refresh_view(spark, output, since=run_id if overwrite else None)
    if overwrite:
        drop_runs_before(spark, output, run_id)
    summary = {
        "job": "import_fma_features",
        "run_id": run_id,
        "csv": csv_path,
        "output": output,
        "run_dir": run_path(output, run_id),
        "tracks": stats["rows"],
    }
    summary["summary_file"] = write_summary(spark, output, run_id, summary)
    return summary


def to_fma_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Rows with ``track_id`` and the flat feature columns as FMA's features DataFrame.

    Indexed by ``track_id``, columns :func:`fmagenre.audio.names.feature_index`, float32.
    """
    values = table[list(flat_names())].to_numpy(dtype="float32")
    index = pd.Index(table["track_id"].astype("int64"), name="track_id")
    return pd.DataFrame(values, index=index, columns=feature_index())


def _to_pandas(spark: SparkSession, frame: DataFrame) -> pd.DataFrame:
    """``frame.toPandas()`` through Arrow (DataFrame.toArrow is Spark 4 only)."""
    with session_settings(spark, {"spark.sql.execution.arrow.pyspark.enabled": "true"}):
        return frame.toPandas()


def export_fma_csv(
    spark: SparkSession, table: str, csv_path: str | os.PathLike, *, overwrite: bool = False
) -> dict:
    """Write the ``ok`` rows of the feature table at ``table`` (read with
    :func:`fmagenre.tables.inputs.read_feature_rows`) as FMA's features.csv.

    One row per track id, sorted; rows without a track id (file names that are not FMA's)
    are left out, and so is all but the first path of a track id found under several paths.
    The file is written beside its final name and then renamed, so that it appears whole.

    Parameters
    ----------
    spark : SparkSession
    table : str
        The feature table directory (the extraction or import job's ``--output``).
    csv_path : str or path-like
        Local file to write.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    dict
        ``tracks`` written, and rows left out: ``errors``, ``no_track_id``, ``duplicates``.

    Raises
    ------
    FileExistsError
        When ``csv_path`` exists and ``overwrite`` is false.
    fmagenre.tables.inputs.InputTableError
        When ``table`` does not exist, has no published chunk yet, or lacks columns.
    """
    target = Path(csv_path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists: pass --overwrite to replace it")
    rows = read_feature_rows(
        spark, table, option="--input", columns=("track_id", "path", "status", *flat_names())
    )
    counts = {
        row.kind: row["count"]
        for row in rows.select(
            F.when(F.col("status") != "ok", "errors")
            .when(F.col("track_id").isNull(), "no_track_id")
            .otherwise("ok")
            .alias("kind")
        )
        .groupBy("kind")
        .count()
        .collect()
    }
    ok = ok_rows(rows)
    frame = _to_pandas(spark, ok.select("track_id", "path", *flat_names()))
    frame = frame.sort_values(["track_id", "path"], na_position="first")
    unique = frame.drop_duplicates("track_id")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.partial")
    to_fma_frame(unique).to_csv(staging, float_format=FLOAT_FORMAT)
    staging.replace(target)
    return {
        "csv": str(target),
        "tracks": len(unique),
        "errors": counts.get("errors", 0),
        "no_track_id": counts.get("no_track_id", 0),
        "duplicates": len(frame) - len(unique),
    }
