"""Parity benchmark: the product's Spark models against scikit-learn and xgboost.

``python -m fmagenre.bench parity`` fits each of the ensemble's three models twice on the same
training rows, once as the product trains it (:mod:`fmagenre.ml.classifiers`: mean
imputation, ``StandardScaler``, the Spark ML classifier) and once with the library of the
thesis, with equivalent settings, and scores both on the same test rows:

- ``lr``: Spark's multinomial ``LogisticRegression`` against scikit-learn's (lbfgs), with
  ``C = 1 / (regParam * n)`` (:func:`fmagenre.ml.search_space.sklearn_C`);
- ``svc``: the product's one-vs-rest linear SVC (Spark's ``LinearSVC`` objective;
  ``--svc`` picks the implementation where the training job offers several) against
  scikit-learn's ``LinearSVC`` (one-vs-rest, liblinear) with the same ``C`` mapping and
  ``loss="hinge"``: Spark minimises the hinge loss, scikit-learn's default is its square;
- ``xgb``: ``xgboost.spark.SparkXGBClassifier`` (one barrier task per core) against
  ``xgboost.XGBClassifier`` (as many threads), both ``hist`` with 64 bins and the same
  parameters.

Both sides impute missing values with the training mean and standardise with the training
mean and standard deviation; Spark divides by the unbiased one (``n - 1``), scikit-learn by
the biased one, a factor ``sqrt(n / (n - 1))`` that moves nothing measurable. Differences
that remain: scikit-learn's ``LinearSVC`` penalises its intercept (lessened by
``intercept_scaling``), the solvers and their stopping rules differ, and XGBoost's workers
each sketch their quantiles and draw their row subsamples.

For each pair the report gives accuracy, Cohen's kappa, macro F1 and fit seconds of both
sides (Spark on ``--master``'s cores; scikit-learn's linear models on one thread), the gaps
in points and the share of test rows predicted alike. For the linear pairs it evaluates the
objective that Spark minimises at both solutions, with the iterations each side ran: how far
each solver got. For XGBoost it fits the scikit-learn side again with the next seed, the gap
that chance alone makes. The data is the thesis-shaped synthetic table of
:mod:`fmagenre.synthetic.feature_tables` (its own stratified train/test split), or a feature
input (feature table, Parquet, FMA's ``features.csv``) and label table as ``jobs/train.py``
reads them. Figures are printed, never asserted; the last line is ``parity: max gap N.NN
points``, the largest absolute accuracy difference.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fmagenre.bench import training_session
from fmagenre.synthetic.feature_tables import THESIS_GENRE_SHARES, write_synthetic_tables

#: The pairs, in the ensemble's order.
PAIRS = ("lr", "svc", "xgb")
#: Spark-side hyper-parameters: the geometric middle of the search ranges for the
#: regularisation (``SEARCH_SPACES``), no L1 term (scikit-learn's lbfgs has none), and
#: iteration caps. The logistic regressions converge (about 110 and 170 iterations on the
#: default table). On the non-smooth hinge loss Spark's quasi-Newton steps do not: after
#: 100 iterations (Spark's default) the SVC's objective is 0.5% above liblinear's, 11% of
#: the test rows get other genres, and Spark scores 0.8 points higher (on 42,131 test rows;
#: 1.45 on the default 2,131); after 300, 0.27%, 7% and 0.7 points (default test rows).
PARITY_PARAMS: dict[str, dict[str, float | int]] = {
    "lr": {"regParam": 1e-2, "elasticNetParam": 0.0, "maxIter": 200, "tol": 1e-6},
    "svc": {"regParam": 1e-3, "maxIter": 300, "tol": 1e-6},
    "xgb": {
        "max_depth": 4,
        "learning_rate": 0.1,
        "n_estimators": 60,
        "subsample": 0.8,
        "colsample_bytree": 0.5,
        "min_child_weight": 5.0,
    },
}
#: scikit-learn's LinearSVC appends a constant feature of this value for its intercept and
#: penalises its weight: the larger, the less the intercept is penalised.
SVC_INTERCEPT_SCALING = 10.0
#: The default table: 2,131 test rows; the three pairs in about 8 minutes on 2 cores.
DEFAULT_ROWS = 20_000
LIBRARIES = {"spark": "Spark ML", "sklearn": "scikit-learn"}


@dataclass(frozen=True)
class SideResult:
    """One side's scores on the test rows and its fit time."""

    accuracy: float
    kappa: float
    f1_macro: float
    fit_seconds: float


