"""The ensemble's three classifiers as Spark ML pipelines, and their search spaces.

Each model is a pipeline ``StandardScaler -> classifier`` (:func:`training_pipeline`):

- ``lr``: multinomial :class:`~pyspark.ml.classification.LogisticRegression`;
- ``svc``: one linear SVM per class (one-vs-rest), Spark's ``LinearSVC`` objective, all
  classes trained together by :class:`fmagenre.ml.linear_svc.OneVsRestLinearSVC` (one Spark
  job per optimiser step instead of one per class); ``ClassifierSettings(svc="spark")``
  fits Spark's :class:`~pyspark.ml.classification.LinearSVC` through
  :class:`~pyspark.ml.classification.OneVsRest` instead, ``parallelism`` classes at once
  (models saved that way still load: both are Spark ML stages);
- ``xgb``: :class:`xgboost.spark.SparkXGBClassifier`, ``hist`` trees with 64 bins (4 times
  faster than 256 on FMA-sized data, for a negligible loss on standardised features).

They read ``_features``, which the shared :func:`preprocessing` makes of the feature columns:
a mean ``Imputer`` (in place: FMA's undefined skew or kurtosis of a constant row is NaN),
then a ``VectorAssembler``. The features are imputed and assembled once, for the search, the
fits and the ensemble (:class:`fmagenre.ml.ensemble.VotingEnsembleModel` keeps the fitted
preprocessing); each model fits its own scaler, on each fold's rows. The classifier writes
``prediction_<name>``.

XGBoost trains in Spark's barrier mode: its ``xgb_workers`` tasks start together, each with
``spark.task.cpus`` threads, and exchange histograms every tree level; a failed task restarts
them all. Spark refuses barrier stages under dynamic allocation ([SPARK-24942], still so in
Spark 4): the training job needs ``spark.dynamicAllocation.enabled=false`` and a fixed set of
executors (:func:`check_barrier_mode` says so before any work). The stage also waits until
``xgb_workers`` task slots are free at once, and fails after Spark's slot checks (about
10 minutes by default) when the cluster has fewer. The default, the session's default
parallelism, is the executor cores registered when the job starts: on a cluster, set it to
``spark.executor.instances x spark.executor.cores / spark.task.cpus``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pyspark.ml import Estimator, Pipeline
from pyspark.ml.classification import LinearSVC, LogisticRegression, OneVsRest
from pyspark.ml.feature import Imputer, StandardScaler, VectorAssembler
from pyspark.sql import SparkSession
from xgboost.spark import SparkXGBClassifier

from fmagenre.errors import InputError
from fmagenre.ml.linear_svc import OneVsRestLinearSVC
from fmagenre.ml.search_space import LogUniform

#: Model names, in the ensemble's column order.
MODEL_NAMES = ("lr", "svc", "xgb")
#: Implementations of the one-vs-rest SVC (:class:`ClassifierSettings`).
SVC_IMPLEMENTATIONS = ("lockstep", "spark")
LABEL_COL = "label"
WEIGHT_COL = "weight"
#: Intermediate columns, dropped by the ensemble once each model has run.
VECTOR_COL = "_features"
SCALED_COL = "_scaled"
RAW_COL = "_raw"
PROBABILITY_COL = "_probability"

#: Random-search ranges, all log-uniform. Iteration and tree counts are capped so that the
#: search of all three models on 100k FMA tracks fits in an hour on 2 cores
#: (``python -m fmagenre.bench train``). The SVC's cap of 50 dates from Spark's one-vs-rest,
#: a Spark job per class and line-search step; OneVsRestLinearSVC's iteration is one job for
#: all classes. The ranges are kept, so that searches stay comparable.
#
# regParam in scikit-learn's terms. Spark minimises mean loss + regParam * (a * |w|_1 +
# (1 - a) / 2 * |w|^2) (a = elasticNetParam, 0 for LinearSVC); scikit-learn C * summed loss
# + l1_ratio * |w|_1 + (1 - l1_ratio) / 2 * |w|^2. They are the same problem for
# C = 1 / (regParam * n), l1_ratio = a, n the training rows' total weight: their number,
# balanced class weights included (search_space.sklearn_C; Spark's source:
# L2RegularizationLoss, HingeBlockAggregator; scikit-learn 1.9's _logistic.py:
# l2_reg_strength = 1 / (C * sw_sum)). Neither penalises the intercept, except
# scikit-learn's LinearSVC (liblinear). `python -m fmagenre.bench parity` checks the
# mapping. Our ranges as C:
#
#   model  regParam       n = 93,222 (final fit)  n = 10,000 (search)  n = 6,667 (a fold)
#   lr     [1e-4, 1]      [1.1e-5, 0.11]          [1e-4, 1]            [1.5e-4, 1.5]
#   svc    [1e-5, 1e-1]   [1.1e-4, 1.1]           [1e-3, 10]           [1.5e-3, 15]
#
# scikit-learn's default C = 1 is regParam = 1 / n: 1.1e-5 at 93,222 rows, inside the svc
# range, below the lr one. The search picks regParam on the folds of the sample and the
# final fit keeps it on all training rows: in C, 14 times smaller than the winner's C on its
# folds (the thesis' RandomizedSearchCV refitted with the same C). The thesis (section
# "Hiper-parametrización y Ensemble") gives no numeric ranges to compare with, for none of
# the three models, only: "Se seleccionaron hiperparámetros específicos para cada modelo,
# tomando en cuenta [...] Selección de hiperparámetro más significativos [y] Rango de
# valores con crecimiento logarítmico", and "RandomizedSearchCV, con una estrategia de cross
# validation estratificada k=3, y la obtención de 10 modelos Random" scored by kappa.
# XGBoost's parameters mean the same in xgboost.spark and xgboost: no mapping.
SEARCH_SPACES: dict[str, dict[str, LogUniform]] = {
    "lr": {
        "regParam": LogUniform(1e-4, 1.0),
        "elasticNetParam": LogUniform(1e-3, 1.0),
        "maxIter": LogUniform(20, 150, integer=True),
    },
    "svc": {
        "regParam": LogUniform(1e-5, 1e-1),
        "maxIter": LogUniform(10, 50, integer=True),
    },
    "xgb": {
        "max_depth": LogUniform(2, 6, integer=True),
        "learning_rate": LogUniform(0.03, 0.3),
        "n_estimators": LogUniform(20, 200, integer=True),
        "subsample": LogUniform(0.5, 1.0),
        "colsample_bytree": LogUniform(0.2, 1.0),
        "min_child_weight": LogUniform(1.0, 20.0),
    },
}


def prediction_col(name: str) -> str:
    """The column a model writes its class-index predictions to."""
    return f"prediction_{name}"


@dataclass(frozen=True)
class ClassifierSettings:
    """What the classifiers share beyond their hyper-parameters."""

    #: Train with the ``weight`` column (class weights).
    weighted: bool = False
    #: Binary models of Spark's one-vs-rest SVC (``svc="spark"``) trained at once.
    parallelism: int = 1
    #: XGBoost barrier tasks (see the module's docstring).
    xgb_workers: int = 1
    seed: int = 0
    #: The SVC: "lockstep" (:class:`~fmagenre.ml.linear_svc.OneVsRestLinearSVC`) or "spark"
    #: (Spark's ``OneVsRest(LinearSVC)``, the benchmark's former path).
    svc: str = "lockstep"

    def __post_init__(self):
        for name in ("parallelism", "xgb_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        check_svc(self.svc)

    def for_search(self, parallelism: int) -> ClassifierSettings:
        """The settings of search fits run ``parallelism`` at a time: with more than one,
        one XGBoost barrier task per fit.

        A search fold is small (a few thousand rows), where XGBoost's per-level histogram
        exchange between tasks costs more than it saves: several one-task fits at once
        (:func:`fmagenre.ml.search.random_search`'s ``parallelism``) keep the cores busier.
        """
        return replace(self, xgb_workers=1) if parallelism > 1 else self


def check_svc(svc: str) -> None:
    """Raise ``ValueError`` unless ``svc`` is one of :data:`SVC_IMPLEMENTATIONS`."""
    if svc not in SVC_IMPLEMENTATIONS:
        raise ValueError(f"svc must be {' or '.join(SVC_IMPLEMENTATIONS)}, got {svc!r}")


class BarrierModeError(InputError, RuntimeError):
    """A session whose settings rule out XGBoost's barrier-mode training."""


def check_barrier_mode(spark: SparkSession) -> None:
    """Raise BarrierModeError when Spark would refuse XGBoost's barrier stage.

    Local mode ignores dynamic allocation, as Spark does.
    """
    conf = spark.sparkContext.getConf()
    dynamic = conf.get("spark.dynamicAllocation.enabled", "false").strip().lower() == "true"
    if dynamic and not spark.sparkContext.master.startswith("local"):
        raise BarrierModeError(
            "XGBoost trains in barrier mode, which Spark refuses under dynamic allocation:"
            " run the training with --conf spark.dynamicAllocation.enabled=false and a fixed"
            " number of executors (spark.executor.instances)"
        )


def make_classifier(name: str, params: dict, settings: ClassifierSettings) -> Estimator:
    """The unfitted classifier ``name`` with hyper-parameters ``params``, on ``_scaled``.

    Raises
    ------
    ValueError
        On an unknown model name.
    """
    weight = {"weightCol": WEIGHT_COL} if settings.weighted else {}
    columns = {
        "featuresCol": SCALED_COL,
        "labelCol": LABEL_COL,
        "predictionCol": prediction_col(name),
        "rawPredictionCol": RAW_COL,
    }
    if name == "lr":
        return LogisticRegression(
            family="multinomial",
            standardization=False,  # the pipeline's scaler has done it
            probabilityCol=PROBABILITY_COL,
            **columns,
            **weight,
            **params,
        )
    if name == "svc" and settings.svc == "lockstep":
        return OneVsRestLinearSVC(**columns, **weight, **params)
    if name == "svc":
        # pyspark's one-vs-rest reads its binary models' raw predictions from its own
        # rawPredictionCol, and a reloaded one forgets a non-default value: both keep theirs.
        del columns["rawPredictionCol"]
        return OneVsRest(
            classifier=LinearSVC(standardization=False, **params),
            parallelism=settings.parallelism,
            **columns,
            **weight,
        )
    if name == "xgb":
        return SparkXGBClassifier(
            features_col=SCALED_COL,
            label_col=LABEL_COL,
            prediction_col=prediction_col(name),
            raw_prediction_col=RAW_COL,
            probability_col=PROBABILITY_COL,
            num_workers=settings.xgb_workers,
            # Spread rows evenly over the workers: a worker left with an empty partition (a
            # small fold) builds its matrix with the default max_bin and XGBoost fails.
            force_repartition=True,
            tree_method="hist",
            max_bin=64,
            random_state=settings.seed,
            verbose=False,
            **({"weight_col": WEIGHT_COL} if settings.weighted else {}),
            **params,
        )
    raise ValueError(f"unknown model {name!r}; models: {', '.join(MODEL_NAMES)}")


def training_pipeline(name: str, params: dict, settings: ClassifierSettings) -> Pipeline:
    """``StandardScaler -> classifier``, to fit on the assembled ``_features`` column."""
    scaler = StandardScaler(inputCol=VECTOR_COL, outputCol=SCALED_COL, withMean=True, withStd=True)
    return Pipeline(stages=[scaler, make_classifier(name, params, settings)])


def preprocessing(columns: list[str]) -> tuple[Imputer, VectorAssembler]:
    """The mean imputer (to fit) and the assembler that make ``_features`` of ``columns``.

    The imputer replaces the columns' missing values in place.
    """
    imputer = Imputer(inputCols=columns, outputCols=columns, strategy="mean")
    return imputer, VectorAssembler(inputCols=columns, outputCol=VECTOR_COL)
