"""Hard-voting ensemble of fitted Spark ML models, saved and loaded as one model.

:class:`VotingEnsembleModel` holds a ``preprocessing`` transformer that turns the feature
columns (``featureCols``) into one ``featuresCol`` (here: mean imputation and assembly), and
the sub-models, which read ``featuresCol`` and write their class-index prediction to
``prediction_<name>`` (here: ``StandardScaler -> classifier`` pipelines). Each vote counts
once; the class with the most votes wins. A tie between classes (with three models: all
three disagree) goes to the tied class voted by the model that comes first in
``tieBreakOrder``, which the training job sets to the models by cross-validated kappa, best
first.

The output keeps the input columns as they were and adds every ``prediction_<name>``,
``prediction`` and the class name (``genre``) from the index-to-label mapping stored with the
model; a row whose votes are all null gets null. The input rows travel beside the models as
one struct column, and the sub-models see only ``featuresCol``: pyspark's one-vs-rest model
re-analyses its whole input plan once per class, which with 518 feature columns took longer
than the predictions themselves.

Persistence follows pyspark's ``OneVsRestModel``::

    PATH/metadata/          class, uid, Params (labels, model names, tie-break order...)
    PATH/preprocessing/     the preprocessing transformer, saved by its own writer
    PATH/models/<name>/     each sub-model, saved by its own writer

``VotingEnsembleModel.load(PATH)`` reads the metadata, then loads each part with the class
its own metadata names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import reduce

from pyspark.ml import Model, Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasFeaturesCol, HasPredictionCol
from pyspark.ml.util import (
    DefaultParamsReader,
    DefaultParamsWriter,
    MLReadable,
    MLReader,
    MLWritable,
    MLWriter,
)
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: The input rows, carried beside the sub-models' columns.
_INPUT = "_input"


def vote_column(name: str) -> str:
    """The column where sub-model ``name`` writes its vote."""
    return f"prediction_{name}"


def shown_columns(names: Sequence[str]) -> str:
    """The first ten of ``names`` for a message, `` ...`` when there are more."""
    return ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")


def _column(name: str) -> Column:
    """A top-level column, whatever characters its name holds."""
    return F.col("`" + name.replace("`", "``") + "`")


class _EnsembleParams(HasFeaturesCol, HasPredictionCol):
    labels = Param(
        Params._dummy(),
        "labels",
        "class names by class index",
        typeConverter=TypeConverters.toListString,
    )
    modelNames = Param(
        Params._dummy(),
        "modelNames",
        "sub-model names, in running order; sub-model NAME writes prediction_NAME",
        typeConverter=TypeConverters.toListString,
    )
    tieBreakOrder = Param(
        Params._dummy(),
        "tieBreakOrder",
        "model names by priority: a tie between classes goes to the first one's vote",
        typeConverter=TypeConverters.toListString,
    )
    featureCols = Param(
        Params._dummy(),
        "featureCols",
        "input columns the preprocessing reads",
        typeConverter=TypeConverters.toListString,
    )
    labelNameCol = Param(
        Params._dummy(),
        "labelNameCol",
        "output column of the winning class's name",
        typeConverter=TypeConverters.toString,
    )

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(predictionCol="prediction", labelNameCol="genre")

    def getLabels(self) -> list[str]:
        return self.getOrDefault(self.labels)

    def getModelNames(self) -> list[str]:
        return self.getOrDefault(self.modelNames)

    def getTieBreakOrder(self) -> list[str]:
        return self.getOrDefault(self.tieBreakOrder)

    def getFeatureCols(self) -> list[str]:
        return self.getOrDefault(self.featureCols)

    def getLabelNameCol(self) -> str:
        return self.getOrDefault(self.labelNameCol)


class VotingEnsembleModel(Model, _EnsembleParams, MLReadable, MLWritable):
    """Hard majority vote of fitted models, ties to the highest-priority model's vote.

    Parameters
    ----------
    preprocessing : Transformer
        Fitted; reads ``featureCols``, writes ``featuresCol``.
    models : sequence of Transformer
        Fitted sub-models; the i-th reads ``featuresCol`` and writes
        ``prediction_<modelNames[i]>``.
    modelNames : sequence of str
        Their names: lower-case letters, digits and ``_``, unique.
    labels : sequence of str
        Class name of each class index.
    featureCols : sequence of str
        Input columns; checked before anything runs.
    featuresCol : str
        The column between the preprocessing and the sub-models.
    tieBreakOrder : sequence of str or None
        All model names, highest priority first; None keeps ``modelNames``' order.
    predictionCol : str
        Output column of the winning class index.
    labelNameCol : str
        Output column of the winning class name.

    Raises
    ------
    ValueError
        When the models, names, labels or tie-break order do not fit together.
    """

    def __init__(
        self,
        *,
        preprocessing: Transformer,
        models: Sequence[Transformer],
        modelNames: Sequence[str],
        labels: Sequence[str],
        featureCols: Sequence[str],
        featuresCol: str = "features",
        tieBreakOrder: Sequence[str] | None = None,
        predictionCol: str = "prediction",
        labelNameCol: str = "genre",
    ) -> None:
        super().__init__()
        self.preprocessing = preprocessing
        self.models = list(models)
        self._set(
            modelNames=list(modelNames),
            labels=list(labels),
            featureCols=list(featureCols),
            featuresCol=featuresCol,
            tieBreakOrder=list(modelNames if tieBreakOrder is None else tieBreakOrder),
            predictionCol=predictionCol,
            labelNameCol=labelNameCol,
        )
        self._validate()

    def _validate(self) -> None:
        names = self.getModelNames()
        if not self.models or len(self.models) != len(names):
            raise ValueError(f"{len(self.models)} models for {len(names)} names; need one each")
        bad = [name for name in names if not _NAME.fullmatch(name)]
        if bad or len(set(names)) != len(names):
            raise ValueError(f"model names must be unique [a-z][a-z0-9_]*, got {names}")
        if sorted(self.getTieBreakOrder()) != sorted(names):
            raise ValueError(
                f"tieBreakOrder {self.getTieBreakOrder()} must list each of {names} once"
            )
        labels = self.getLabels()
        if not labels or len(set(labels)) != len(labels):
            raise ValueError(f"labels must be unique and not empty, got {labels}")

    def label_name(self, index: Column) -> Column:
        """The class name of a class-index column (null for null or unknown indices)."""
        names = F.array(*(F.lit(label) for label in self.getLabels()))
        return F.try_element_at(names, index.cast("int") + 1)

    def missing_features(self, columns: Sequence[str]) -> list[str]:
        """The feature columns the model reads that ``columns`` lacks, in the model's order."""
        present = set(columns)
        return [column for column in self.getFeatureCols() if column not in present]

    def vote(self) -> Column:
        """The winning class index of the sub-models' vote columns."""
        names = self.getModelNames()
        votes = [F.col(vote_column(name)) for name in names]
        priority = {name: rank for rank, name in enumerate(self.getTieBreakOrder())}
        # One (number of votes, -priority, class) struct per model's vote: the greatest is
        # the most-voted class, ties going to the highest-priority model. Null votes count
        # for no one.
        ballots = [
            F.struct(
                reduce(
                    Column.__add__, (F.when(other == vote, 1).otherwise(0) for other in votes)
                ).alias("count"),
                F.lit(-priority[name]).alias("priority"),
                vote.alias("vote"),
            )
            for name, vote in zip(names, votes, strict=True)
        ]
        best = ballots[0] if len(ballots) == 1 else F.greatest(*ballots)
        return best.getField("vote")

    def _transform(self, dataset: DataFrame) -> DataFrame:
        missing = self.missing_features(dataset.columns)
        if missing:
            raise ValueError(
                f"the input lacks {len(missing)} feature column(s): {shown_columns(missing)}"
            )
        votes = [vote_column(name) for name in self.getModelNames()]
        outputs = [*votes, self.getPredictionCol(), self.getLabelNameCol()]
        clashing = [column for column in outputs if column in dataset.columns]
        if clashing:
            raise ValueError(f"the input already has output column(s) {', '.join(clashing)}")
        inputs = dataset.select(
            F.struct(*map(_column, dataset.columns)).alias(_INPUT),
            *map(_column, self.getFeatureCols()),
        )
        kept = [_INPUT, self.getFeaturesCol()]
        result = self.preprocessing.transform(inputs).select(*kept)
        for vote, model in zip(votes, self.models, strict=True):
            kept.append(vote)
            result = model.transform(result).select(*kept)
        prediction = self.getPredictionCol()
        return result.select(f"{_INPUT}.*", *votes, self.vote().alias(prediction)).withColumn(
            self.getLabelNameCol(), self.label_name(F.col(prediction))
        )

    def copy(self, extra=None) -> VotingEnsembleModel:
        """A copy with copies of the parts; ``extra`` params apply to the ensemble."""
        that = super().copy(extra)
        that.preprocessing = self.preprocessing.copy()
        that.models = [model.copy() for model in self.models]
        return that

    def write(self) -> MLWriter:
        return _VotingEnsembleWriter(self)

    @classmethod
    def read(cls) -> MLReader:
        return _VotingEnsembleReader()


