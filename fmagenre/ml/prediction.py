"""The prediction job's library side: genres of MP3s or feature rows with a trained ensemble.

:func:`run` reads a model directory written by :func:`fmagenre.ml.training.run` and an input that
is either a folder of audio files, whose features are extracted on the fly with the
extraction job's code (:func:`fmagenre.extraction.driver.extraction_frame`, nothing written but the
predictions), or feature rows: a feature table or plain Parquet with the model's feature
columns. It writes Parquet, one row per input row::

    track_id, path, status, error, genre, prediction, vote_<model>...

``genre`` is the ensemble's genre, ``prediction`` its class index and ``vote_<model>`` each
model's genre. Rows whose ``status`` is not ``ok`` (a file that cannot be decoded) keep
their error and get null predictions. Extraction and prediction run in one pass: every row
goes through the models (an error row's missing features are imputed) and the predictions
of non-``ok`` rows are then nulled, so no file is read twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Protocol

from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from fmagenre.audio.names import musicnn_names, uses_musicnn
from fmagenre.audio.patches import PatchSettings
from fmagenre.errors import InputError, shown_names
from fmagenre.extraction.driver import extraction_frame, file_source_conf, list_inputs
from fmagenre.ml.ensemble import VotingEnsembleModel, vote_column
from fmagenre.ml.external import MEMBERS_DIR, margins_column
from fmagenre.ml.training import MODEL_DIR
from fmagenre.platform.config import ExtractConfig
from fmagenre.platform.hadoop import hadoop_fs, path_exists
from fmagenre.platform.session import session_settings
from fmagenre.tables.feature_table import is_feature_table
from fmagenre.tables.inputs import read_feature_rows, require_path

log = logging.getLogger(__name__)

INPUT_FORMATS = ("auto", "audio", "features")


class PredictionError(InputError, ValueError):
    """A model directory or input the job cannot use; the message says why."""


class Scorer(Protocol):
    """What :func:`run` predicts with besides a bare ensemble (e.g. the spectrogram network's
    :class:`fmagenre.network.inference.Predictor`)."""

    #: The patches it needs from extraction; None for none.
    patch_settings: PatchSettings | None
    #: Whether it needs the musicnn family from extraction.
    musicnn: bool

    def predictions(
        self, rows: DataFrame, *, extra: Sequence[str] = (), scores: bool = False
    ) -> DataFrame: ...


def detect_input_format(spark: SparkSession, path: str) -> str:
    """``features`` for a feature table, a Parquet file or a directory of Parquet files,
    else ``audio``."""
    if is_feature_table(spark, path):
        return "features"
    fs, root = hadoop_fs(spark, path)
    if fs.isFile(root):
        return "features" if path.endswith(".parquet") else "audio"
    _, pattern = hadoop_fs(spark, f"{path.rstrip('/')}/*.parquet")
    return "features" if fs.globStatus(pattern) else "audio"


def load_model(spark: SparkSession, model_dir: str) -> VotingEnsembleModel:
    """The ensemble saved in ``MODEL_DIR/model``.

    Raises
    ------
    PredictionError
        When there is none.
    """
    path = f"{model_dir.rstrip('/')}/{MODEL_DIR}"
    if not path_exists(spark, f"{path}/metadata"):
        raise PredictionError(
            f"{model_dir} holds no trained model ({path} is missing): train one with jobs/train.py"
        )
    return VotingEnsembleModel.read().session(spark).load(path)


def column_or_null(rows: DataFrame, name: str, type_name: str) -> Column:
    """Column ``name`` of ``rows``, or a null of ``type_name`` when it has none."""
    return F.col(name) if name in rows.columns else F.lit(None).cast(type_name)


def predictions(
    model: VotingEnsembleModel, rows: DataFrame, *, extra: Sequence[str] = ()
) -> DataFrame:
    """The output rows of :func:`run` for input rows (lazy).

    The ``extra`` input columns are kept after ``error``. When the model keeps its
    sub-models' probabilities (``subProbabilityCol``), each model's are added as
    ``scores_<name>``, a map from genre to probability (null for a model without them).
    A model with external members reads their margins (``margins_<name>``) from the rows and
    gives their votes and scores as its own models'.

    Raises
    ------
    PredictionError
        When the rows lack feature columns of the model, or an external member's margins.
    """
    missing = model.missing_features(rows.columns)
    if missing:
        raise PredictionError(
            f"the input lacks {len(missing)} feature column(s) of the model: {shown_names(missing)}"
        )
    margins = [margins_column(name) for name in model.getExternalModels()]
    missing = model.missing_margins(rows.columns)
    if missing:
        raise PredictionError(
            f"the input lacks the class log-probabilities of the model's external member(s):"
            f" {', '.join(missing)}; add them with each member's add_margins (its files are in"
            f" the model directory's {MEMBERS_DIR}/<name>)"
        )
    ok = F.col("status") == "ok" if "status" in rows.columns else F.lit(True)
    status = F.col("status") if "status" in rows.columns else F.lit("ok")
    error = column_or_null(rows, "error", "string")
    musicnn = [column for column in model.getFeatureCols() if column in musicnn_names()]
    if musicnn:
        # A row without the musicnn values the model needs is an error row: never imputed.
        lacking = ok & F.col(musicnn[0]).isNull()
        why = F.coalesce(
            column_or_null(rows, "musicnn_error", "string"),
            F.lit("no_musicnn: the model needs the musicnn family (--families mir,musicnn)"),
        )
        status = F.when(lacking, F.lit("error")).otherwise(status)
        error = F.when(lacking, why).otherwise(error)
        ok = ok & ~lacking
    keys = ("track_id", "path", "status", "error", *extra)
    kept = [column for column in keys if column in rows.columns]
    scored = model.transform(
        rows.select(
            *kept,
            *(column for column in model.getFeatureCols() if column not in kept),
            *margins,
            ok.alias("_ok"),
            status.alias("_status"),
            error.alias("_error"),
        )
    )

    def when_ok(column):
        return F.when(F.col("_ok"), column)

    votes = [
        when_ok(model.label_name(F.col(vote_column(name)))).alias(f"vote_{name}")
        for name in model.voters()
    ]
    if model.getSubProbabilityCol() is not None:
        genres = F.array(*(F.lit(label) for label in model.getLabels()))
        for name in model.voters():
            probability = F.col(f"probability_{name}")
            scores = F.map_from_arrays(genres, vector_to_array(probability))
            # vector_to_array fails on null: a model without probabilities, an error row.
            votes.append(
                F.when(F.col("_ok") & probability.isNotNull(), scores).alias(f"scores_{name}")
            )
    return scored.select(
        column_or_null(rows, "track_id", "long").alias("track_id"),
        column_or_null(rows, "path", "string").alias("path"),
        F.col("_status").alias("status"),
        F.col("_error").alias("error"),
        *extra,
        when_ok(F.col(model.getLabelNameCol())).alias("genre"),
        when_ok(F.col(model.getPredictionCol())).alias("prediction"),
        *votes,
    )


def run(
    spark: SparkSession,
    *,
    model_dir: str,
    input: str,
    output: str,
    input_format: str = "auto",
    extract: ExtractConfig | None = None,
    overwrite: bool = False,
    scorer: Scorer | None = None,
) -> dict:
    """Predict the genre of every input row or audio file; write Parquet; return a summary.

    Parameters
    ----------
    spark : SparkSession
    model_dir : str
        Output directory of the training job.
    input : str
        Folder of audio files (searched recursively), feature table, or Parquet.
    output : str
        Parquet directory to write.
    input_format : str
        ``auto`` (:func:`detect_input_format`), ``audio`` or ``features``.
    extract : ExtractConfig or None
        Extraction settings for audio input (glob, max_duration...); None for the defaults.
    overwrite : bool
        Replace an existing output.
    scorer : Scorer or None
        What ``model_dir`` holds, loaded by the caller (a network, or an ensemble with the
        network as a voter), whose rows then hold every voter's ``scores_<name>``; None loads
        the ensemble of ``model_dir``.

    Returns
    -------
    dict
        ``input_format``, ``rows``, ``ok``, ``errors``, rows per ``genre``, ``wall_s``.

    Raises
    ------
    PredictionError
        On an unknown format, a missing model, no audio file, missing features.
    fmagenre.tables.inputs.InputTableError
        On a missing input, or feature rows that cannot be read.
    FileExistsError
        When ``output`` exists and ``overwrite`` is false.
    """
    started = time.perf_counter()
    if input_format not in INPUT_FORMATS:
        raise PredictionError(
            f"unknown input format {input_format!r}; formats: {', '.join(INPUT_FORMATS)}"
        )
    extract = extract or ExtractConfig()
    if scorer is None:
        model = load_model(spark, model_dir)
        score, patches = partial(predictions, model), None
        musicnn = uses_musicnn(model.getFeatureCols())
    else:
        score, patches = partial(scorer.predictions, scores=True), scorer.patch_settings
        musicnn = scorer.musicnn
    extract = extract.with_musicnn(musicnn)
    require_path(spark, "--input", input)
    if not overwrite and path_exists(spark, output):
        raise FileExistsError(f"{output} already exists: pass --overwrite to replace it")
    if input_format == "auto":
        input_format = detect_input_format(spark, input)
    log.info("predicting %s input %s with %s", input_format, input, model_dir)
    settings = {}
    if input_format == "audio":
        files = list_inputs(spark, [input], glob=extract.glob)
        if not files:
            raise PredictionError(f"no file matching {extract.glob} under {input}")
        rows = extraction_frame(spark, files, extract, patches=patches)
        settings = file_source_conf(spark, files, extract)
    else:
        rows = read_feature_rows(spark, input, option="--input")
    with session_settings(spark, settings):
        score(rows).write.mode("overwrite" if overwrite else "errorifexists").parquet(output)
    counts = spark.read.parquet(output).groupBy("status", "genre").count().collect()
    genres: dict[str, int] = {}
    for row in counts:
        if row.genre is not None:
            genres[row.genre] = genres.get(row.genre, 0) + row["count"]
    total = sum(row["count"] for row in counts)
    ok = sum(row["count"] for row in counts if row.status == "ok")
    return {
        "job": "predict",
        "input": input,
        "input_format": input_format,
        "model": model_dir,
        "output": output,
        "rows": total,
        "ok": ok,
        "errors": total - ok,
        "genres": dict(sorted(genres.items(), key=lambda item: (-item[1], item[0]))),
        "wall_s": round(time.perf_counter() - started, 3),
    }


def format_summary(summary: Mapping) -> str:
    """The printed form of :func:`run`'s summary."""
    genres = ", ".join(f"{genre} {n}" for genre, n in summary["genres"].items()) or "none"
    return "\n".join(
        [
            f"predict: {summary['rows']} rows ({summary['input_format']} input), {summary['ok']}"
            f" ok, {summary['errors']} errors, in {summary['wall_s']:.1f} s",
            f"  genres  {genres}",
            f"  output  {summary['output']}",
        ]
    )