@dataclass(frozen=True)
class PairResult:
    """Both sides of a pair, the share of test rows they predict alike, their settings."""

    name: str
    spark: SideResult
    sklearn: SideResult
    agreement: float
    settings: str
    #: Convergence in words: iterations, and for the linear pairs the objective that Spark
    #: minimises, evaluated at both solutions.
    convergence: str = ""
    #: XGBoost only: the scikit-learn side again with another seed, the gap that chance
    #: alone makes.
    reseeded: SideResult | None = None

    @property
    def gap(self) -> float:
        """Accuracy difference, Spark minus scikit-learn, in percentage points."""
        return 100.0 * (self.spark.accuracy - self.sklearn.accuracy)


def sklearn_estimator(
    name: str,
    params: Mapping[str, float | int],
    n: float,
    *,
    classes: int,
    seed: int,
    threads: int,
):
    """The scikit-learn (or xgboost) classifier equivalent to Spark's ``name`` with ``params``.

    Parameters
    ----------
    name : str
        One of :data:`PAIRS`.
    params : mapping
        The Spark side's hyper-parameters, as :func:`fmagenre.ml.classifiers.make_classifier`
        takes them.
    n : float
        Training rows (their total weight): the ``C`` mapping depends on it.
    classes : int
        With 2, scikit-learn's logistic regression fits one coefficient vector ``v`` where
        Spark's multinomial one fits ``v / 2`` and ``-v / 2``, whose penalty is half ``v``'s:
        ``C`` is doubled.
    seed : int
    threads : int
        XGBoost's threads.

    Returns
    -------
    estimator, str
        The unfitted estimator and its settings in words.

    Raises
    ------
    ValueError
        On an unknown name.
    """
    import sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC
    from xgboost import XGBClassifier

    from fmagenre.ml.search_space import sklearn_C

    if name == "lr":
        C = sklearn_C(params["regParam"], n) * (2 if classes == 2 else 1)
        l1_ratio = float(params.get("elasticNetParam", 0.0))
        # scikit-learn 1.8 deprecated `penalty`: l1_ratio alone says which.
        if tuple(int(part) for part in sklearn.__version__.split(".")[:2]) >= (1, 8):
            penalty = {"l1_ratio": l1_ratio}
        elif l1_ratio:
            penalty = {"penalty": "elasticnet", "l1_ratio": l1_ratio}
        else:
            penalty = {"penalty": "l2"}
        model = LogisticRegression(
            C=C,
            solver="saga" if l1_ratio else "lbfgs",
            max_iter=int(params.get("maxIter", 100)),
            tol=float(params.get("tol", 1e-6)),
            random_state=seed,
            **penalty,
        )
        return model, f"C={C:.4g} l1_ratio={l1_ratio:g} solver={model.solver}"
    if name == "svc":
        C = sklearn_C(params["regParam"], n)
        model = LinearSVC(
            C=C,
            loss="hinge",
            dual=True,  # liblinear solves the hinge loss in the dual only
            intercept_scaling=SVC_INTERCEPT_SCALING,
            max_iter=1000,  # liblinear's defaults: within 0.1% of its optimum here
            tol=1e-4,
            random_state=seed,
        )
        return model, f"C={C:.4g} loss=hinge intercept_scaling={SVC_INTERCEPT_SCALING:g}"
    if name == "xgb":
        model = XGBClassifier(
            tree_method="hist", max_bin=64, random_state=seed, n_jobs=threads, **params
        )
        return model, f"same parameters, {threads} thread(s)"
    raise ValueError(f"unknown pair {name!r}; pairs: {', '.join(PAIRS)}")


def _scores(truth: np.ndarray, predicted: np.ndarray, labels: Sequence[str], seconds: float):
    from fmagenre.metrics.classification import classification_summary

    confusion = np.zeros((len(labels), len(labels)))
    np.add.at(confusion, (truth, predicted), 1)
    summary = classification_summary(confusion, labels)
    return SideResult(summary["accuracy"], summary["kappa"], summary["f1_macro"], seconds)


