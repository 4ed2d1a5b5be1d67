"""One-vs-rest linear SVMs of all classes at once: a Spark ML Estimator and its Model.

:class:`OneVsRestLinearSVC` fits what Spark's ``OneVsRest(classifier=LinearSVC(
standardization=False))`` fits, one binary linear SVM per class ``k`` (class ``k`` against
the rest), each minimising Spark's ``LinearSVC`` objective::

    sum_i v_i * max(0, 1 - y_ik * (w_k . x_i + b_k)) / sum_i v_i  +  regParam / 2 * |w_k|^2

with ``y_ik = +1`` for rows of class ``k`` and ``-1`` otherwise, row weights ``v_i``
(``weightCol``, else 1) and an unpenalised intercept ``b_k``: the hinge loss, not a smoothed
one, so ``regParam`` means what it means to Spark (see
:func:`fmagenre.ml.search_space.sklearn_C`). Spark's one-vs-rest trains each class with its
own optimiser, one Spark job per class and per function evaluation. Here the rows are packed
once into cached numpy blocks (float32 vectors, int labels, weights) and each function
evaluation is one Spark job that computes the losses and (sub)gradients of all K problems
together; on the driver, K L-BFGS optimisers (10 corrections, as Spark's) advance in
lockstep, each with its own history, backtracking (Armijo) line search and stopping rule.
One job tries 4 step sizes of every class's line search at once (the loss of each, the
gradient of the first and, for the others, of the few rows whose hinge changes side), so an
iteration is one Spark job but where all 4 fail.
Spark's optimiser differs in its line search (strong Wolfe); both follow a subgradient of the
non-smooth hinge, so after ``maxIter`` iterations the models agree closely, not exactly.

Like ``LinearSVC(standardization=False)`` it does not scale the features: the training
pipeline's ``StandardScaler`` has done so. A class absent from the training rows gets a
model that scores every row as not of that class.

:class:`OneVsRestLinearSVCModel` writes each class's margin ``w_k . x + b_k`` to
``rawPredictionCol`` (a vector) and the class of the largest margin (the first of equals) to
``predictionCol``, as Spark's ``OneVsRestModel`` does; a pandas UDF computes them a batch of
rows at a time. It is saved as its Params and coefficients in the ``metadata`` directory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
from pyspark import RDD, StorageLevel, keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import (
    HasFeaturesCol,
    HasLabelCol,
    HasMaxIter,
    HasPredictionCol,
    HasRawPredictionCol,
    HasRegParam,
    HasTol,
    HasWeightCol,
)
from pyspark.ml.util import (
    DefaultParamsReadable,
    DefaultParamsReader,
    DefaultParamsWritable,
    DefaultParamsWriter,
    MLReadable,
    MLReader,
    MLWritable,
    MLWriter,
)
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

#: L-BFGS corrections kept (Spark's LinearSVC keeps 10).
MEMORY = 10
#: Function values a problem's stopping rule looks back on (Breeze's default).
VALUE_WINDOW = 20
#: Armijo's sufficient-decrease constant.
ARMIJO = 1e-4
#: Step sizes (times the first one) that one Spark job tries at once, and the jobs an
#: iteration's line search may take (each tries the next 4 halvings).
STEPS = (1.0, 0.5, 0.25, 0.125)
LINE_SEARCH_JOBS = 3


class _SVCParams(
    HasFeaturesCol,
    HasLabelCol,
    HasPredictionCol,
    HasRawPredictionCol,
    HasWeightCol,
    HasMaxIter,
    HasRegParam,
    HasTol,
):
    fitIntercept = Param(
        Params._dummy(),
        "fitIntercept",
        "whether to fit an intercept term (unpenalised)",
        typeConverter=TypeConverters.toBoolean,
    )

    def __init__(self, *args):
        super().__init__(*args)
        # Spark's LinearSVC defaults.
        self._setDefault(maxIter=100, regParam=0.0, tol=1e-6, fitIntercept=True)

    def getFitIntercept(self) -> bool:
        return self.getOrDefault(self.fitIntercept)

    def _weight(self) -> str | None:
        if self.isDefined(self.weightCol) and self.getWeightCol():
            return self.getWeightCol()
        return None


class OneVsRestLinearSVC(Estimator, _SVCParams, DefaultParamsReadable, DefaultParamsWritable):
    """Fits one linear SVM per class, all classes in each Spark job (see the module).

    Parameters
    ----------
    featuresCol, labelCol : str
        A vector column, and class indices 0, 1, ... (K classes: the label's nominal
        metadata, else the largest index plus one).
    predictionCol, rawPredictionCol : str
        The model's outputs: the class index (double), the K margins (vector).
    weightCol : str or None
        Non-negative row weights; None weighs every row 1.
    maxIter : int
        L-BFGS iterations per class, at most.
    regParam : float
        L2 penalty ``regParam / 2 * |w|^2``, Spark's ``LinearSVC`` meaning.
    tol : float
        A class stops once its objective moved less than ``tol`` times its initial value
        over the last 20 iterations, or its gradient's largest entry is under ``tol`` times
        the objective.
    fitIntercept : bool
        Fit an unpenalised intercept per class.
    """

    @keyword_only
    def __init__(
        self,
        *,
        featuresCol: str = "features",
        labelCol: str = "label",
        predictionCol: str = "prediction",
        rawPredictionCol: str = "rawPrediction",
        weightCol: str | None = None,
        maxIter: int = 100,
        regParam: float = 0.0,
        tol: float = 1e-6,
        fitIntercept: bool = True,
    ) -> None:
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(
        self,
        *,
        featuresCol: str = "features",
        labelCol: str = "label",
        predictionCol: str = "prediction",
        rawPredictionCol: str = "rawPrediction",
        weightCol: str | None = None,
        maxIter: int = 100,
        regParam: float = 0.0,
        tol: float = 1e-6,
        fitIntercept: bool = True,
    ) -> OneVsRestLinearSVC:
        """Set the given params (see the class); None leaves a param as it is."""
        kwargs = self._input_kwargs
        return self._set(**{key: value for key, value in kwargs.items() if value is not None})

    def _fit(self, dataset: DataFrame) -> OneVsRestLinearSVCModel:
        started = time.perf_counter()
        if self.getMaxIter() < 0 or self.getRegParam() < 0 or self.getTol() < 0:
            raise ValueError("maxIter, regParam and tol must not be negative")
        blocks = _blocks(dataset, self.getFeaturesCol(), self.getLabelCol(), self._weight())
        try:
            rows, weight_sum, top_label, dims = blocks.map(_block_summary).treeAggregate(
                (0, 0.0, -1, -1), _merge, _merge, depth=2
            )
            if rows == 0 or weight_sum <= 0:
                raise ValueError("no training rows, or no positive weight")
            classes = max(_nominal_classes(dataset, self.getLabelCol()) or 0, top_label + 1)
            jobs = [1]

            def evaluate(
                W: np.ndarray, direction: np.ndarray, steps: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
                jobs[0] += 1
                losses, grads = blocks.mapPartitions(
                    _partial_hinge(W, direction, steps, intercept=self.getFitIntercept())
                ).treeAggregate(
                    (np.zeros(steps.shape), np.zeros((*steps.shape, W.shape[1]))),
                    _add_pair,
                    _add_pair,
                    depth=2,
                )
                points = W[:, None, :] + steps[:, :, None] * direction[:, None, :]
                return _objective(points, losses, grads, weight_sum, self.getRegParam())

            W, iterations = lockstep_lbfgs(
                evaluate,
                np.zeros((classes, dims + 1)),
                max_iter=self.getMaxIter(),
                tol=self.getTol(),
            )
        finally:
            blocks.unpersist()
        model = OneVsRestLinearSVCModel(coefficients=W[:, :dims], intercepts=W[:, dims])
        model.training_summary = {
            "rows": rows,
            "classes": classes,
            "iterations": iterations,
            "spark_jobs": jobs[0],
            "seconds": time.perf_counter() - started,
        }
        log.debug("one-vs-rest SVC: %s", model.training_summary)
        return self._copyValues(model)


class OneVsRestLinearSVCModel(Model, _SVCParams, MLReadable, MLWritable):
    """K linear SVMs: margins to ``rawPredictionCol``, the largest one's class to
    ``predictionCol``.

    Parameters
    ----------
    coefficients : array-like
        Shape ``(K, numFeatures)``.
    intercepts : array-like
        Shape ``(K,)``.

    Attributes
    ----------
    training_summary : dict
        Rows, classes, L-BFGS iterations per class, Spark jobs and seconds of the fit that
        made the model (not saved; empty otherwise).
    """

    def __init__(self, *, coefficients, intercepts) -> None:
        super().__init__()
        self.coefficients = np.asarray(coefficients, dtype=np.float64)
        self.intercepts = np.asarray(intercepts, dtype=np.float64)
        if self.coefficients.ndim != 2 or self.intercepts.shape != self.coefficients.shape[:1]:
            raise ValueError(
                f"coefficients {self.coefficients.shape} and intercepts"
                f" {self.intercepts.shape} do not fit: need (K, d) and (K,)"
            )
        self.training_summary: dict = {}

    @property
    def numClasses(self) -> int:
        return self.coefficients.shape[0]

    @property
    def numFeatures(self) -> int:
        return self.coefficients.shape[1]

    def _transform(self, dataset: DataFrame) -> DataFrame:
        margins = _margins_udf(self.coefficients, self.intercepts)
        raw = "_ovr_svc_margins"
        scored = dataset.withColumn(raw, margins(vector_to_array(F.col(self.getFeaturesCol()))))
        outputs = {}
        if self.getPredictionCol():
            # An expression: Spark 3.5's array_position takes no Column as its value.
            best = F.expr(f"array_position({raw}, array_max({raw})) - 1")
            outputs[self.getPredictionCol()] = best.cast("double")
        if self.getRawPredictionCol():
            outputs[self.getRawPredictionCol()] = array_to_vector(F.col(raw))
        return scored.withColumns(outputs).drop(raw)

    def copy(self, extra=None) -> OneVsRestLinearSVCModel:
        that = super().copy(extra)
        that.coefficients = self.coefficients.copy()
        that.intercepts = self.intercepts.copy()
        return that

    def write(self) -> MLWriter:
        return _ModelWriter(self)

    @classmethod
    def read(cls) -> MLReader:
        return _ModelReader()


class _ModelWriter(MLWriter):
    def __init__(self, instance: OneVsRestLinearSVCModel):
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        # float() and repr give JSON numbers that read back bit for bit.
        extra = {
            "coefficients": self.instance.coefficients.tolist(),
            "intercepts": self.instance.intercepts.tolist(),
        }
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sc, extraMetadata=extra)


class _ModelReader(MLReader):
    def load(self, path: str) -> OneVsRestLinearSVCModel:
        metadata = DefaultParamsReader.loadMetadata(path, self.sc)
        model = OneVsRestLinearSVCModel(
            coefficients=np.array(metadata["coefficients"], dtype=np.float64).reshape(
                len(metadata["intercepts"]), -1
            ),
            intercepts=metadata["intercepts"],
        )
        model._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(model, metadata)
        return model


def _margins_udf(coefficients: np.ndarray, intercepts: np.ndarray):
    """A pandas UDF: arrays of features to arrays of the K margins."""

    @F.pandas_udf("array<double>")
    def margins(features: pd.Series) -> pd.Series:
        if features.empty:
            return pd.Series([], dtype=object)
        X = np.stack(features.to_numpy()).astype(np.float64, copy=False)
        return pd.Series(list(X @ coefficients.T + intercepts))

    return margins


def _nominal_classes(dataset: DataFrame, label: str) -> int | None:
    """The class count of the label's nominal metadata (``StringIndexer``'s), if any."""
    attribute = dataset.schema[label].metadata.get("ml_attr", {})
    if attribute.get("type") != "nominal":
        return None
    values = attribute.get("vals")
    return len(values) if values else attribute.get("num_vals")


def _blocks(dataset: DataFrame, features: str, label: str, weight: str | None) -> RDD:
    """The rows as cached ``(X float32 (n, d), y int32 (n,), weights float64 (n,))`` blocks,
    one per Arrow batch of the input."""
    columns = [
        vector_to_array(F.col(features), "float32").alias("x"),
        F.col(label).cast("int").alias("y"),
        (F.col(weight).cast("double") if weight else F.lit(1.0)).alias("v"),
    ]
    packed = dataset.select(*columns).mapInArrow(
        _pack, "x binary, y binary, v binary, rows int, dims int"
    )
    return packed.rdd.map(_unpack).persist(StorageLevel.MEMORY_AND_DISK)


def _pack(batches):
    """Arrow batches of rows to one-row batches of packed numpy blocks."""
    import pyarrow as pa

    for batch in batches:
        rows = batch.num_rows
        if rows == 0:
            continue
        x, y, v = batch.column(0), batch.column(1), batch.column(2)
        if x.null_count or y.null_count or v.null_count:
            raise ValueError("null features, label or weight in the training rows")
        values = x.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        dims = values.size // rows
        if dims * rows != values.size:
            raise ValueError("feature vectors of different sizes")
        labels = y.to_numpy(zero_copy_only=False).astype(np.int32)
        weights = v.to_numpy(zero_copy_only=False).astype(np.float64)
        if (labels < 0).any() or (weights < 0).any() or not np.isfinite(weights).all():
            raise ValueError("labels must be class indices, weights non-negative and finite")
        yield pa.RecordBatch.from_pydict(
            {
                "x": [values.tobytes()],
                "y": [labels.tobytes()],
                "v": [weights.tobytes()],
                "rows": [rows],
                "dims": [dims],
            },
            schema=pa.schema(
                [
                    ("x", pa.binary()),
                    ("y", pa.binary()),
                    ("v", pa.binary()),
                    ("rows", pa.int32()),
                    ("dims", pa.int32()),
                ]
            ),
        )


def _unpack(row) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.frombuffer(row.x, dtype=np.float32).reshape(row.rows, row.dims),
        np.frombuffer(row.y, dtype=np.int32),
        np.frombuffer(row.v, dtype=np.float64),
    )


def _block_summary(block) -> tuple[int, float, int, int]:
    X, y, v = block
    return len(y), float(v.sum()), int(y.max()), X.shape[1]


def _merge(a, b):
    """Two summaries (rows, weight sum, largest label, dimensions; -1: none) in one."""
    if min(a[3], b[3]) >= 0 and a[3] != b[3]:
        raise ValueError(f"feature vectors of different sizes: {a[3]} and {b[3]}")
    return a[0] + b[0], a[1] + b[1], max(a[2], b[2]), max(a[3], b[3])


def _add_pair(a, b):
    return a[0] + b[0], a[1] + b[1]


def _partial_hinge(
    W: np.ndarray, direction: np.ndarray, steps: np.ndarray, *, intercept: bool
) -> Callable[[Iterator], Iterator]:
    """A partition's weighted hinge-loss sums ``(K, T)`` and their gradients ``(K, T, d + 1)``
    at the T points ``W + steps[:, t] * direction`` of each class."""

    def run(blocks):
        classes, dims = W.shape[0], W.shape[1] - 1
        losses = np.zeros(steps.shape)
        grads = np.zeros((*steps.shape, dims + 1))
        for X32, y, v in blocks:
            X = X32.astype(np.float64)
            base = X @ W[:, :dims].T
            along = X @ direction[:, :dims].T
            if intercept:
                base += W[:, dims]
                along += direction[:, dims]
            signs = np.where(y[:, None] == np.arange(classes), 1.0, -1.0)
            first = None
            for t in range(steps.shape[1]):
                slack = 1.0 - signs * (base + steps[:, t] * along)
                violated = slack > 0
                losses[:, t] += v @ np.where(violated, slack, 0.0)
                # d/dm of v * max(0, 1 - s m) is -v s where the margin is violated.
                coef = np.where(violated, -signs * v[:, None], 0.0)
                if first is None:
                    first, first_grad = coef, coef.T @ X
                    grads[:, t, :dims] += first_grad
                else:
                    # Only the rows whose hinge changed side change the gradient.
                    change = coef - first
                    rows = np.flatnonzero(change.any(axis=1))
                    grads[:, t, :dims] += first_grad + change[rows].T @ X[rows]
                if intercept:
                    grads[:, t, dims] += coef.sum(axis=0)
        yield losses, grads

    return run


def _objective(
    points: np.ndarray, losses: np.ndarray, grads: np.ndarray, weight_sum: float, reg: float
) -> tuple[np.ndarray, np.ndarray]:
    """The objective ``(K, T)`` and gradient ``(K, T, d + 1)`` at ``points`` ``(K, T, d + 1)``
    from the loss sums; the intercept is unpenalised."""
    dims = points.shape[-1] - 1
    weights = points[..., :dims]
    values = losses / weight_sum + 0.5 * reg * np.einsum("ktd,ktd->kt", weights, weights)
    gradients = grads / weight_sum
    gradients[..., :dims] += reg * weights
    return values, gradients


def lockstep_lbfgs(
    evaluate: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    start: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    memory: int = MEMORY,
) -> tuple[np.ndarray, list[int]]:
    """Minimise K independent functions of ``R^D`` with K L-BFGS optimisers in lockstep.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(W, P, steps)``: the values ``(K, T)`` and gradients ``(K, T, D)`` at the
        points ``W[k] + steps[k, t] * P[k]``, row ``k`` depending on row ``k`` of the
        points only. Called once at the start, then once per iteration and more only when
        all of a line search's :data:`STEPS` fail.
    start : numpy.ndarray
        Starting points, shape ``(K, D)``.
    max_iter : int
        Iterations per problem, at most.
    tol : float
        A problem stops when its value moved by at most ``tol`` times its initial value over
        the last :data:`VALUE_WINDOW` iterations, when its gradient's largest entry is at
        most ``max(tol * value, 1e-8)``, or when its line search fails.
    memory : int
        Corrections kept per problem.

    Returns
    -------
    numpy.ndarray
        The points reached, ``(K, D)``.
    list of int
        The iterations each problem ran.
    """
    W = np.array(start, dtype=np.float64)
    classes = W.shape[0]
    values, grads = evaluate(W, np.zeros_like(W), np.zeros((classes, 1)))
    values, grads = values[:, 0], grads[:, 0]
    initial = np.abs(values).copy()
    window = [values.copy()]
    running = ~_gradient_small(grads, values, tol)
    iterations = np.zeros(classes, dtype=int)
    # Correction pairs, oldest first; a problem that rejected a pair has zeros there.
    pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    scale = np.ones(classes)
    fractions = np.array(STEPS)
    for step in range(max_iter):
        if not running.any():
            break
        direction = -_two_loop(grads, pairs, scale)
        direction[~running] = 0.0
        slope = np.einsum("kd,kd->k", grads, direction)
        uphill = running & (slope >= 0)
        direction[uphill] = -grads[uphill]
        slope[uphill] = -np.einsum("kd,kd->k", grads[uphill], grads[uphill])
        # Breeze's first step is 1 / |direction|; then the quasi-Newton step 1.
        first = np.ones(classes)
        if step == 0:
            first = 1.0 / np.maximum(np.linalg.norm(direction, axis=1), 1e-300)
        steps = first[:, None] * fractions
        pending = running.copy()
        new_W, new_values, new_grads = W.copy(), values.copy(), grads.copy()
        for _ in range(LINE_SEARCH_JOBS):
            trial_values, trial_grads = evaluate(W, direction, steps)
            fine = trial_values <= values[:, None] + ARMIJO * steps * slope[:, None]
            accepted = pending & fine.any(axis=1)
            # The largest step that decreases enough.
            best = np.argmax(fine, axis=1)
            rows = np.flatnonzero(accepted)
            chosen = steps[rows, best[rows]]
            new_W[rows] = W[rows] + chosen[:, None] * direction[rows]
            new_values[rows] = trial_values[rows, best[rows]]
            new_grads[rows] = trial_grads[rows, best[rows]]
            pending &= ~accepted
            if not pending.any():
                break
            steps = steps * fractions[-1] / 2
        moved = running & ~pending
        iterations[moved] += 1
        s, y = new_W - W, new_grads - grads
        sy = np.einsum("kd,kd->k", s, y)
        yy = np.einsum("kd,kd->k", y, y)
        # The hinge is not smooth: keep only pairs of positive curvature.
        keep = moved & (sy > 1e-12 * np.maximum(yy, 1e-300))
        pairs.append(
            (
                np.where(keep[:, None], s, 0.0),
                np.where(keep[:, None], y, 0.0),
                np.where(keep, 1.0 / np.where(keep, sy, 1.0), 0.0),
            )
        )
        if len(pairs) > memory:
            pairs.pop(0)
        scale = np.where(keep, sy / np.where(keep, yy, 1.0), scale)
        W, values, grads = new_W, new_values, new_grads
        window = [*window[-(VALUE_WINDOW - 1) :], values.copy()]
        flat = np.abs(values - np.max(window[:-1], axis=0)) <= tol * initial
        running &= ~(pending | flat | _gradient_small(grads, values, tol))
    return W, iterations.tolist()


def _gradient_small(grads: np.ndarray, values: np.ndarray, tol: float) -> np.ndarray:
    return np.abs(grads).max(axis=1) <= np.maximum(tol * np.abs(values), 1e-8)


def _two_loop(grads: np.ndarray, pairs: list, scale: np.ndarray) -> np.ndarray:
    """The L-BFGS product ``H g`` of each problem (rows), from its correction pairs."""
    q = grads.copy()
    alphas = []
    for s, y, rho in reversed(pairs):
        alpha = rho * np.einsum("kd,kd->k", s, q)
        q -= alpha[:, None] * y
        alphas.append(alpha)
    r = scale[:, None] * q
    for (s, y, rho), alpha in zip(pairs, reversed(alphas), strict=True):
        beta = rho * np.einsum("kd,kd->k", y, r)
        r += s * (alpha - beta)[:, None]
    return r
