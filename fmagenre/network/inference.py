"""The network at work in Spark: log-probabilities in a pandas UDF, predictions, a fourth voter.

- :func:`add_log_probs`: a track's (or a timeline window's) class log-probabilities from its
  ``patches`` column, in a scalar pandas UDF; each Python worker loads the model once and
  scores with one torch thread. A row without patches, or whose patches cannot be read, gets
  null log-probabilities and its reason.
- :func:`network_predictions`: the prediction job's rows for a network model directory, the
  same columns as :func:`fmagenre.ml.prediction.predictions` (``vote_network`` and
  ``scores_network``, a map from genre to probability).
- :func:`network_member`: the network as an :class:`~fmagenre.ml.external.ExternalMember` of
  the voting ensemble (``jobs/train.py --with-network``).
- :func:`load_predictor`: what the prediction and timeline jobs score with, by the kind of the
  model directory: a network, the MIR ensemble, or the ensemble with the network as a voter
  (its copy in ``MODEL_DIR/members/network``).

Nothing here imports torch at module level: an ensemble without the network predicts without
the ``dl`` extra.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

from fmagenre.audio.names import network_names, uses_musicnn
from fmagenre.audio.patches import PatchSettings, patches_from_bytes
from fmagenre.errors import InputError
from fmagenre.ml.ensemble import VotingEnsembleModel
from fmagenre.ml.external import MEMBERS_DIR, ExternalMember, margins_column, reordered
from fmagenre.ml.prediction import PredictionError, column_or_null, load_model, predictions
from fmagenre.network.model_dir import (
    INFO,
    KIND,
    NETWORK_DIR,
    WEIGHTS,
    NetworkModel,
    info_path,
    model_kind,
    weights_path,
)
from fmagenre.platform.hadoop import read_bytes, write_output

#: The network's name as a voter and in the prediction columns.
NAME = "network"
_SCORES = StructType(
    [
        StructField("log_probs", ArrayType(FloatType())),
        StructField("error", StringType()),
    ]
)
#: Models loaded in this Python worker, by the digest of their bytes.
_LOADED: dict[str, NetworkModel] = {}


class NetworkInputError(InputError, ValueError):
    """A table or model directory that does not fit the network; the message says what to do."""


def _worker_model(data: bytes, digest: str) -> NetworkModel:
    model = _LOADED.get(digest)
    if model is None:
        _LOADED.clear()
        model = _LOADED[digest] = NetworkModel.from_bytes(data)
    return model


def _track_values(
    model: NetworkModel, blob, status, values
) -> tuple[list[float] | None, str | None]:
    """``values(patches)`` of a row's patches (a track's or a window's), or null and why (null
    reason for a row whose ``status`` is not ``ok``)."""
    if status is not None and status != "ok":
        return None, None
    if blob is None:
        return None, "no patches"
    try:
        patches = patches_from_bytes(bytes(blob), settings=model.settings)
        if len(patches) == 0:
            return None, "no patches"
        return values(patches).tolist(), None
    except ValueError as exc:
        return None, f"unreadable patches: {exc}"


def log_probs_column(model: NetworkModel, patches: Column, status: Column) -> Column:
    """A struct column ``(log_probs, error)``: the class log-probabilities of the row's patches
    (the mean over its patches, in ``model.genres`` order), or null and why (null error for a
    row whose ``status`` is not ``ok``: its own error says why)."""
    data = model.to_bytes()
    digest = hashlib.sha256(data).hexdigest()

    @F.pandas_udf(_SCORES)
    def scores(blobs: pd.Series, statuses: pd.Series) -> pd.DataFrame:
        loaded = _worker_model(data, digest)
        found = [
            _track_values(loaded, b, s, loaded.track_log_probs)
            for b, s in zip(blobs, statuses, strict=True)
        ]
        return pd.DataFrame(
            {"log_probs": [f[0] for f in found], "error": [f[1] for f in found]},
            index=blobs.index,
        )

    return scores(patches, status)


def _require_patches(rows: DataFrame) -> None:
    if "patches" not in rows.columns:
        raise NetworkInputError(
            "the rows have no patches column: extract the features with --patches (or"
            " [extract] patches = true) for the network"
        )


def add_log_probs(
    model: NetworkModel, rows: DataFrame, *, column: str, error_column: str | None = None
) -> DataFrame:
    """``rows`` with the array ``column`` of each row's class log-probabilities (null where it
    has no readable patches) and, when given, ``error_column`` saying why (lazy)."""
    _require_patches(rows)
    status = F.col("status") if "status" in rows.columns else F.lit("ok")
    scored = rows.withColumn("_network", log_probs_column(model, F.col("patches"), status))
    scored = scored.withColumn(column, F.col("_network.log_probs"))
    if error_column is not None:
        scored = scored.withColumn(error_column, F.col("_network.error"))
    return scored.drop("_network")


def require_network_patches(rows: DataFrame, model: NetworkModel, *, source: str) -> None:
    """Check that the patches of feature rows are cut as ``model``'s (by their ``settings``
    column, where they have one).

    Raises
    ------
    NetworkInputError
        When the rows have no patches column, or patches of other settings only.
    """
    _require_patches(rows)
    if "settings" not in rows.columns:
        return
    found = rows.where(F.col("patches").isNotNull()).select("settings").distinct().limit(20)
    keys = [row.settings or "" for row in found.collect()]
    if keys and not any(model.settings.key() in key for key in keys):
        raise _other_patches(model, f"the patches of {source}", keys[0])


def _other_patches(model: NetworkModel, whose: str, settings: str) -> NetworkInputError:
    return NetworkInputError(
        f"{whose} ({settings}) are not the network's ({model.settings.key()}): extract again"
        " with the network's patch settings"
    )


def add_embeddings(model: NetworkModel, rows: DataFrame) -> DataFrame:
    """``rows`` with the float columns :func:`~fmagenre.audio.names.network_names` of the
    network's last hidden layer, each row's mean over its patches (null where it has no
    readable patches: such a row is no point of the similarity space); lazy."""
    _require_patches(rows)
    data = model.to_bytes()
    digest = hashlib.sha256(data).hexdigest()

    @F.pandas_udf(ArrayType(FloatType()))
    def embed(blobs: pd.Series, statuses: pd.Series) -> pd.Series:
        loaded = _worker_model(data, digest)
        return pd.Series(
            [
                _track_values(loaded, b, s, loaded.track_embedding)[0]
                for b, s in zip(blobs, statuses, strict=True)
            ],
            index=blobs.index,
        )

    status = F.col("status") if "status" in rows.columns else F.lit("ok")
    names = network_names(model.embedding_width)
    embedded = rows.withColumn("_embedding", embed(F.col("patches"), status))
    return embedded.select(
        *rows.columns, *(F.col("_embedding")[i].alias(name) for i, name in enumerate(names))
    )


def network_predictions(
    model: NetworkModel, rows: DataFrame, *, extra: Sequence[str] = ()
) -> DataFrame:
    """The prediction job's rows for the network (lazy): ``track_id, path, status, error,
    *extra, genre, prediction, vote_network, scores_network``.

    A row whose features are ``ok`` but that has no readable patches (a file shorter than one
    patch, digital silence, a bad blob) becomes an ``error`` row with the reason.
    """
    scored = add_log_probs(model, rows, column="_log_probs", error_column="_why")
    status = column_or_null(rows, "status", "string")
    no_patches = status.eqNullSafe("ok") & F.col("_log_probs").isNull()
    why = (
        F.coalesce(F.col("patch_error"), F.col("_why"))
        if "patch_error" in rows.columns
        else (F.col("_why"))
    )
    genres = F.array(*(F.lit(g) for g in model.genres))
    index = F.when(
        F.col("_log_probs").isNotNull(),
        F.expr("array_position(_log_probs, array_max(_log_probs)) - 1").cast("int"),
    )
    # element_at with a null index gives the last element on Spark 4: hence the when.
    genre = F.when(F.col("_log_probs").isNotNull(), F.element_at(genres, index + 1))
    # The mean of log-probabilities is a log geometric mean: normalised to sum to 1.
    total = F.aggregate("_log_probs", F.lit(0.0), lambda acc, x: acc + F.exp(x))
    probabilities = F.transform("_log_probs", lambda x: F.exp(x) / total)
    return scored.select(
        column_or_null(rows, "track_id", "long").alias("track_id"),
        column_or_null(rows, "path", "string").alias("path"),
        F.when(no_patches, F.lit("error"))
        .otherwise(F.coalesce(status, F.lit("ok")))
        .alias("status"),
        F.when(no_patches, F.concat(F.lit("no patches for the network: "), why))
        .otherwise(column_or_null(rows, "error", "string"))
        .alias("error"),
        *extra,
        genre.alias("genre"),
        index.cast("double").alias("prediction"),
        genre.alias(f"vote_{NAME}"),
        F.when(F.col("_log_probs").isNotNull(), F.map_from_arrays(genres, probabilities)).alias(
            f"scores_{NAME}"
        ),
    )


def copy_network(spark: SparkSession, source: str, target: str) -> None:
    """The network's two files of ``source`` into the model directory ``target``."""
    folder = f"{target.rstrip('/')}/{NETWORK_DIR}"
    write_output(spark, folder, INFO, read_bytes(spark, info_path(source)))
    write_output(spark, folder, WEIGHTS, read_bytes(spark, weights_path(source)))


