"""Cohen's kappa for Spark ML: a confusion matrix aggregated in Spark, and an ``Evaluator``.

Spark ML has no kappa metric. :func:`confusion_matrix` aggregates the (weighted) counts of
(label, prediction) pairs with one ``groupBy`` (at most ``k x k`` rows reach the driver), and
:class:`KappaEvaluator` scores predictions with :func:`fmagenre.metrics.classification.cohen_kappa`
of it, so it can drive model selection like Spark's own evaluators.
"""

from __future__ import annotations

import numpy as np
from pyspark import keyword_only
from pyspark.ml.evaluation import Evaluator
from pyspark.ml.param.shared import HasLabelCol, HasPredictionCol, HasWeightCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fmagenre.metrics.classification import cohen_kappa


def confusion_matrix(
    dataset: DataFrame,
    *,
    label_col: str = "label",
    prediction_col: str = "prediction",
    weight_col: str | None = None,
    num_classes: int | None = None,
) -> np.ndarray:
    """The confusion matrix of class indices, true classes as rows, aggregated in Spark.

    Parameters
    ----------
    dataset : DataFrame
        Rows with a label and a prediction, both class indices (0, 1, ...; any numeric type).
    label_col, prediction_col : str
        Column names.
    weight_col : str or None
        Column of non-negative row weights; None counts each row once.
    num_classes : int or None
        Size of the matrix; None for the largest index seen plus one.

    Returns
    -------
    numpy.ndarray
        float64, shape ``(num_classes, num_classes)``.

    Raises
    ------
    ValueError
        On a null, negative, fractional or too large class index, a negative or null weight,
        or no rows.
    """
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    weight = F.col(weight_col).cast("double") if weight_col else F.lit(1.0)
    cells = (
        dataset.select(
            F.col(label_col).cast("double").alias("label"),
            F.col(prediction_col).cast("double").alias("prediction"),
            weight.alias("weight"),
        )
        .groupBy("label", "prediction")
        .agg(F.sum("weight").alias("weight"), F.min("weight").alias("min_weight"))
        .collect()
    )
    if not cells:
        raise ValueError("no rows to evaluate")
    for cell in cells:
        for name, value in (("label", cell.label), ("prediction", cell.prediction)):
            if value is None or value < 0 or not value.is_integer():
                raise ValueError(f"{name} values must be class indices 0, 1, ..., got {value}")
        if cell.min_weight is None or cell.min_weight < 0:
            raise ValueError(f"weights must be non-negative numbers, got {cell.min_weight}")
    largest = int(max(max(cell.label, cell.prediction) for cell in cells))
    size = largest + 1 if num_classes is None else num_classes
    if largest >= size:
        raise ValueError(f"class index {largest} does not fit {num_classes} classes")
    matrix = np.zeros((size, size))
    for cell in cells:
        matrix[int(cell.label), int(cell.prediction)] = cell.weight
    return matrix


def _given(kwargs: dict) -> dict:
    return {name: value for name, value in kwargs.items() if value is not None}


class KappaEvaluator(
    Evaluator,
    HasLabelCol,
    HasPredictionCol,
    HasWeightCol,
    DefaultParamsReadable,
    DefaultParamsWritable,
):
    """Cohen's kappa of class-index predictions; larger is better.

    Labels and predictions are class indices as Spark ML classifiers write them. With
    ``weightCol`` set, each row counts with its weight (as ``sample_weight`` does in
    ``sklearn.metrics.cohen_kappa_score``). Saved and loaded like Spark's evaluators.

    Examples
    --------
    >>> KappaEvaluator(predictionCol="prediction_lr").evaluate(predictions)  # doctest: +SKIP
    0.4127
    """

    @keyword_only
    def __init__(
        self,
        *,
        predictionCol: str = "prediction",
        labelCol: str = "label",
        weightCol: str | None = None,
    ) -> None:
        super().__init__()
        self._set(**_given(self._input_kwargs))

    @keyword_only
    def setParams(
        self,
        *,
        predictionCol: str = "prediction",
        labelCol: str = "label",
        weightCol: str | None = None,
    ) -> KappaEvaluator:
        """Set the given params (None leaves a param as it is)."""
        return self._set(**_given(self._input_kwargs))

    def _evaluate(self, dataset: DataFrame) -> float:
        weight_col = self.getWeightCol() if self.isDefined(self.weightCol) else None
        return cohen_kappa(
            confusion_matrix(
                dataset,
                label_col=self.getLabelCol(),
                prediction_col=self.getPredictionCol(),
                weight_col=weight_col,
            )
        )

    def isLargerBetter(self) -> bool:
        return True
