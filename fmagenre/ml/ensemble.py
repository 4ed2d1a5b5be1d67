"""Voting ensemble of Spark ML models: an Estimator, and the model it fits.

:class:`VotingEnsemble` fits a ``preprocessing`` stage that turns the feature columns
(``featureCols``) into one ``featuresCol`` (here: mean imputation and assembly), caches the
vectors, and fits each sub-estimator on them (here: ``StandardScaler -> classifier``
pipelines). Sub-estimator NAME reads ``featuresCol``, ``labelCol`` (and ``weightCol``) and
writes its class-index prediction to ``prediction_NAME``: the ensemble sets none of their
columns. The class names come from the ``labels`` Param or, when it is not set, from the
label column's metadata as ``StringIndexer`` writes it, so that
``Pipeline(stages=[StringIndexer(inputCol="genre_top", outputCol="label"), VotingEnsemble(...)])``
names the classes by itself.

:class:`VotingEnsembleModel` votes by its ``voting`` Param (:mod:`fmagenre.ml.voting` computes
the same votes on arrays). ``hard`` (the default, and the vote of every model saved before the
Param existed) counts each vote once; the class with the most votes wins. A tie between
classes (with three models: all three disagree) goes to the tied class voted by the model that
comes first in ``tieBreakOrder``, which the training job sets to the models by
cross-validated kappa, best first. ``kappa`` is the same vote with each model's vote weighing
its ``modelWeights``. ``soft`` reads each model's class margins (``rawPredictionCols``) and
picks the class of the largest ``log(sum_m w_m softmax(margins_m / T_m) / sum_m w_m) + b``,
with ``temperatures`` ``T``, ``modelWeights`` ``w`` (0 leaves a model out) and ``classBias``
``b``.

External members (``externalModels``, :mod:`fmagenre.ml.external`) are trained elsewhere:
member NAME brings its class log-probabilities as the input array ``margins_NAME`` (in
``labels`` order) and votes beside the models, its vote the argmax of its margins, its soft
probabilities ``softmax(margins / T)``. The per-model vote Params (``modelWeights``,
``temperatures``) list the models, then the external members; ``tieBreakOrder`` may list
them (those it leaves out come last). A null ``margins_NAME`` is an abstention: the row's
hard or kappa vote is the others', its soft vote the weighted mean of the members present
(their weights renormalised; 1 each when theirs are all 0).

The output keeps the input columns as they were and adds every ``prediction_<name>``,
``prediction`` and the class name (``genre``); a row whose votes are all null gets null (a
soft vote: a row with a null margin). The input rows travel beside the models as one struct
column, and the sub-models see only ``featuresCol``: pyspark's one-vs-rest model re-analyses
its whole input plan once per class, which with 518 feature columns took longer than the
predictions themselves.

Both are saved as pyspark's ``OneVsRest`` is, alone or as a stage of a ``Pipeline``::

    PATH/metadata/          class, uid, Params (labels, model names, tie-break order...)
    PATH/preprocessing/     the preprocessing stage, saved by its own writer
    PATH/models/<name>/     each sub-model (PATH/estimators/<name>/: each sub-estimator)

``load(PATH)`` reads the metadata, then loads each part with the class its own metadata names.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from functools import reduce

from pyspark import keyword_only
from pyspark.ml import Estimator, Model, Transformer
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasFeaturesCol, HasLabelCol, HasPredictionCol, HasWeightCol
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
from pyspark.sql.types import StructField

from fmagenre.errors import shown_names
from fmagenre.ml.external import margins_column
from fmagenre.ml.voting import VOTES

log = logging.getLogger(__name__)

_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: The input rows, carried beside the sub-models' columns.
_INPUT = "_input"
#: Class paths that earlier versions saved, read as today's class (fmagenre 0.1 had no
#: sub-packages).
_FORMER_CLASS_PATHS = {"VotingEnsembleModel": ("fmagenre.ensemble.VotingEnsembleModel",)}
#: A sub-model's class margins, as an array, while the soft vote needs them.
_RAW = "_raw_{}"
#: Params that hold stages: saved as parts, not in the metadata.
_STAGE_PARAMS = ("preprocessing", "estimators")


def vote_column(name: str) -> str:
    """The column where sub-model ``name`` writes its vote."""
    return f"prediction_{name}"


def _column(name: str) -> Column:
    """A top-level column, whatever characters its name holds."""
    return F.col("`" + name.replace("`", "``") + "`")


def _check_parts(
    count: int, names: Sequence[str], order: Sequence[str], *, external: Sequence[str] = ()
) -> None:
    """ValueError unless ``count`` parts have unique valid ``names`` (external members' names
    included) and ``order`` lists each part once (and external members at most once)."""
    if not count or count != len(names):
        raise ValueError(f"{count} models for {len(names)} names; need one each")
    voters = [*names, *external]
    bad = [name for name in voters if not _NAME.fullmatch(name)]
    if bad or len(set(voters)) != len(voters):
        raise ValueError(f"model names must be unique [a-z][a-z0-9_]*, got {voters}")
    listed = [name for name in order if name not in external]
    if sorted(listed) != sorted(names) or len(set(order)) != len(order):
        raise ValueError(
            f"tieBreakOrder {list(order)} must list each of {list(names)} once"
            + (f" (and may list {list(external)})" if external else "")
        )


def _check_labels(labels: Sequence[str]) -> None:
    if not labels or len(set(labels)) != len(labels):
        raise ValueError(f"labels must be unique and not empty, got {list(labels)}")


def _missing(columns: Sequence[str], features: Sequence[str]) -> list[str]:
    """The ``features`` that ``columns`` lacks, in the order of ``features``."""
    present = set(columns)
    return [column for column in features if column not in present]


def _check_features(columns: Sequence[str], features: Sequence[str]) -> None:
    missing = _missing(columns, features)
    if missing:
        raise ValueError(
            f"the input lacks {len(missing)} feature column(s): {shown_names(missing)}"
        )


def _nominal_values(field: StructField) -> list[str] | None:
    """The class names in a column's ML metadata (``StringIndexer``'s output), if any."""
    attribute = field.metadata.get("ml_attr", {})
    return attribute.get("vals") if attribute.get("type") == "nominal" else None


def _softmax_term(top: Column, temperature: float) -> Callable[[Column], Column]:
    """``x -> exp((x - top) / temperature)``: Spark's lambdas take their elements only."""
    return lambda x: F.exp((x - top) / temperature)