def _require_network(spark: SparkSession, path: str, option: str) -> None:
    kind = model_kind(spark, path)
    if kind == KIND:
        return
    if kind is None:
        raise NetworkInputError(
            f"{option} {path} holds no model: give the output directory of jobs/train_cnn.py"
        )
    raise NetworkInputError(
        f"{option} {path} holds the MIR ensemble of jobs/train.py, not a network: give the"
        " output directory of jobs/train_cnn.py"
    )


def load_network(spark: SparkSession, path: str, *, option: str) -> NetworkModel:
    """The network of the model directory ``path`` (jobs/train_cnn.py's output).

    Raises
    ------
    NetworkInputError
        When ``path`` holds no network (the message says what to give).
    fmagenre.network.TorchMissingError
        Without torch.
    """
    _require_network(spark, path, option)
    return NetworkModel.load(spark, path)


def network_member(
    spark: SparkSession,
    network_dir: str,
    *,
    patch_settings: str | None = None,
) -> ExternalMember:
    """The network of ``network_dir`` (``jobs/train_cnn.py``'s output) as a voter.

    Its margins are the tracks' log-probabilities from the feature table's ``patches``; it is
    held out on its validation tracks (it never trained on them).

    Parameters
    ----------
    spark : SparkSession
    network_dir : str
        A network model directory.
    patch_settings : str or None
        The feature table's ``settings`` value, checked against the network's patch settings
        when given.

    Raises
    ------
    NetworkInputError
        When the directory holds no network, or the patches were made another way.
    fmagenre.network.TorchMissingError
        Without torch.
    """
    _require_network(spark, network_dir, "--with-network")
    model = NetworkModel.load(spark, network_dir)
    if patch_settings is not None and model.settings.key() not in patch_settings:
        raise _other_patches(model, "the feature table's patches", patch_settings)
    held_out = frozenset(int(t) for t in model.info["validation"]["track_ids"])
    genres = tuple(model.genres)

    def add_margins(rows: DataFrame) -> DataFrame:
        return add_log_probs(model, rows, column=margins_column(NAME))

    return ExternalMember(
        name=NAME,
        labels=genres,
        add_margins=add_margins,
        held_out=held_out,
        save=lambda target: copy_network(spark, network_dir, target),
        source=network_dir,
    )