def spark_objective(
    name: str, coef: np.ndarray, intercept: np.ndarray, x: np.ndarray, y: np.ndarray, **params
) -> float:
    """The objective Spark minimises for the linear model ``name``, at ``coef``, ``intercept``.

    Parameters
    ----------
    name : str
        ``lr`` (multinomial: mean cross-entropy) or ``svc`` (one-vs-rest: the sum over the
        classes of each binary model's mean hinge loss and penalty).
    coef : numpy.ndarray, shape (k, p)
    intercept : numpy.ndarray, shape (k,)
    x : numpy.ndarray, shape (n, p)
        Standardised training rows.
    y : numpy.ndarray of int, shape (n,)
        Class indices.
    **params
        ``regParam`` and, for ``lr``, ``elasticNetParam``.
    """
    margins = x @ coef.T + intercept
    rows = np.arange(y.size)
    reg = float(params["regParam"])
    if name == "lr":
        top = margins.max(axis=1)
        log_norm = top + np.log(np.exp(margins - top[:, None]).sum(axis=1))
        alpha = float(params.get("elasticNetParam", 0.0))
        penalty = alpha * np.abs(coef).sum() + (1 - alpha) / 2 * (coef**2).sum()
        return float(np.mean(log_norm - margins[rows, y]) + reg * penalty)
    if name == "svc":
        signs = -np.ones_like(margins)
        signs[rows, y] = 1.0
        hinge = np.maximum(0.0, 1.0 - signs * margins).mean(axis=0)
        return float(hinge.sum() + reg / 2 * (coef**2).sum())
    raise ValueError(f"no linear objective for {name!r}")


def _spark_iterations(model) -> int | None:
    if not model.hasSummary:
        return None
    summary = model.summary() if callable(model.summary) else model.summary
    return summary.totalIterations


def _convergence(name, params, spark_model, pipeline, x_train, y_train) -> str:
    """Iterations of both sides and Spark's objective at both solutions (linear pairs)."""
    scaler, classifier = spark_model.stages
    fitted = pipeline[-1]
    if name == "xgb":
        return ""
    if name == "lr":
        coef = classifier.coefficientMatrix.toArray()
        intercept = classifier.interceptVector.toArray()
        iterations = [_spark_iterations(classifier)]
    elif hasattr(classifier, "models"):  # Spark's OneVsRestModel of LinearSVCModels
        coef = np.array([m.coefficients.toArray() for m in classifier.models])
        intercept = np.array([m.intercept for m in classifier.models])
        iterations = [_spark_iterations(m) for m in classifier.models]
    else:  # fmagenre.ml.linear_svc: the classes' coefficients in one matrix
        coef, intercept = classifier.coefficients, classifier.intercepts
        iterations = list(classifier.training_summary.get("iterations", []))
    # Both solutions on Spark's standardised rows: scikit-learn's scaler divides by the
    # biased standard deviation, so its coefficients are rescaled to Spark's (unbiased) one.
    std = scaler.std.toArray()
    scaled = (x_train - scaler.mean.toArray()) / np.where(std > 0, std, np.inf)
    spark_value = spark_objective(name, coef, intercept, scaled, y_train, **params)
    sklearn_coef = fitted.coef_ * (std / pipeline[0].scale_)
    sklearn_intercept = np.atleast_1d(fitted.intercept_)
    if sklearn_coef.shape[0] == 1:  # 2 classes: one model, Spark's two are its halves
        half = 0.5 if name == "lr" else 1.0
        sklearn_coef = half * np.vstack([-sklearn_coef, sklearn_coef])
        sklearn_intercept = half * np.array([-sklearn_intercept[0], sklearn_intercept[0]])
    sklearn_value = spark_objective(
        name, sklearn_coef, sklearn_intercept, scaled, y_train, **params
    )
    spark_iter = max((i for i in iterations if i is not None), default=None)
    return (
        f"Spark's objective: Spark {spark_value:.6f}, scikit-learn {sklearn_value:.6f}"
        f" ({100 * (spark_value / sklearn_value - 1):+.3f}%); iterations (most of any"
        f" class): Spark {spark_iter} of {params.get('maxIter')}, scikit-learn"
        f" {int(np.max(fitted.n_iter_))} of {fitted.max_iter}"
    )


def _spark_name(stage) -> str:
    """The Spark estimator's class, with the binary classifier of a ``OneVsRest``."""
    kind = type(stage).__name__
    if kind == "OneVsRest":
        kind += f"({type(stage.getClassifier()).__name__})"
    return kind