def _softmax(margins: Column, temperature: float) -> tuple[Column, Column]:
    """The terms of ``softmax(margins / temperature)`` (an array) and their sum."""
    scaled = F.transform(margins, _softmax_term(F.array_max(margins), temperature))
    return scaled, F.aggregate(scaled, F.lit(0.0), lambda sum_, x: sum_ + x)


def _probabilities(margins: Column) -> Column:
    """``softmax(margins)`` as an array."""
    scaled, total = _softmax(margins, 1.0)
    return F.transform(scaled, lambda x: x / total)


def _argmax(margins: Column) -> Column:
    """The index of an array's first largest element, as a double (null for null): the
    largest (element, -index) (Spark 3.5's array_position takes no column)."""
    pairs = F.transform(margins, lambda x, i: F.struct(x.alias("value"), (-i).alias("minus")))
    return (-F.array_max(pairs).getField("minus")).cast("double")


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


class _Persisted(MLReadable, MLWritable):
    """Saved as metadata plus one directory per part.

    A subclass lists its parts by directory (``_parts()``) and makes an instance of the
    metadata's Params and a function that loads a part's directory (``_from_parts``); the
    reader then sets the uid and the Params.
    """

    def write(self) -> MLWriter:
        return _EnsembleWriter(self)

    @classmethod
    def read(cls) -> MLReader:
        return _EnsembleReader(cls)