@dataclass
class Predictor:
    """What a model directory predicts with: the network, the MIR ensemble, or the ensemble
    with the network as a voter.

    Attributes
    ----------
    kind : str
        ``network`` or ``ensemble``.
    model_names : list of str
        The voters, whose ``vote_<name>`` and ``scores_<name>`` columns the output holds.
    patch_settings : PatchSettings or None
        The patches the model needs from extraction; None for none.
    musicnn : bool
        Whether it needs the musicnn family from extraction.
    """

    kind: str
    model_names: list[str]
    patch_settings: PatchSettings | None
    ensemble: VotingEnsembleModel | None = None
    network: NetworkModel | None = None

    @property
    def musicnn(self) -> bool:
        """Whether the model needs the musicnn family from extraction."""
        return self.ensemble is not None and uses_musicnn(self.ensemble.getFeatureCols())

    def predictions(
        self, rows: DataFrame, *, extra: Sequence[str] = (), scores: bool = False
    ) -> DataFrame:
        """The prediction rows (lazy): see :func:`fmagenre.ml.prediction.predictions`;
        ``scores`` adds each voter's ``scores_<name>`` (the network's always come)."""
        if self.ensemble is None:
            return network_predictions(self.network, rows, extra=extra)
        if scores and self.ensemble.getSubProbabilityCol() is None:
            from fmagenre.ml.classifiers import PROBABILITY_COL

            self.ensemble.setSubProbabilityCol(PROBABILITY_COL)
        if self.network is not None:
            _require_patches(rows)
            rows = add_log_probs(self.network, rows, column="_network_log_probs")
            rows = rows.withColumn(
                margins_column(NAME),
                reordered(
                    F.col("_network_log_probs"), self.network.genres, self.ensemble.getLabels()
                ),
            ).drop("_network_log_probs")
        return predictions(self.ensemble, rows, extra=extra)


def load_predictor(spark: SparkSession, model_dir: str) -> Predictor:
    """The :class:`Predictor` of ``model_dir``, whose kind is read from it.

    Raises
    ------
    fmagenre.ml.prediction.PredictionError
        When it holds no model.
    fmagenre.network.TorchMissingError
        When it needs the network and torch is not installed.
    """
    kind = model_kind(spark, model_dir)
    if kind == KIND:
        network = NetworkModel.load(spark, model_dir)
        return Predictor(KIND, [NAME], network.settings, network=network)
    ensemble = load_model(spark, model_dir)
    externals = ensemble.getExternalModels()
    unknown = [name for name in externals if name != NAME]
    if unknown:
        raise PredictionError(
            f"{model_dir} has voters this version cannot rebuild: {', '.join(unknown)}"
        )
    if not externals:
        return Predictor("ensemble", ensemble.getModelNames(), None, ensemble=ensemble)
    member = f"{model_dir.rstrip('/')}/{MEMBERS_DIR}/{NAME}"
    network = NetworkModel.load(spark, member)
    return Predictor(
        "ensemble",
        [*ensemble.getModelNames(), *externals],
        network.settings,
        ensemble=ensemble,
        network=network,
    )