def _fit_sklearn(name, params, train, x_test, *, seed, threads):
    """Fit ``StandardScaler -> estimator`` on ``train`` (x, y); predict ``x_test``.

    Returns the fitted pipeline, its settings in words, the predictions and the fit seconds.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, y_train = train
    estimator, words = sklearn_estimator(
        name, params, len(y_train), classes=len(np.unique(y_train)), seed=seed, threads=threads
    )
    pipeline = make_pipeline(StandardScaler(), estimator)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the report shows n_iter_
        pipeline.fit(x_train, y_train)
    seconds = time.perf_counter() - started
    return pipeline, words, pipeline.predict(x_test).astype(np.int64), seconds


def run_parity(
    spark,
    features: str,
    labels: str,
    *,
    params: Mapping[str, Mapping[str, float | int]] = PARITY_PARAMS,
    pairs: Sequence[str] = PAIRS,
    seed: int = 0,
    svc: str | None = None,
) -> tuple[list[PairResult], dict]:
    """Fit and score each pair on the labelled rows of ``features`` and ``labels``.

    Parameters
    ----------
    spark : SparkSession
    features : str
        A feature table, Parquet with its columns, or FMA's ``features.csv`` (a path ending
        in ``.csv``).
    labels : str
        A label table (``track_id``, ``genre_top``, ``split`` of ``train`` or ``test``).
    params : mapping
        The Spark side's hyper-parameters of each pair (:data:`PARITY_PARAMS`).
    pairs : sequence of str
        Which pairs, of :data:`PAIRS`.
    seed : int
    svc : str or None
        The Spark SVC implementation (``ClassifierSettings.svc``); None for the product's.

    Returns
    -------
    results : list of PairResult
    shape : dict
        ``features``, ``genres``, ``train`` and ``test`` (rows).
    """
    from sklearn.impute import SimpleImputer

    from fmagenre.audio.names import flat_names
    from fmagenre.ml.classifiers import (
        LABEL_COL,
        VECTOR_COL,
        ClassifierSettings,
        prediction_col,
        preprocessing,
        training_pipeline,
    )
    from fmagenre.ml.training_data import labelled_data
    from fmagenre.tables.fma_csv import read_fma_csv
    from fmagenre.tables.inputs import read_feature_rows, read_labels

    if features.lower().endswith(".csv"):
        rows = read_fma_csv(spark, features)
    else:
        rows = read_feature_rows(spark, features)
    columns = [name for name in flat_names() if name in rows.columns]
    data = labelled_data(
        rows, read_labels(spark, labels), columns=columns, class_weights=False, folds=1
    )
    cores = spark.sparkContext.defaultParallelism
    # As the training job sets them.
    settings = ClassifierSettings(
        parallelism=2 * cores,
        xgb_workers=cores,
        seed=seed,
        **({} if svc is None else {"svc": svc}),
    )

    # One copy of the rows for both sides, in track order.
    local = data.frame.select("track_id", LABEL_COL, "split", *columns).toPandas()
    local = local.sort_values("track_id", kind="stable")
    train = (local["split"] == "train").to_numpy()
    x = local[columns].to_numpy(dtype=np.float64)
    y = local[LABEL_COL].to_numpy().astype(np.int64)

    # Each side imputes once, fitted on the training rows, as the product does.
    imputer, assembler = preprocessing(columns)
    filled = imputer.fit(data.split("train")).transform(data.frame)
    vectors = assembler.transform(filled).select("track_id", LABEL_COL, "split", VECTOR_COL)
    spark_train = vectors.where("split = 'train'").repartition(cores).cache()
    spark_test = vectors.where("split = 'test'").cache()
    spark_train.count()
    spark_test.count()
    sk_imputer = SimpleImputer(strategy="mean").fit(x[train])
    x_train, x_test = sk_imputer.transform(x[train]), sk_imputer.transform(x[~train])
    y_train, y_test = y[train], y[~train]

    results = []
    for name in pairs:
        estimator = training_pipeline(name, dict(params[name]), settings)
        started = time.perf_counter()
        model = estimator.fit(spark_train)
        spark_seconds = time.perf_counter() - started
        predicted = (
            model.transform(spark_test)
            .select("track_id", prediction_col(name))
            .toPandas()
            .sort_values("track_id", kind="stable")
        )
        spark_pred = predicted[prediction_col(name)].to_numpy().astype(np.int64)

        fitted = [
            _fit_sklearn(name, params[name], (x_train, y_train), x_test, seed=s, threads=cores)
            for s in ((seed, seed + 1) if name == "xgb" else (seed,))
        ]
        pipeline, words, sklearn_pred, sklearn_seconds = fitted[0]
        spark_words = " ".join(f"{key}={value:g}" for key, value in params[name].items())
        results.append(
            PairResult(
                name=name,
                spark=_scores(y_test, spark_pred, data.labels, spark_seconds),
                sklearn=_scores(y_test, sklearn_pred, data.labels, sklearn_seconds),
                agreement=float(np.mean(spark_pred == sklearn_pred)),
                settings=f"{_spark_name(estimator.getStages()[-1])} {spark_words};"
                f" scikit-learn {words}",
                convergence=_convergence(name, params[name], model, pipeline, x_train, y_train),
                reseeded=_scores(y_test, fitted[1][2], data.labels, fitted[1][3])
                if len(fitted) > 1
                else None,
            )
        )
    spark_train.unpersist()
    spark_test.unpersist()
    shape = {
        "features": len(columns),
        "genres": len(data.labels),
        "train": int(train.sum()),
        "test": int((~train).sum()),
    }
    return results, shape


def max_gap(results: Sequence[PairResult]) -> float:
    """The largest absolute accuracy difference over the pairs, in percentage points."""
    return max(abs(result.gap) for result in results)


def report(results: Sequence[PairResult]) -> list[str]:
    """The table of scores, gaps and settings, and the final ``parity:`` line."""
    lines = ["  pair library       accuracy   kappa  macro F1   fit s  agree"]
    for result in results:
        for side in ("spark", "sklearn"):
            scores = getattr(result, side)
            lines.append(
                f"  {result.name:<4} {LIBRARIES[side]:<13} {100 * scores.accuracy:7.2f}%"
                f" {scores.kappa:7.4f} {scores.f1_macro:9.4f} {scores.fit_seconds:7.1f}"
            )
        kappa = 100 * (result.spark.kappa - result.sklearn.kappa)
        f1 = 100 * (result.spark.f1_macro - result.sklearn.f1_macro)
        lines.append(
            f"  {result.name:<4} {'gap (points)':<13} {result.gap:+7.2f}  {kappa:+7.2f}"
            f" {f1:+9.2f} {'':7} {100 * result.agreement:5.1f}%"
        )
        if result.reseeded is not None:
            scores = result.reseeded
            lines.append(
                f"  {result.name:<4} {'seed + 1':<13} {100 * scores.accuracy:7.2f}%"
                f" {scores.kappa:7.4f} {scores.f1_macro:9.4f} {scores.fit_seconds:7.1f}"
                "  (scikit-learn again: the gap of chance)"
            )
        lines.append(f"       {result.settings}")
        if result.convergence:
            lines.append(f"       {result.convergence}")
    lines.append(f"parity: max gap {max_gap(results):.2f} points")
    return lines


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fmagenre.bench parity",
        description="Fit the ensemble's three Spark models and their scikit-learn / xgboost"
        " counterparts with equivalent settings on the same split; print the scores of each"
        " side and the gaps. The default synthetic table (16 genres with the thesis' shares,"
        f" 518 columns, {DEFAULT_ROWS:,} rows) takes about 8 minutes on 2 cores.",
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=DEFAULT_ROWS,
        help="tracks of the synthetic table (default %(default)s); ignored with --features",
    )
    parser.add_argument(
        "--features",
        help="a feature table, Parquet with its columns, or FMA's features.csv (a path ending"
        " in .csv) instead of the synthetic table; needs --labels",
    )
    parser.add_argument("--labels", help="the label table of jobs/prepare_labels.py")
    parser.add_argument(
        "--separation",
        type=float,
        default=0.05,
        help="spread of the synthetic genre means in noise units (default %(default)s)",
    )
    from fmagenre.ml.classifiers import SVC_IMPLEMENTATIONS

    parser.add_argument(
        "--svc",
        choices=SVC_IMPLEMENTATIONS,
        help="the Spark SVC implementation (default: the training job's)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--master", default="local[2]", help="default %(default)s")
    parser.add_argument("--driver-memory", default="6g", help="default %(default)s")
    args = parser.parse_args(argv)
    if (args.features is None) != (args.labels is None):
        parser.error("--features and --labels go together")
    if args.rows < 2 * len(THESIS_GENRE_SHARES):
        parser.error(f"--rows must be at least {2 * len(THESIS_GENRE_SHARES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)

    spark = training_session(
        "fmagenre-bench-parity",
        master=args.master,
        driver_memory=args.driver_memory,
        progress=False,
    )
    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="bench-parity-") as tmp:
        if args.features is None:
            features, labels = write_synthetic_tables(
                tmp,
                rows=args.rows,
                genre_shares=THESIS_GENRE_SHARES,
                separation=args.separation,
                nan_fraction=0.001,
                seed=args.seed,
            )
            source = f"synthetic table (separation {args.separation:g})"
        else:
            features, labels, source = args.features, args.labels, args.features
        results, shape = run_parity(spark, features, labels, seed=args.seed, svc=args.svc)
    spark.stop()
    print(
        f"bench parity: {source}, {shape['train'] + shape['test']} rows x"
        f" {shape['features']} features, {shape['genres']} genres ({shape['train']} train,"
        f" {shape['test']} test), {args.master}, {os.cpu_count()} CPUs, load average"
        f" {load_before} -> {_load()}"
    )
    print("\n".join(report(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