class VotingEnsemble(Estimator, _EnsembleParams, HasLabelCol, HasWeightCol, _Persisted):
    """Fits a preprocessing and sub-estimators into a :class:`VotingEnsembleModel`.

    ``fit`` fits ``preprocessing`` when it is an Estimator (on the label, weight and feature
    columns), caches the vectors it makes, fits each sub-estimator on them, then releases
    them. The model's ``fit_seconds`` holds the seconds of the preprocessing (fit, transform
    and cache) and of each sub-estimator.

    Parameters
    ----------
    preprocessing : Estimator or Transformer
        An Estimator to fit, or a fitted Transformer used as is; reads ``featureCols``,
        writes ``featuresCol``.
    estimators : sequence of Estimator
        The i-th reads ``featuresCol``, ``labelCol`` (and ``weightCol``) and writes
        ``prediction_<modelNames[i]>``.
    modelNames : sequence of str
        Their names: lower-case letters, digits and ``_``, unique.
    featureCols : sequence of str
        Input columns of the preprocessing.
    labels : sequence of str or None
        Class name of each class index; None for the label column's ``StringIndexer``
        metadata.
    tieBreakOrder : sequence of str or None
        All model names, highest priority first; None keeps ``modelNames``' order.
    featuresCol, labelCol, predictionCol, labelNameCol : str
        Columns; the last two are the model's outputs.
    weightCol : str or None
        A column the sub-estimators read, kept with the vectors; None for none.

    Raises
    ------
    ValueError
        From ``fit``, when the parts, names, labels or tie-break order do not fit together,
        or the input lacks feature columns.
    """

    preprocessing = Param(
        Params._dummy(),
        "preprocessing",
        "estimator to fit, or fitted transformer, that makes featuresCol of featureCols",
    )
    estimators = Param(
        Params._dummy(),
        "estimators",
        "sub-estimators, one per model name; estimator NAME writes prediction_NAME",
    )

    @keyword_only
    def __init__(
        self,
        *,
        preprocessing: Estimator | Transformer | None = None,
        estimators: Sequence[Estimator] | None = None,
        modelNames: Sequence[str] | None = None,
        featureCols: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        tieBreakOrder: Sequence[str] | None = None,
        featuresCol: str = "features",
        labelCol: str = "label",
        weightCol: str | None = None,
        predictionCol: str = "prediction",
        labelNameCol: str = "genre",
    ) -> None:
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(
        self,
        *,
        preprocessing: Estimator | Transformer | None = None,
        estimators: Sequence[Estimator] | None = None,
        modelNames: Sequence[str] | None = None,
        featureCols: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        tieBreakOrder: Sequence[str] | None = None,
        featuresCol: str = "features",
        labelCol: str = "label",
        weightCol: str | None = None,
        predictionCol: str = "prediction",
        labelNameCol: str = "genre",
    ) -> VotingEnsemble:
        """Set the given params (see the class); None leaves a param as it is."""
        kwargs = self._input_kwargs
        return self._set(**{key: value for key, value in kwargs.items() if value is not None})

    def getPreprocessing(self) -> Estimator | Transformer:
        return self.getOrDefault(self.preprocessing)

    def getEstimators(self) -> list[Estimator]:
        return list(self.getOrDefault(self.estimators))

    def _optional(self, param: Param):
        """The param's value, None when it has none."""
        return self.getOrDefault(param) if self.isDefined(param) else None

    def _names_and_order(self) -> tuple[list[str], list[str]]:
        """The model names and tie-break order, checked against the sub-estimators."""
        names = self.getModelNames()
        order = self._optional(self.tieBreakOrder) or names
        _check_parts(len(self.getEstimators()), names, order)
        return names, order

    def _fit(self, dataset: DataFrame) -> VotingEnsembleModel:
        names, order = self._names_and_order()
        features = self.getFeatureCols()
        _check_features(dataset.columns, features)
        label = self.getLabelCol()
        weight = [self.getWeightCol()] if self._optional(self.weightCol) else []
        rows = dataset.select(*map(_column, [label, *weight, *features]))
        labels = self._optional(self.labels) or _nominal_values(rows.schema[label])
        if labels is None:
            raise ValueError(
                f"no class names: set labels, or index {label} with a StringIndexer, whose"
                " metadata names the classes"
            )
        _check_labels(labels)
        seconds = {}
        started = time.perf_counter()
        preprocessing = self.getPreprocessing()
        if isinstance(preprocessing, Estimator):
            preprocessing = preprocessing.fit(rows)
        vectors = preprocessing.transform(rows).select(label, *weight, self.getFeaturesCol())
        vectors = vectors.cache()
        try:
            vectors.count()
            seconds["preprocessing"] = time.perf_counter() - started
            models = []
            for name, estimator in zip(names, self.getEstimators(), strict=True):
                started = time.perf_counter()
                models.append(estimator.fit(vectors))
                seconds[name] = time.perf_counter() - started
                log.info("fitted %s in %.1f s", name, seconds[name])
        finally:
            vectors.unpersist()
        model = VotingEnsembleModel(
            preprocessing=preprocessing,
            models=models,
            modelNames=names,
            labels=labels,
            featureCols=features,
            featuresCol=self.getFeaturesCol(),
            tieBreakOrder=order,
            predictionCol=self.getPredictionCol(),
            labelNameCol=self.getLabelNameCol(),
        )
        model.fit_seconds = seconds
        return model

    def copy(self, extra=None) -> VotingEnsemble:
        """A copy with copies of the parts; ``extra`` params apply to the ensemble."""
        that = super().copy(extra)
        if self.isDefined(self.preprocessing):
            that._set(preprocessing=self.getPreprocessing().copy())
        if self.isDefined(self.estimators):
            that._set(estimators=[estimator.copy() for estimator in self.getEstimators()])
        return that

    def _parts(self) -> dict[str, Params]:
        names, _ = self._names_and_order()
        parts = {"preprocessing": self.getPreprocessing()}
        for name, estimator in zip(names, self.getEstimators(), strict=True):
            parts[f"estimators/{name}"] = estimator
        return parts

    @classmethod
    def _from_parts(cls, params: dict, load: Callable[[str], Params]) -> VotingEnsemble:
        return cls(
            preprocessing=load("preprocessing"),
            estimators=[load(f"estimators/{name}") for name in params["modelNames"]],
        )