class _VotingEnsembleWriter(MLWriter):
    def __init__(self, instance: VotingEnsembleModel):
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        parts = _parts(path, self.instance)
        for part in parts.values():
            if not isinstance(part, MLWritable):
                raise ValueError(f"{part.uid} cannot be saved: it is not MLWritable")
        # A SparkContext: Spark 3.5 takes nothing else, Spark 4 also takes a session.
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sc)
        for part_path, part in parts.items():
            part.write().session(self.sparkSession).save(part_path)


class _VotingEnsembleReader(MLReader):
    def load(self, path: str) -> VotingEnsembleModel:
        metadata = DefaultParamsReader.loadMetadata(path, self.sc)
        expected = f"{VotingEnsembleModel.__module__}.{VotingEnsembleModel.__name__}"
        if metadata["class"] != expected:
            raise ValueError(f"{path} holds a {metadata['class']}, not a {expected}")
        names = metadata["paramMap"]["modelNames"]

        def load(part_path: str) -> Transformer:
            return DefaultParamsReader.loadParamsInstance(part_path, self.sc)

        ensemble = VotingEnsembleModel(
            preprocessing=load(_preprocessing_path(path)),
            models=[load(_model_path(path, name)) for name in names],
            modelNames=names,
            labels=metadata["paramMap"]["labels"],
            featureCols=metadata["paramMap"]["featureCols"],
        )
        ensemble._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(ensemble, metadata)
        ensemble._validate()
        return ensemble


def _preprocessing_path(path: str) -> str:
    return f"{path.rstrip('/')}/preprocessing"


def _model_path(path: str, name: str) -> str:
    return f"{path.rstrip('/')}/models/{name}"


def _parts(path: str, ensemble: VotingEnsembleModel) -> dict[str, Transformer]:
    """Where each part of ``ensemble`` goes under ``path``."""
    parts = {_preprocessing_path(path): ensemble.preprocessing}
    for name, model in zip(ensemble.getModelNames(), ensemble.models, strict=True):
        parts[_model_path(path, name)] = model
    return parts
