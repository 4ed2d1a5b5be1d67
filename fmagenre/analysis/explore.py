"""Exploratory report of the corpus: the thesis' "Análisis exploratorio" as one HTML page.

Every figure comes from a Spark aggregate (counts, histograms, the correlation matrix) or from
a bounded sample (``sample_rows``): the PCA scatters are fitted with scikit-learn on at most
``sample_rows`` tracks of the chosen genres. Nothing collects the whole table to the driver.
The report is one self-contained ``report.html`` (PNGs embedded as base64).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from fmagenre.analysis.sampling import correlation_matrix, labelled_features, sample_groups
from fmagenre.audio.feature_sets import FAMILIES, family_columns
from fmagenre.audio.names import flat_names
from fmagenre.errors import InputError
from fmagenre.labels.genre_tree import GenreTree
from fmagenre.labels.imputation import missing_percentages
from fmagenre.platform.figures import HtmlReport, new_figure
from fmagenre.platform.hadoop import path_exists, read_bytes, write_output
from fmagenre.tables.inputs import LABEL_COLUMNS, InputTableError, read_feature_rows, read_labels
from fmagenre.tables.label_table import read_metadata, summary_path

REPORT_FILE = "report.html"
DEFAULT_SAMPLE_ROWS = 5000
DEFAULT_TOP_GENRES = 30
#: Section headings, in report order.
SECTIONS = (
    "Overview",
    "Tracks per top-level genre",
    "Tracks per genre",
    "Artists per top-level genre",
    "Genres per track",
    "Genre co-occurrence",
    "Durations",
    "Bit rates",
    "Release years",
    "Missing values",
    "Extraction errors",
    "Feature correlations",
    "PCA per MIR family",
)
#: Columns of the label table the report reads.
REPORT_LABEL_COLUMNS = (*LABEL_COLUMNS, "genre_top_id", "genres_all", "duration", "bit_rate")
_META_SCHEMA = StructType(
    [
        StructField("track_id", LongType()),
        StructField("artist", StringType()),
        StructField("year", IntegerType()),
    ]
)


def _counts(frame: DataFrame, column: str) -> pd.Series:
    """Rows per value of ``column`` (nulls left out), largest first: a Spark aggregate."""
    rows = frame.where(F.col(column).isNotNull()).groupBy(column).count().collect()
    series = pd.Series({row[0]: row[1] for row in rows}, dtype="int64")
    return series.sort_values(ascending=False, kind="stable")


def _bar(report: HtmlReport, counts: pd.Series, *, title: str, xlabel: str) -> None:
    """Horizontal bars, largest on top."""
    figure = new_figure(8, max(2.5, 0.25 * len(counts) + 1))
    axes = figure.add_subplot()
    axes.barh([str(k) for k in counts.index[::-1]], counts.to_numpy()[::-1], color="#4c72b0")
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    report.figure(figure, alt=title)


def _count_table(counts: pd.Series, name: str) -> pd.DataFrame:
    total = counts.sum()
    table = pd.DataFrame({"tracks": counts, "%": 100 * counts / total if total else 0.0})
    table.index.name = name
    return table


def genre_titles(labels: DataFrame, genres: pd.DataFrame | None) -> dict[int, str]:
    """Title of each genre id, from ``genres.csv`` when given.

    Without it, only the top-level titles of the label table are known (finer genres then
    show as ``#id``).
    """
    if genres is not None:
        return dict(GenreTree.from_frame(genres).titles)
    pairs = labels.select("genre_top_id", "genre_top").distinct().collect()
    return {int(row[0]): row[1] for row in pairs}


def _histogram(
    frame: DataFrame, column: str, *, bins: int, upper_quantile: float = 0.99
) -> tuple[np.ndarray, np.ndarray, float]:
    """Histogram and median of ``column``, computed by Spark.

    Bins run from the minimum to the ``upper_quantile``; larger values fall in the last bin.
    """
    values = frame.where(F.col(column).isNotNull())
    low, median, high = values.approxQuantile(column, [0.0, 0.5, upper_quantile], 0.001)
    width = (high - low) / bins if high > low else 1.0
    index = F.least(F.floor((F.col(column) - low) / width), F.lit(bins - 1)).cast("int")
    counts = np.zeros(bins, dtype=np.int64)
    for row in values.groupBy(index.alias("bin")).count().collect():
        counts[row["bin"]] = row["count"]
    return low + width * np.arange(bins + 1), counts, median


def _plot_histogram(report, edges, counts, *, title: str, xlabel: str) -> None:
    figure = new_figure(8, 3.5)
    axes = figure.add_subplot()
    axes.stairs(counts, edges, fill=True, color="#4c72b0")
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("tracks")
    report.figure(figure, alt=title)


def _overview(report, rows: DataFrame, labels: DataFrame, labelled: int) -> None:
    report.section(SECTIONS[0])
    splits = _counts(labels, "split")
    feature_rows = rows.count()
    facts = {
        "labelled tracks": int(splits.sum()),
        **{f"{split} tracks": int(n) for split, n in splits.items()},
        "feature table rows": feature_rows,
        "labelled tracks with features": labelled,
    }
    table = pd.DataFrame({"value": facts})
    table.index.name = "count"
    report.table(table, float_format="{:,.0f}")


def _top_genres(report, labels: DataFrame) -> None:
    report.section(SECTIONS[1])
    counts = _counts(labels, "genre_top")
    _bar(report, counts, title="Tracks per top-level genre", xlabel="tracks")
    report.table(_count_table(counts, "genre_top"), float_format="{:,.2f}")


def _all_genres(report, labels: DataFrame, titles: Mapping[int, str], top: int) -> pd.Series:
    """Tracks per genre id of ``genres_all``, largest first (returned for the co-occurrence)."""
    report.section(SECTIONS[2])
    counts = _counts(labels.select(F.explode("genres_all").alias("genre")), "genre")
    shown = counts.iloc[:top].rename(index=lambda g: titles.get(g, f"#{g}"))
    report.text(f"{len(counts)} genres carried by tracks (genres_all); the {len(shown)} largest:")
    _bar(report, shown, title=f"Tracks per genre (top {len(shown)})", xlabel="tracks")
    table = pd.DataFrame({"genre_id": counts.index[:top], "tracks": shown.to_numpy()}, shown.index)
    table.index.name = "genre"
    report.table(table, float_format="{:,.0f}")
    return counts


def _metadata_frame(spark: SparkSession, tracks: pd.DataFrame) -> DataFrame:
    """``track_id``, artist name and album release year of the metadata, as Spark rows."""
    artists = tracks["artist", "name"]
    years = tracks["album", "date_released"].dt.year
    rows = [
        (int(track), None if pd.isna(artist) else str(artist), None if pd.isna(year) else int(year))
        for track, artist, year in zip(tracks.index, artists, years, strict=True)
    ]
    return spark.createDataFrame(rows, _META_SCHEMA)


def _artists(report, labels: DataFrame, meta: DataFrame | None) -> None:
    report.section(SECTIONS[3])
    if meta is None:
        report.text("Needs the metadata (--metadata) for artist names.", note=True)
        return
    pairs = labels.join(meta.where(F.col("artist").isNotNull()), "track_id")
    counts = _counts(pairs.select("genre_top", "artist").distinct(), "genre_top")
    _bar(report, counts, title="Distinct artists per top-level genre", xlabel="artists")


def _genres_per_track(report, labels: DataFrame) -> None:
    report.section(SECTIONS[4])
    counts = _counts(labels.select(F.size("genres_all").alias("genres")), "genres").sort_index()
    total = counts.sum()
    mean = float((counts.index.to_numpy() * counts.to_numpy()).sum() / total)
    report.text(
        f"Mean {mean:.2f} genres per track (genres_all, ancestors included);"
        f" {100 * counts[counts.index >= 3].sum() / total:.1f}% of tracks have 3 or more."
    )
    figure = new_figure(8, 3.5)
    axes = figure.add_subplot()
    axes.bar(counts.index.astype(str), counts.to_numpy(), color="#4c72b0")
    axes.set_xlabel("genres per track")
    axes.set_ylabel("tracks")
    axes.set_title("Genres per track")
    report.figure(figure, alt="Genres per track")


def _cooccurrence(
    report, labels: DataFrame, counts: pd.Series, titles: Mapping[int, str], top: int
) -> None:
    report.section(SECTIONS[5])
    ids = [int(g) for g in counts.index[:top]]
    pairs = (
        labels.select(F.explode("genres_all").alias("a"), "genres_all")
        .where(F.col("a").isin(ids))
        .select("a", F.explode("genres_all").alias("b"))
        .where(F.col("b").isin(ids))
        .groupBy("a", "b")
        .count()
        .collect()
    )
    position = {g: i for i, g in enumerate(ids)}
    matrix = np.zeros((len(ids), len(ids)))
    for row in pairs:
        matrix[position[row["a"]], position[row["b"]]] = row["count"]
    share = matrix / np.maximum(np.diag(matrix), 1)[:, None]
    report.text(
        f"Row genre's tracks that also carry the column genre (0 to 1), for the {len(ids)}"
        " largest genres."
    )
    size = 3 + 0.22 * len(ids)
    figure = new_figure(size + 1.5, size)
    axes = figure.add_subplot()
    image = axes.imshow(share, vmin=0, vmax=1, cmap="viridis")
    names = [titles.get(g, f"#{g}") for g in ids]
    axes.set_xticks(range(len(ids)), names, rotation=90, fontsize=7)
    axes.set_yticks(range(len(ids)), names, fontsize=7)
    figure.colorbar(image, ax=axes, shrink=0.8)
    axes.set_title("Genre co-occurrence")
    report.figure(figure, alt="Genre co-occurrence")


def _durations(report, labels: DataFrame) -> None:
    report.section(SECTIONS[6])
    duration = F.col("duration")
    stats = labels.agg(
        F.count(duration).alias("n"),
        F.sum(duration).alias("total"),
        F.mean(duration).alias("mean"),
        F.max(duration).alias("max"),
        F.sum((duration < 30).cast("int")).alias("short"),
    ).head()
    if not stats["n"]:
        report.text("No track has a duration.", note=True)
        return
    edges, counts, median = _histogram(labels, "duration", bins=60)
    report.text(
        f"{stats['n']:,} tracks, {stats['total'] / 86400:,.1f} days of music; mean"
        f" {stats['mean']:.2f} s, median {median:.2f} s, longest {stats['max']:,} s;"
        f" {stats['short']:,} shorter than 30 s. The last bin holds the top 1%."
    )
    _plot_histogram(report, edges, counts, title="Track durations", xlabel="seconds")


def _bit_rates(report, labels: DataFrame) -> None:
    report.section(SECTIONS[7])
    counts = _counts(labels, "bit_rate")
    if counts.empty:
        report.text("No track has a bit rate.", note=True)
        return
    shown = counts.iloc[:15].rename(index=lambda rate: f"{rate / 1000:g} kbps")
    report.text(
        f"{len(counts)} distinct bit rates; {100 * counts.iloc[:15].sum() / counts.sum():.1f}%"
        f" of tracks at the {len(shown)} most common, shown."
    )
    _bar(report, shown, title="Tracks per bit rate", xlabel="tracks")


def _release_years(report, labels: DataFrame, meta: DataFrame | None) -> None:
    report.section(SECTIONS[8])
    if meta is None:
        report.text("Needs the metadata (--metadata) for album release dates.", note=True)
        return
    counts = _counts(labels.join(meta, "track_id"), "year").sort_index()
    if counts.empty:
        report.text("No labelled track has an album release date.", note=True)
        return
    report.text(f"Album release years {counts.index.min()} to {counts.index.max()}.")
    figure = new_figure(8, 3.5)
    axes = figure.add_subplot()
    axes.bar(counts.index.to_numpy(), counts.to_numpy(), color="#4c72b0")
    axes.set_xlabel("album release year")
    axes.set_ylabel("tracks")
    axes.set_title("Release years")
    report.figure(figure, alt="Release years")


def _missing(
    report, spark, labels_path: str, tracks: pd.DataFrame | None, labels: DataFrame
) -> None:
    report.section(SECTIONS[9])
    if tracks is not None:
        missing, source = missing_percentages(tracks), "tracks.csv (every track read)"
    elif path_exists(spark, summary_path(labels_path)):
        summary = json.loads(read_bytes(spark, summary_path(labels_path)))
        missing, source = summary.get("missing_percent", {}), "the label table's summary"
    else:
        nulls = labels.agg(
            F.count(F.lit(1)).alias("_rows"),
            *(F.sum(F.col(c).isNull().cast("int")).alias(c) for c in labels.columns),
        ).head()
        missing = {c: 100 * (nulls[c] or 0) / max(nulls["_rows"], 1) for c in labels.columns}
        source = "the label table's columns"
    series = pd.Series(missing, dtype="float64").sort_values(ascending=False, kind="stable")
    report.text(f"Percentage of tracks without a value, per column, from {source}.")
    shown = series[series > 0].iloc[:30]
    if not shown.empty:
        _bar(report, shown, title="Missing values (%)", xlabel="% of tracks")
    table = series.to_frame("% missing")
    table.index.name = "column"
    report.table(table, float_format="{:.2f}")


def _errors(report, rows: DataFrame) -> None:
    report.section(SECTIONS[10])
    if "status" not in rows.columns:
        report.text("The feature table has no status column (imported features).", note=True)
        return
    reason = F.lit("unknown")
    if "error_reason" in rows.columns:
        reason = F.coalesce(F.col("error_reason"), reason)
    label = F.when(F.col("status") == "ok", F.lit("ok")).otherwise(reason).alias("outcome")
    counts = _counts(rows.select(label), "outcome")
    report.table(_count_table(counts, "outcome"), float_format="{:,.2f}")
    errors = counts.drop("ok", errors="ignore")
    if errors.empty:
        report.text("No extraction error.")
    else:
        _bar(report, errors, title="Extraction errors by reason", xlabel="files")


def _correlations(report, labelled: DataFrame, total: int, *, sample_rows: int, seed: int) -> None:
    report.section(SECTIONS[11])
    sample = labelled.sample(fraction=min(1.0, sample_rows / max(total, 1)), seed=seed)
    columns = flat_names()
    matrix = correlation_matrix(sample, columns)
    upper = np.triu_indices(len(columns), k=1)
    values = matrix[upper]
    finite = np.isfinite(values)
    if not finite.any():
        report.text("Too few rows to correlate the features.", note=True)
        return
    strongest = int(np.nanargmax(np.abs(np.where(finite, values, 0.0))))
    pair = columns[upper[0][strongest]], columns[upper[1][strongest]]
    absolute = np.abs(values[finite])
    report.text(
        f"Pearson correlations of the {len(columns)} features over a sample of about"
        f" {min(total, sample_rows):,} labelled tracks (Spark ML), {absolute.size:,} pairs:"
        " the largest |r| is"
        f" {absolute.max():.3f} ({pair[0]}, {pair[1]}); {100 * np.mean(absolute < 0.5):.1f}% of"
        f" pairs have |r| < 0.5; 90% have |r| < {np.quantile(absolute, 0.9):.3f};"
        f" {int(np.sum(absolute >= 0.9999))} are perfect (|r| ≥ 0.9999);"
        f" {int(np.sum(~finite))} are undefined (a constant column)."
    )
    figure = new_figure(8, 3.5)
    axes = figure.add_subplot()
    axes.hist(values[finite], bins=80, range=(-1, 1), color="#4c72b0")
    axes.set_xlabel("Pearson r")
    axes.set_ylabel("feature pairs")
    axes.set_title("Distribution of feature correlations")
    report.figure(figure, alt="Distribution of feature correlations")


def _separation(points: np.ndarray, groups: np.ndarray) -> float:
    """Between-genre over within-genre scatter of 2-D points (larger: better separated)."""
    centre = points.mean(axis=0)
    between = within = 0.0
    for group in np.unique(groups):
        members = points[groups == group]
        mean = members.mean(axis=0)
        between += len(members) * float(np.sum((mean - centre) ** 2))
        within += float(np.sum((members - mean) ** 2))
    return between / within if within > 0 else math.inf


def _pca_genres(counts: pd.Series, chosen: Sequence[str] | None) -> list[str]:
    """The PCA genres: ``chosen``, checked against the genres' track counts, or the 3 largest."""
    if chosen is None:
        return list(counts.index[:3])
    unknown = [g for g in chosen if g not in counts.index]
    if unknown:
        raise InputError(
            f"--pca-genres: no labelled track with features has genre {unknown[0]!r}"
            f" (genres: {', '.join(map(str, counts.index))})"
        )
    return list(chosen)


def _pca(report, labelled: DataFrame, genres: list[str], *, sample_rows: int, seed: int) -> None:
    report.section(SECTIONS[12])
    if len(genres) < 2:
        report.text("Needs tracks of at least two genres.", note=True)
        return
    per_genre = max(1, sample_rows // len(genres))
    sample = sample_groups(
        labelled,
        by="genre_top",
        limits=dict.fromkeys(genres, per_genre),
        columns=flat_names(),
        seed=seed,
    )
    report.text(
        f"First two principal components of each family's standardized columns, fitted on a"
        f" sample of {len(sample):,} tracks of {', '.join(genres)}. Separation: between-genre"
        " over within-genre scatter in the plane (larger is better separated)."
    )
    figure = new_figure(13, 9.5)
    grid = figure.subplots(3, 4)
    colours = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")
    rows = []
    for axes, family in zip(grid.flat, FAMILIES, strict=False):
        values = sample[list(family_columns([family]))].to_numpy(dtype=np.float64)
        keep = np.isfinite(values).all(axis=1)
        if keep.sum() < 3:
            axes.set_title(f"{family}: too few tracks")
            continue
        pca = PCA(n_components=2, random_state=seed)
        points = pca.fit_transform(StandardScaler().fit_transform(values[keep]))
        groups = sample["genre_top"].to_numpy()[keep]
        for genre, colour in zip(genres, colours, strict=False):
            members = points[groups == genre]
            axes.scatter(members[:, 0], members[:, 1], s=4, alpha=0.5, color=colour, label=genre)
        axes.set_title(family, fontsize=10)
        rows.append(
            {
                "family": family,
                "columns": values.shape[1],
                "PC1+PC2 variance %": 100 * float(pca.explained_variance_ratio_.sum()),
                "separation": _separation(points, groups),
            }
        )
    handles, names = grid.flat[0].get_legend_handles_labels()
    grid.flat[-1].axis("off")
    grid.flat[-1].legend(handles, names, loc="center", markerscale=4)
    report.figure(figure, alt="PCA per MIR family")
    if rows:
        table = pd.DataFrame(rows).set_index("family").sort_values("separation", ascending=False)
        report.table(table)


def run(
    spark: SparkSession,
    *,
    features: str,
    labels: str,
    output: str,
    metadata: str | None = None,
    pca_genres: Sequence[str] | None = None,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    top_genres: int = DEFAULT_TOP_GENRES,
    seed: int = 0,
) -> str:
    """Write the exploratory report of a corpus as ``output/report.html``; return its path.

    Parameters
    ----------
    spark : SparkSession
    features : str
        Feature table (extraction layout or plain Parquet), any Hadoop path.
    labels : str
        Label table of ``jobs/prepare_labels.py``.
    output : str
        Directory of the report, any Hadoop path.
    metadata : str or None
        ``fma_metadata`` directory, any Hadoop path: adds artists, release years and genre
        titles, and the missing values of every ``tracks.csv`` column.
    pca_genres : sequence of str or None
        2 to 6 top-level genres of the PCA scatters; None: the three largest.
    sample_rows : int
        Most tracks sampled for the correlation matrix and for the PCA scatters.
    top_genres : int
        Genres shown in the per-genre bars and in the co-occurrence matrix.
    seed : int
        Seed of the samples.

    Raises
    ------
    fmagenre.errors.InputError
        On PCA genres that are not 2 to 6 distinct genres of the labelled tracks.
    InputTableError
        On a missing path, or a table without the needed columns (a subclass of InputError).
    ValueError
        On a non-positive ``sample_rows`` or ``top_genres``.
    """
    if sample_rows < 1 or top_genres < 1:
        raise ValueError(
            f"sample_rows and top_genres must be positive: {sample_rows}, {top_genres}"
        )
    if pca_genres is not None and not 2 <= len(set(pca_genres)) == len(pca_genres) <= 6:
        raise InputError(f"--pca-genres: give 2 to 6 distinct genres, got {pca_genres}")
    tracks = genres = None
    if metadata is not None:
        try:
            tracks, genres = read_metadata(spark, metadata)
        except FileNotFoundError as error:
            raise InputTableError(str(error)) from error
    rows = read_feature_rows(spark, features, columns=("track_id", *flat_names()))
    label_frame = read_labels(spark, labels, columns=REPORT_LABEL_COLUMNS).cache()
    labelled = labelled_features(rows, label_frame).cache()
    try:
        genre_counts = _counts(labelled, "genre_top")
        chosen = _pca_genres(genre_counts, pca_genres)
        total = int(genre_counts.sum())
        titles = genre_titles(label_frame, genres)
        meta = None if tracks is None else _metadata_frame(spark, tracks)
        report = HtmlReport("FMA corpus: exploratory analysis")
        _overview(report, rows, label_frame, total)
        _top_genres(report, label_frame)
        per_genre = _all_genres(report, label_frame, titles, top_genres)
        _artists(report, label_frame, meta)
        _genres_per_track(report, label_frame)
        _cooccurrence(report, label_frame, per_genre, titles, min(top_genres, 40))
        _durations(report, label_frame)
        _bit_rates(report, label_frame)
        _release_years(report, label_frame, meta)
        _missing(report, spark, labels, tracks, label_frame)
        _errors(report, rows)
        _correlations(report, labelled, total, sample_rows=sample_rows, seed=seed)
        _pca(report, labelled, chosen, sample_rows=sample_rows, seed=seed)
    finally:
        labelled.unpersist()
        label_frame.unpersist()
    return write_output(spark, output, REPORT_FILE, report.render())