class VotingEnsembleModel(Model, _EnsembleParams, _Persisted):
    """Vote of fitted models: hard majority (ties to the highest-priority model's vote),
    weighted, or soft.

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
        All model names, highest priority first, and any of the external members; None keeps
        ``modelNames``' order.
    predictionCol : str
        Output column of the winning class index.
    labelNameCol : str
        Output column of the winning class name.
    subProbabilityCol : str or None
        The column the sub-models write class probabilities to: when set, the output also
        keeps each model's as ``probability_<name>`` (null for a model that writes none), and
        each external member's (the softmax of its margins; null where it abstains).
    externalModels : sequence of str
        Names of the external members (see the module), whose votes the output also keeps as
        ``prediction_<name>``; :meth:`setExternalModels` sets them.
    voting : str
        ``hard``, ``kappa`` or ``soft`` (see the module); :meth:`setVote` sets it with its
        parameters.
    keepMargins : bool
        Params, not arguments (``model.set(model.keepMargins, True)``): the output also keeps
        each model's class margins as the array ``margins_<name>``.

    Attributes
    ----------
    fit_seconds : dict of str to float
        Seconds of each part's fit by :class:`VotingEnsemble` (not saved; empty otherwise).

    Raises
    ------
    ValueError
        When the models, names, labels, tie-break order or vote parameters do not fit
        together.
    """

    voting = Param(
        Params._dummy(),
        "voting",
        "hard: most votes; kappa: votes weighted by modelWeights; soft: weighted mean of"
        " softmax(rawPredictionCols / temperatures), plus classBias",
        typeConverter=TypeConverters.toString,
    )
    modelWeights = Param(
        Params._dummy(),
        "modelWeights",
        "vote weight of each model (kappa and soft votes); empty for 1 each",
        typeConverter=TypeConverters.toListFloat,
    )
    rawPredictionCols = Param(
        Params._dummy(),
        "rawPredictionCols",
        "column of each sub-model's class margins (soft vote)",
        typeConverter=TypeConverters.toListString,
    )
    temperatures = Param(
        Params._dummy(),
        "temperatures",
        "softmax temperature of each sub-model's margins (soft vote); empty for 1 each",
        typeConverter=TypeConverters.toListFloat,
    )
    classBias = Param(
        Params._dummy(),
        "classBias",
        "added to each class's log mean probability (soft vote); empty for none",
        typeConverter=TypeConverters.toListFloat,
    )
    keepMargins = Param(
        Params._dummy(),
        "keepMargins",
        "keep each sub-model's class margins (rawPredictionCols) as the array margins_NAME",
        typeConverter=TypeConverters.toBoolean,
    )
    subProbabilityCol = Param(
        Params._dummy(),
        "subProbabilityCol",
        "column of the sub-models' class probabilities, kept as probability_NAME when set",
        typeConverter=TypeConverters.toString,
    )
    externalModels = Param(
        Params._dummy(),
        "externalModels",
        "members trained elsewhere: NAME votes with the class log-probabilities of the input"
        " array margins_NAME (null: it abstains); per-model vote Params list the models, then"
        " these",
        typeConverter=TypeConverters.toListString,
    )

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
        subProbabilityCol: str | None = None,
        externalModels: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self._setDefault(
            voting="hard",
            modelWeights=[],
            rawPredictionCols=[],
            temperatures=[],
            classBias=[],
            keepMargins=False,
            externalModels=[],
        )
        if externalModels:
            self._set(externalModels=list(externalModels))
        self.preprocessing = preprocessing
        self.models = list(models)
        if subProbabilityCol is not None:
            self._set(subProbabilityCol=subProbabilityCol)
        self.fit_seconds: dict[str, float] = {}
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
        _check_parts(
            len(self.models),
            self.getModelNames(),
            self.getTieBreakOrder(),
            external=self.getExternalModels(),
        )
        _check_labels(self.getLabels())

    def setExternalModels(self, value: Sequence[str]) -> VotingEnsembleModel:
        """Set the external members' names; the vote Params must then cover them too.

        Raises
        ------
        ValueError
            On an invalid name, or one of a model's.
        """
        names, order = self.getModelNames(), self.getTieBreakOrder()
        _check_parts(len(self.models), names, order, external=list(value))
        return self._set(externalModels=list(value))

    def getExternalModels(self) -> list[str]:
        return self.getOrDefault(self.externalModels)

    def voters(self) -> list[str]:
        """Every voter: the model names, then the external members'."""
        return [*self.getModelNames(), *self.getExternalModels()]

    def vote_priority(self) -> list[str]:
        """The tie-break order, then the external members it leaves out."""
        order = self.getTieBreakOrder()
        return [*order, *(name for name in self.getExternalModels() if name not in order)]

    def setVote(
        self,
        voting: str,
        *,
        modelWeights: Sequence[float] = (),
        rawPredictionCols: Sequence[str] = (),
        temperatures: Sequence[float] = (),
        classBias: Sequence[float] = (),
    ) -> VotingEnsembleModel:
        """Set the vote scheme and its parameters (see the Params).

        Raises
        ------
        ValueError
            When they do not fit the models and labels.
        """
        self._set(
            voting=voting,
            modelWeights=list(modelWeights),
            rawPredictionCols=list(rawPredictionCols),
            temperatures=list(temperatures),
            classBias=list(classBias),
        )
        self._check_vote()
        return self

    def getVoting(self) -> str:
        return self.getOrDefault(self.voting)

    def getModelWeights(self) -> list[float]:
        """The vote weight of each voter (1 each when none is set)."""
        return self.getOrDefault(self.modelWeights) or [1.0] * len(self.voters())

    def getRawPredictionCols(self) -> list[str]:
        return self.getOrDefault(self.rawPredictionCols)

    def getTemperatures(self) -> list[float]:
        return self.getOrDefault(self.temperatures) or [1.0] * len(self.voters())

    def getClassBias(self) -> list[float]:
        return self.getOrDefault(self.classBias)

    def _check_vote(self) -> None:
        voting, n, models = self.getVoting(), len(self.voters()), len(self.models)
        if voting not in VOTES:
            raise ValueError(f"voting must be {', '.join(VOTES)}, got {voting!r}")
        weights = self.getModelWeights()
        if len(weights) != n or min(weights) < 0 or not sum(weights) > 0:
            raise ValueError(f"modelWeights must be {n} non-negative numbers, not all 0")
        keep = self.getOrDefault(self.keepMargins)
        if (voting == "soft" or keep) and len(self.getRawPredictionCols()) != models:
            raise ValueError(
                "a soft vote or keepMargins needs the margins column of each of the"
                f" {models} models"
            )
        if voting != "soft":
            return
        temperatures = self.getTemperatures()
        if len(temperatures) != n or not min(temperatures) > 0:
            raise ValueError(f"temperatures must be {n} positive numbers")
        if len(self.getClassBias()) not in (0, len(self.getLabels())):
            raise ValueError(f"classBias must be empty or {len(self.getLabels())} numbers")

    def setSubProbabilityCol(self, value: str) -> VotingEnsembleModel:
        return self._set(subProbabilityCol=value)

    def getSubProbabilityCol(self) -> str | None:
        return (
            self.getOrDefault(self.subProbabilityCol) if self.isSet("subProbabilityCol") else None
        )

    def label_name(self, index: Column) -> Column:
        """The class name of a class-index column (null for null or unknown indices)."""
        names = F.array(*(F.lit(label) for label in self.getLabels()))
        return F.try_element_at(names, index.cast("int") + 1)

    def missing_features(self, columns: Sequence[str]) -> list[str]:
        """The feature columns the model reads that ``columns`` lacks, in the model's order."""
        return _missing(columns, self.getFeatureCols())

    def missing_margins(self, columns: Sequence[str]) -> list[str]:
        """The external members' margins columns (``margins_<name>``) that ``columns`` lacks."""
        return _missing(columns, [margins_column(name) for name in self.getExternalModels()])

    def vote(self) -> Column:
        """The winning class index of the voters' vote columns (hard or kappa vote; the
        soft vote reads the margins, :meth:`soft_vote`)."""
        names = self.voters()
        votes = [F.col(vote_column(name)) for name in names]
        priority = {name: rank for rank, name in enumerate(self.vote_priority())}
        weights = self.getModelWeights() if self.getVoting() == "kappa" else [1] * len(names)
        # One (votes or their weight, -priority, class) struct per model's vote: the greatest
        # is the most-voted class, ties going to the highest-priority model. Null votes count
        # for no one.
        ballots = [
            F.struct(
                reduce(
                    Column.__add__,
                    (
                        F.when(other == vote, weight).otherwise(0)
                        for other, weight in zip(votes, weights, strict=True)
                    ),
                ).alias("count"),
                F.lit(-priority[name]).alias("priority"),
                vote.alias("vote"),
            )
            for name, vote in zip(names, votes, strict=True)
        ]
        best = ballots[0] if len(ballots) == 1 else F.greatest(*ballots)
        return best.getField("vote")

    def soft_vote(self, margins: Sequence[Column]) -> Column:
        """The winning class index of the soft vote of each voter's class ``margins`` (arrays,
        in :meth:`voters` order): null when a model's is null; an external member's null
        margins are its abstention."""
        weights, bias = self.getModelWeights(), self.getClassBias()
        probabilities = [
            _softmax(margin, temperature)
            for margin, temperature in zip(margins, self.getTemperatures(), strict=True)
        ]
        models = len(self.models)
        shares = [F.lit(weight) for weight in weights]
        denominator = F.lit(float(sum(weights)))
        present = [m.isNotNull() for m in margins[models:]]
        if present:
            # The weights of the members present, renormalised; 1 each when all are 0.
            weighed = reduce(
                Column.__add__,
                [F.lit(float(sum(weights[:models])))]
                + [
                    F.when(p, w).otherwise(0.0)
                    for p, w in zip(present, weights[models:], strict=True)
                ],
            )
            shares = [F.when(weighed > 0, w).otherwise(1.0) for w in weights]
            shares[models:] = [
                F.when(p, share).otherwise(0.0)
                for p, share in zip(present, shares[models:], strict=True)
            ]
            denominator = reduce(Column.__add__, shares)
        scores = []
        for c in range(len(self.getLabels())):
            terms = [
                share * (scaled[c] / total)
                for (scaled, total), share in zip(probabilities, shares, strict=True)
            ]
            # An absent member's term is null: it adds nothing.
            terms[models:] = [
                F.when(p, term).otherwise(0.0)
                for p, term in zip(present, terms[models:], strict=True)
            ]
            mean = reduce(Column.__add__, terms) / denominator
            score = F.log(mean) + F.lit(bias[c] if bias else 0.0)
            # The greatest (score, -class): the first class of the largest score.
            scores.append(F.struct(score.alias("score"), F.lit(-c).alias("minus")))
        best = scores[0] if len(scores) == 1 else F.greatest(*scores)
        return F.when(best.getField("score").isNotNull(), (-best.getField("minus")).cast("double"))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        self._check_vote()
        _check_features(dataset.columns, self.getFeatureCols())
        missing = self.missing_margins(dataset.columns)
        if missing:
            raise ValueError(
                "the input lacks the class log-probabilities of external member(s):"
                f" {', '.join(missing)} (add them with each member's add_margins)"
            )
        votes = [vote_column(name) for name in self.voters()]
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
        source = self.getSubProbabilityCol()
        soft = self.getVoting() == "soft"
        keep = self.getOrDefault(self.keepMargins)
        raws = self.getRawPredictionCols() if soft or keep else [None] * len(self.models)
        probabilities, margins = [], []
        models = len(self.models)
        for i, (name, vote, model, raw) in enumerate(
            zip(self.getModelNames(), votes[:models], self.models, raws, strict=True)
        ):
            kept.append(vote)
            result = model.transform(result)
            if raw is not None:
                margins.append(_RAW.format(i))
                kept.append(margins[-1])
                result = result.withColumn(margins[-1], vector_to_array(_column(raw)))
            if source is not None:
                column = f"probability_{name}"
                written = source in result.columns
                result = result.withColumn(
                    column, F.col(source) if written else F.lit(None).cast(VectorUDT())
                )
                probabilities.append(column)
                kept.append(column)
            result = result.select(*kept)
        for i, name in enumerate(self.getExternalModels(), start=models):
            given = self._external_margins(name)
            margins.append(_RAW.format(i))
            result = result.withColumns({margins[-1]: given, vote_column(name): _argmax(given)})
            if source is not None:
                probabilities.append(f"probability_{name}")
                normalised = array_to_vector(_probabilities(given))
                result = result.withColumn(probabilities[-1], F.when(given.isNotNull(), normalised))
        prediction = self.getPredictionCol()
        winner = self.soft_vote([F.col(m) for m in margins]) if soft else self.vote()
        if keep:
            names = self.getModelNames()
            probabilities += [
                F.col(m).alias(f"margins_{n}") for m, n in zip(margins[:models], names, strict=True)
            ]
        outputs = [*votes, *probabilities, winner.alias(prediction)]
        return result.select(f"{_INPUT}.*", *outputs).withColumn(
            self.getLabelNameCol(), self.label_name(F.col(prediction))
        )

    def _external_margins(self, name: str) -> Column:
        """External member ``name``'s margins from the input, as doubles, checked for size."""
        given = F.col(f"{_INPUT}.{margins_column(name)}").cast("array<double>")
        classes = len(self.getLabels())
        message = f"{margins_column(name)} must hold {classes} class log-probabilities"
        return F.when(given.isNull() | (F.size(given) == classes), given).otherwise(
            F.raise_error(F.lit(message)).cast("array<double>")
        )

    def copy(self, extra=None) -> VotingEnsembleModel:
        """A copy with copies of the parts; ``extra`` params apply to the ensemble."""
        that = super().copy(extra)
        that.preprocessing = self.preprocessing.copy()
        that.models = [model.copy() for model in self.models]
        return that

    def _parts(self) -> dict[str, Params]:
        parts = {"preprocessing": self.preprocessing}
        for name, model in zip(self.getModelNames(), self.models, strict=True):
            parts[f"models/{name}"] = model
        return parts

    @classmethod
    def _from_parts(cls, params: dict, load: Callable[[str], Params]) -> VotingEnsembleModel:
        return cls(
            preprocessing=load("preprocessing"),
            models=[load(f"models/{name}") for name in params["modelNames"]],
            modelNames=params["modelNames"],
            labels=params["labels"],
            featureCols=params["featureCols"],
            tieBreakOrder=params["tieBreakOrder"],
            externalModels=params.get("externalModels", ()),
        )


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__name__}"


class _EnsembleWriter(MLWriter):
    def __init__(self, instance: _Persisted):
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        parts = self.instance._parts()
        for part in parts.values():
            if not isinstance(part, MLWritable):
                raise ValueError(f"{part.uid} cannot be saved: it is not MLWritable")
        params = {
            param.name: value
            for param, value in self.instance._paramMap.items()
            if param.name not in _STAGE_PARAMS
        }
        # A SparkContext: Spark 3.5 takes nothing else, Spark 4 also takes a session.
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sc, paramMap=params)
        for directory, part in parts.items():
            part.write().session(self.sparkSession).save(f"{path.rstrip('/')}/{directory}")


class _EnsembleReader(MLReader):
    def __init__(self, cls: type[_Persisted]):
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> _Persisted:
        metadata = DefaultParamsReader.loadMetadata(path, self.sc)
        expected = _class_path(self.cls)
        if metadata["class"] not in (expected, *_FORMER_CLASS_PATHS.get(self.cls.__name__, ())):
            raise ValueError(f"{path} holds a {metadata['class']}, not a {expected}")

        def load(directory: str) -> Params:
            return DefaultParamsReader.loadParamsInstance(
                f"{path.rstrip('/')}/{directory}", self.sc
            )

        instance = self.cls._from_parts(metadata["paramMap"], load)
        instance._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(instance, metadata)
        return instance
