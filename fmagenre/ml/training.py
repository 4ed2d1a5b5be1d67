"""The training job's library side: search, fit, vote, evaluate, save.

:func:`run` joins the ``ok`` feature rows with their labels (:mod:`fmagenre.ml.training_data`),
then for each of the three models (:mod:`fmagenre.ml.classifiers`) runs a random search with
stratified k-fold cross-validation scored by Cohen's kappa (:mod:`fmagenre.ml.search`)
on a stratified sample of the training split. A :class:`~fmagenre.ml.ensemble.VotingEnsemble`
then fits the best candidate of each on the whole training split into a
:class:`~fmagenre.ml.ensemble.VotingEnsembleModel` whose ties go to the model with the best
cross-validated kappa. Its vote scheme (``vote``: hard, kappa-weighted or soft, or ``auto``,
the best cross-validated one; :mod:`fmagenre.ml.voting`) is fitted and scored on the
out-of-fold predictions of each model's best candidate, which the search's evaluator keeps
as it scores them (a collect of each fold's rows: no extra fit). It evaluates each model,
the ensemble and every vote scheme on the test split and writes, under the output
directory::

    model/                  the ensemble (VotingEnsembleModel.load)
    metrics.json, report.md, confusion_<model>.csv/.png   (fmagenre.ml.report)

Why a search sample: cross-validating 10 candidates on 3 folds costs 30 fits on two thirds
of the training split per model; on FMA's 93k training tracks that is a day on a laptop (the
thesis' 23 hours). Ranking candidates on a stratified sample of ``search_rows`` tracks
(10,000 by default, every genre in proportion and at least ``folds`` tracks of each) and
fitting only the winner on all tracks keeps the whole run at 12-14 minutes on 2 cores
(``python -m fmagenre.bench train``); ``search_rows=0`` searches on every training track.
That is also why the search is a function and not a ``CrossValidator``-like Estimator,
which would fit its winner on the rows it searched.

External members (``external``: :class:`~fmagenre.ml.external.ExternalMember`, e.g. the
spectrogram network) vote beside the three models. Their margins are added to the feature
rows and carried beside the features (never into them). The ensemble of the three models is
chosen as without them (reported as ``ensemble_without_<names>``); then the vote of all
voters is fitted and scored (:func:`fmagenre.ml.voting.choose_with_external`) on the search
sample's out-of-fold rows of the tracks each member was not trained on (``held_out``) and
that it scores. The model is saved with ``externalModels`` set, each member by its ``save``
in ``OUTPUT/members/<name>``. A member's own test scores count the test rows it scores
(``abstained``: the others).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial

import numpy as np
from pyspark.ml import Estimator, Pipeline, PipelineModel, Transformer
from pyspark.ml.evaluation import Evaluator
from pyspark.ml.feature import SQLTransformer
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fmagenre.audio.feature_sets import families_of, select_feature_columns
from fmagenre.audio.names import family_of, flat_names
from fmagenre.metrics.classification import (
    classification_summary,
    cohen_kappa,
    confusion_of,
)
from fmagenre.ml import voting
from fmagenre.ml.classifiers import (
    LABEL_COL,
    MODEL_NAMES,
    SEARCH_SPACES,
    VECTOR_COL,
    WEIGHT_COL,
    ClassifierSettings,
    check_barrier_mode,
    check_svc,
    prediction_col,
    preprocessing,
    training_pipeline,
)
from fmagenre.ml.ensemble import VotingEnsemble, VotingEnsembleModel
from fmagenre.ml.external import (
    MEMBERS_DIR,
    ExternalMember,
    ExternalMemberError,
    check_names,
    label_order,
    margins_column,
    reordered,
)
from fmagenre.ml.report import ENSEMBLE, without_key, write_confusions, write_report
from fmagenre.ml.search import SearchResult, random_search
from fmagenre.ml.search_space import LogUniform, read_search_space
from fmagenre.ml.stratify import assign_folds, sample_quotas, stratified_sample
from fmagenre.ml.training_data import CLASS_WEIGHTS, LabelledData, labelled_data
from fmagenre.platform.barrier import slots_guard
from fmagenre.platform.hadoop import hadoop_fs, read_bytes
from fmagenre.tables.inputs import read_feature_rows, read_labels

log = logging.getLogger(__name__)

MODEL_DIR = "model"
FOLD_COL = "fold"
#: The search sample's row number, and the candidate of a search fit's predictions: they
#: match the models' out-of-fold predictions.
ROW_COL = "_row"
CANDIDATE_COL = "_candidate"
VOTE_CHOICES = (*voting.VOTES, "auto")
#: Training tracks (a seeded random sample) whose means impute missing features: plenty for a
#: mean, and fitting the imputer's 518 averages on all 93k tracks takes a minute on 2 cores.
IMPUTER_ROWS = 20_000


@dataclass(frozen=True)
class TrainOptions:
    """Settings of a training run."""

    #: Feature columns (:func:`fmagenre.audio.feature_sets.select_feature_columns`).
    columns: tuple[str, ...] = field(default_factory=flat_names)
    #: Random-search candidates per model.
    candidates: int = 10
    #: Cross-validation folds.
    folds: int = 3
    #: Seed of the search sample, the folds, the candidates and XGBoost.
    seed: int = 0
    #: Class weights: "none", "balanced" or "sqrt" (:mod:`fmagenre.ml.training_data`).
    class_weights: str = "none"
    #: Vote scheme: "hard", "kappa", "soft", or "auto" for the best cross-validated one.
    vote: str = "auto"
    #: The soft vote's per-class biases: "none", "kappa" (maximise the out-of-fold kappa) or
    #: "f1" (its macro F1, within 2 points of accuracy; :mod:`fmagenre.ml.voting`).
    class_bias: str = "f1"
    #: Training tracks in the search sample; 0 for all of them.
    search_rows: int = 10_000
    #: XGBoost barrier tasks; None for the session's default parallelism.
    xgb_workers: int | None = None
    #: Search fits at once (:func:`~fmagenre.ml.search.random_search`); None for the
    #: session's default parallelism.
    search_parallelism: int | None = None
    #: The SVC (:data:`fmagenre.ml.classifiers.SVC_IMPLEMENTATIONS`).
    svc: str = "lockstep"
    #: Search ranges by model (:data:`fmagenre.ml.classifiers.SEARCH_SPACES`).
    search_spaces: Mapping[str, Mapping[str, LogUniform]] = field(
        default_factory=lambda: SEARCH_SPACES
    )
    #: The feature rows are windows of tracks (``jobs/segments.py --keep-features``): the
    #: search sample and the folds take whole tracks.
    windows: bool = False
    #: Replace an existing output directory.
    overwrite: bool = False

    def __post_init__(self):
        if not self.columns:
            raise ValueError("no feature column")
        if self.candidates < 1:
            raise ValueError(f"candidates must be at least 1, got {self.candidates}")
        if self.folds < 2:
            raise ValueError(f"folds must be at least 2, got {self.folds}")
        if self.class_weights not in CLASS_WEIGHTS:
            raise ValueError(
                f"class_weights must be {' or '.join(CLASS_WEIGHTS)}, got {self.class_weights!r}"
            )
        if self.vote not in VOTE_CHOICES:
            raise ValueError(f"vote must be {', '.join(VOTE_CHOICES)}, got {self.vote!r}")
        if self.class_bias not in voting.CLASS_BIASES:
            raise ValueError(
                f"class_bias must be {' or '.join(voting.CLASS_BIASES)}, got {self.class_bias!r}"
            )
        if self.search_rows < 0:
            raise ValueError(f"search_rows must be 0 (all) or more, got {self.search_rows}")
        if self.xgb_workers is not None and self.xgb_workers < 1:
            raise ValueError(f"xgb_workers must be at least 1, got {self.xgb_workers}")
        if self.search_parallelism is not None and self.search_parallelism < 1:
            raise ValueError(
                f"search_parallelism must be at least 1, got {self.search_parallelism}"
            )
        check_svc(self.svc)
        missing = [name for name in MODEL_NAMES if name not in self.search_spaces]
        if missing:
            raise ValueError(f"no search space for model(s) {', '.join(missing)}")


def prepare_output(spark: SparkSession, output: str, *, overwrite: bool) -> None:
    """Check that ``output`` is free, or empty it with ``overwrite``.

    Raises
    ------
    FileExistsError
        When it exists and ``overwrite`` is false.
    """
    fs, path = hadoop_fs(spark, output)
    if not fs.exists(path):
        return
    if not overwrite:
        raise FileExistsError(f"{output} already exists: pass --overwrite to replace it")
    fs.delete(path, True)


def read_options(
    spark: SparkSession,
    *,
    families: Sequence[str] | None = None,
    columns_file: str | None = None,
    search_space: str | None = None,
    **settings,
) -> TrainOptions:
    """The options of a run whose feature columns and search ranges come from files.

    Parameters
    ----------
    spark : SparkSession
        Reads the files, any Hadoop path.
    families : sequence of str or None
        MIR families whose columns to use.
    columns_file : str or None
        A column list (:func:`~fmagenre.audio.feature_sets.read_column_list`).
        Without it and ``families``, all 518 columns.
    search_space : str or None
        A TOML file of ranges that replace the defaults
        (:func:`~fmagenre.ml.search_space.read_search_space`).
    **settings
        The other fields of :class:`TrainOptions`.

    Raises
    ------
    fmagenre.audio.feature_sets.FeatureSetError
        On an unknown family or column, or both ``families`` and ``columns_file``.
    fmagenre.ml.search_space.SearchSpaceError
        On a search-space file that cannot be read or does not fit.
    """
    read = partial(read_bytes, spark)
    columns = select_feature_columns(families=families, columns_file=columns_file, read=read)
    spaces = SEARCH_SPACES
    if search_space is not None:
        spaces = read_search_space(search_space, SEARCH_SPACES, read=read)
    return TrainOptions(columns=columns, search_spaces=spaces, **settings)


class _Timings(dict):
    """Seconds per stage, in the order the stages ran."""

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        log.info("%s ...", name)
        started = time.perf_counter()
        yield
        self[name] = round(time.perf_counter() - started, 3)
        log.info("%s: %.1f s", name, self[name])


def _cached(frame: DataFrame, partitions: int, *, numbered: bool = False) -> DataFrame:
    """``frame`` spread evenly over ``partitions`` and cached: every fit reads it many times.

    With ``numbered``, each row gets a number (``ROW_COL``), fixed by the cache.
    """
    spread = frame.repartition(partitions)
    if numbered:
        spread = spread.withColumn(ROW_COL, F.monotonically_increasing_id())
    cached = spread.cache()
    cached.count()
    return cached


def _score(search: SearchResult) -> float:
    score = search.best.score
    return -math.inf if math.isnan(score) else score


def _fit_preprocessing(
    train: DataFrame, columns: list[str], *, rows: int, seed: int
) -> PipelineModel:
    """The mean imputer, fitted on a seeded sample of the ``rows`` training rows, and the
    assembler, as one fitted pipeline."""
    imputer, assembler = preprocessing(columns)
    sample = train.sample(fraction=min(1.0, IMPUTER_ROWS / rows), seed=seed)
    return PipelineModel(stages=[imputer.fit(sample), assembler])


def _search_sample(data: LabelledData, options: TrainOptions) -> DataFrame:
    """The training rows of the search sample, ``search_rows`` tracks, with their fold.

    Windows of one track (``data.tracks``) fall in the same fold: a track's windows are much
    alike, and one in each fold would score the search on tracks it trained on.
    """
    train = data.split("train")
    sample = train.select("track_id", "genre").distinct() if data.tracks else train
    counts = (data.tracks or data.counts)["train"]
    if 0 < options.search_rows < sum(counts.values()):
        quotas = sample_quotas(counts, rows=options.search_rows, minimum=options.folds)
        sample = stratified_sample(
            sample, label_col="genre", id_col="track_id", quotas=quotas, seed=options.seed
        )
    folded = assign_folds(
        sample, label_col="genre", id_col="track_id", folds=options.folds, seed=options.seed
    )
    if data.tracks:
        folded = train.join(folded.select("track_id", FOLD_COL), "track_id")
    return folded


def _search_vectors(
    data: LabelledData,
    vectorizer: Transformer,
    options: TrainOptions,
    *,
    weight: list[str],
    partitions: int,
    keep: Sequence[str] = (),
) -> DataFrame:
    """The folded vectors of the search sample (cached), with the ``keep`` columns."""
    folded = _search_sample(data, options)
    return _cached(
        vectorizer.transform(folded).select(LABEL_COL, FOLD_COL, *weight, VECTOR_COL, *keep),
        partitions,
        numbered=True,
    )


def _raw_col(classifier: Estimator | Transformer) -> str:
    """The column where a classifier (or its model) writes its class margins."""
    return classifier.getOrDefault(classifier.getParam("rawPredictionCol"))


def _candidate_key(params: Mapping) -> str:
    return json.dumps(params, sort_keys=True)


class _OutOfFoldKappa(Evaluator):
    """Cohen's kappa of a search fold's predictions, as
    :class:`~fmagenre.ml.kappa.KappaEvaluator` scores them, that also keeps the fold's
    rows: number, fold, label, vote and class margins, by candidate (``CANDIDATE_COL``) and
    fold. One collect of the fold's predictions serves both."""

    def __init__(self, prediction: str, raw: str) -> None:
        super().__init__()
        self.prediction, self.raw = prediction, raw
        self.kept: dict[tuple[str, int], tuple[np.ndarray, ...]] = {}
        self._lock = threading.Lock()

    def _evaluate(self, dataset: DataFrame) -> float:
        rows = dataset.select(
            CANDIDATE_COL,
            FOLD_COL,
            ROW_COL,
            F.col(LABEL_COL).cast("int"),
            F.col(self.prediction).cast("int"),
            vector_to_array(self.raw),
        ).collect()
        if not rows:
            raise ValueError("no rows to evaluate")
        numbers, folds, labels, votes = (np.array([row[i] for row in rows]) for i in (2, 1, 3, 4))
        margins = np.array([row[5] for row in rows], dtype=float)
        keys = {(row[0], row[1]) for row in rows}
        if len(keys) != 1:
            raise ValueError("a search evaluation must hold one candidate's fold")
        with self._lock:
            self.kept[keys.pop()] = (numbers, folds, labels, votes, margins)
        size = int(max(labels.max(), votes.max())) + 1
        return cohen_kappa(confusion_of(labels, votes, size))

    def isLargerBetter(self) -> bool:
        return True

    def out_of_fold(self, params: Mapping, folds: int) -> tuple[np.ndarray, ...]:
        """Row numbers, folds, labels, votes and margins of candidate ``params`` on every
        fold."""
        parts = [self.kept[(_candidate_key(params), fold)] for fold in range(folds)]
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))


def _tagged(estimator: Estimator, params: Mapping) -> Pipeline:
    """``estimator``, whose predictions name the candidate ``params`` (``CANDIDATE_COL``)."""
    key = _candidate_key(params).replace("'", "")
    tag = SQLTransformer(statement=f"SELECT *, '{key}' AS {CANDIDATE_COL} FROM __THIS__")
    return Pipeline(stages=[estimator, tag])


def _search_models(
    search_vectors: DataFrame,
    settings: ClassifierSettings,
    options: TrainOptions,
    timings: _Timings,
) -> tuple[dict[str, SearchResult], dict[str, _OutOfFoldKappa]]:
    """Each model's random search on the search sample, and its evaluator, which kept the
    candidates' out-of-fold predictions."""
    searches, evaluators = {}, {}
    # Fits at once; with several, one XGBoost barrier task each (ClassifierSettings.for_search).
    parallel = (
        options.search_parallelism or search_vectors.sparkSession.sparkContext.defaultParallelism
    )
    search_settings = settings.for_search(parallel)
    for name in MODEL_NAMES:
        raw = _raw_col(training_pipeline(name, {}, settings).getStages()[-1])
        evaluators[name] = _OutOfFoldKappa(prediction_col(name), raw)
        with timings.stage(f"search {name}"):
            searches[name] = random_search(
                search_vectors,
                build=lambda params, name=name: _tagged(
                    training_pipeline(name, params, search_settings), params
                ),
                space=options.search_spaces[name],
                evaluator=evaluators[name],
                candidates=options.candidates,
                folds=options.folds,
                seed=options.seed,
                fold_col=FOLD_COL,
                name=name,
                parallelism=parallel,
            )
    return searches, evaluators


def _out_of_fold(
    searches: Mapping[str, SearchResult],
    evaluators: Mapping[str, _OutOfFoldKappa],
    folds: int,
) -> tuple[voting.OutOfFold, np.ndarray]:
    """The out-of-fold predictions of each model's best candidate, row by row, and the rows'
    numbers (``ROW_COL``)."""
    votes, margins = {}, {}
    labels = numbers = fold_of = None
    for name in MODEL_NAMES:
        kept = evaluators[name].out_of_fold(searches[name].best.params, folds)
        order = np.argsort(kept[0], kind="stable")
        rows, fold, truth, vote, margin = (column[order] for column in kept)
        if numbers is None:
            numbers, fold_of, labels = rows, fold, truth
        elif not np.array_equal(rows, numbers):
            raise RuntimeError(f"{name}'s out-of-fold rows differ from the other models'")
        votes[name], margins[name] = vote, margin
    oof = voting.OutOfFold(labels=labels, folds=fold_of, votes=votes, margins=margins)
    return oof, numbers


def _aligned(data: LabelledData, members: Sequence[ExternalMember]) -> LabelledData:
    """``data`` with each member's margins in the order of ``data.labels``.

    Raises
    ------
    fmagenre.ml.external.ExternalMemberError
        When a member's genres are not the training genres.
    """
    frame = data.frame
    for member in members:
        if label_order(member, data.labels) is not None:
            log.info("%s's margins reordered to the training genres' order", member.name)
            frame = frame.withColumn(
                member.column, reordered(F.col(member.column), member.labels, data.labels)
            )
    return replace(data, frame=frame)


def _external_out_of_fold(
    search_vectors: DataFrame,
    oof: voting.OutOfFold,
    numbers: np.ndarray,
    members: Sequence[ExternalMember],
    classes: int,
) -> tuple[voting.OutOfFold, dict[str, int]]:
    """``oof`` with each member's predictions on its held-out tracks among the search
    sample's rows (NaN margins and vote -1 elsewhere: it abstains), and how many it scores."""
    columns = [member.column for member in members]
    rows = search_vectors.select(ROW_COL, "track_id", *columns).collect()
    position = {number: i for i, number in enumerate(numbers.tolist())}
    votes, margins, counts = dict(oof.votes), dict(oof.margins), {}
    for m, member in enumerate(members):
        margin = np.full((len(numbers), classes), np.nan)
        for row in rows:
            given = row[2 + m]
            if given is not None and row[1] in member.held_out:
                margin[position[row[0]]] = given
        present = voting.scored(margin)
        margins[member.name] = margin
        votes[member.name] = np.where(present, np.argmax(np.nan_to_num(margin), axis=1), -1)
        counts[member.name] = int(present.sum())
    return replace(oof, votes=votes, margins=margins), counts


def _choose_vote(
    ensemble: VotingEnsembleModel,
    oof: voting.OutOfFold,
    searches: Mapping[str, SearchResult],
    options: TrainOptions,
    classes: int,
) -> tuple[str, dict[str, voting.VoteSettings], dict[str, float]]:
    """Fit and score every vote scheme on ``oof``; set the chosen one on ``ensemble``.

    Returns the chosen scheme's key, every scheme's settings and cross-validated kappa.
    """
    settings, scores = voting.choose(
        oof,
        MODEL_NAMES,
        classes,
        cv_kappas=[_score(searches[name]) for name in MODEL_NAMES],
        priority=ensemble.getTieBreakOrder(),
    )
    if options.vote == "auto":
        chosen = voting.best_scheme(scores, class_bias=options.class_bias)
    elif options.vote == "soft":
        chosen = voting.soft_key(options.class_bias)
    else:
        chosen = options.vote
    _set_vote(ensemble, settings, chosen)
    return chosen, settings, scores


def _set_vote(
    ensemble: VotingEnsembleModel, settings: Mapping[str, voting.VoteSettings], chosen: str
) -> None:
    """Log the soft vote's parameters; set the ``chosen`` scheme on ``ensemble``."""
    soft, voters = settings["soft"], ensemble.voters()
    log.info(
        "soft vote: weights %s; temperatures %s",
        ", ".join(f"{m} {w:.2f}" for m, w in zip(voters, soft.weights, strict=True)),
        ", ".join(f"{m} {t:.3g}" for m, t in zip(voters, soft.temperatures, strict=True)),
    )
    vote = settings[chosen]
    ensemble.setVote(
        vote.scheme,
        modelWeights=vote.weights,
        rawPredictionCols=[_raw_col(model.stages[-1]) for model in ensemble.models],
        temperatures=vote.temperatures,
        classBias=vote.bias,
    )


def _choose_external_vote(
    ensemble: VotingEnsembleModel,
    oof: voting.OutOfFold,
    members: Sequence[ExternalMember],
    options: TrainOptions,
    *,
    classes: int,
    without: str,
) -> tuple[str, dict[str, voting.VoteSettings], dict[str, float], dict]:
    """Fit and score every scheme of the models and ``members`` on the out-of-fold rows they
    all score; set the chosen one on ``ensemble``, with its external models.

    ``auto`` picks as without members, unless nothing could be fitted (too few rows): then
    the scheme chosen without them (``without``), with equal weights.
    """
    ensemble.setExternalModels([member.name for member in members])
    settings, scores, about = voting.choose_with_external(
        oof,
        MODEL_NAMES,
        ensemble.getExternalModels(),
        classes,
        priority=ensemble.vote_priority(),
    )
    if about["fallback"]:
        log.warning("vote with external members: %s", about["fallback"])
    if options.vote == "auto":
        best = voting.best_scheme(scores, class_bias=options.class_bias)
        chosen = without if about["fallback"] else best
    elif options.vote == "soft":
        chosen = voting.soft_key(options.class_bias)
    else:
        chosen = options.vote
    _set_vote(ensemble, settings, chosen)
    return chosen, settings, scores, about


def _fit_ensemble(
    data: LabelledData,
    vectorizer: Transformer,
    searches: Mapping[str, SearchResult],
    settings: ClassifierSettings,
    *,
    columns: list[str],
    partitions: int,
) -> VotingEnsembleModel:
    """The best candidate of each search, fitted on every training row, in the ensemble.

    Ties go to the model with the best cross-validated kappa (NaN last).
    """
    ensemble = VotingEnsemble(
        preprocessing=vectorizer,
        estimators=[
            training_pipeline(name, searches[name].best.params, settings) for name in MODEL_NAMES
        ],
        modelNames=MODEL_NAMES,
        featureCols=columns,
        labels=data.labels,
        tieBreakOrder=sorted(MODEL_NAMES, key=lambda name: -_score(searches[name])),
        featuresCol=VECTOR_COL,
        labelCol=LABEL_COL,
        weightCol=WEIGHT_COL if settings.weighted else None,
    )
    # Spread over the cores: every fit reads the cached vectors many times.
    return ensemble.fit(data.split("train").repartition(partitions))


def _confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    return confusion_of(labels, predicted, classes).astype(float)


def _evaluate(
    ensemble: VotingEnsembleModel,
    data: LabelledData,
    schemes: Mapping[str, voting.VoteSettings],
    chosen: str,
    *,
    partitions: int,
    without: tuple[Mapping[str, voting.VoteSettings], str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int, dict]:
    """The test confusion matrices of each voter and of the ensemble, and of the ensemble
    under each vote scheme, from one collect of the voters' votes and margins; and the test
    rows where the ensemble's vote differs from :func:`fmagenre.ml.voting.predict`'s for the
    chosen scheme (0 unless a soft vote's near-tie rounds apart in Spark and NumPy).

    An external member's matrix counts the rows it scores. With ``without`` (the schemes and
    the chosen one of the models alone), the fourth return holds the confusion matrices of
    those schemes (``test``) and the test rows each external member abstained on
    (``abstained``), and the first also the chosen one's, as ``ensemble_without_<names>``;
    otherwise it is empty.
    """
    names, classes = ensemble.voters(), len(data.labels)
    external = ensemble.getExternalModels()
    outputs = [prediction_col(name) for name in names]
    outputs += [margins_column(name) for name in names]
    # Spread over the cores: each partition starts the models' Python side (XGBoost).
    test = data.split("test").select(
        LABEL_COL, *ensemble.getFeatureCols(), *map(margins_column, external)
    )
    ensemble.set(ensemble.keepMargins, True)
    try:
        rows = (
            ensemble.transform(test.repartition(partitions))
            .select(LABEL_COL, *outputs, ensemble.getPredictionCol())
            .collect()
        )
    finally:
        ensemble.clear(ensemble.keepMargins)
    labels = np.array([row[0] for row in rows], dtype=np.int64)
    m = len(names)
    abstained = [np.nan] * classes
    column = {name: i for i, name in enumerate(names)}
    votes = {
        n: np.array(
            [-1 if row[1 + column[n]] is None else row[1 + column[n]] for row in rows],
            dtype=np.int64,
        )
        for n in names
    }
    margins = {
        n: np.array([row[1 + m + column[n]] or abstained for row in rows], dtype=float)
        for n in names
    }
    predicted = np.array([row[-1] for row in rows], dtype=np.int64)
    confusions = {}
    for name in names:
        present = votes[name] >= 0
        if not present.any():
            raise ExternalMemberError(
                f"external member {name} scored none of the {len(rows)} test rows: give it"
                " features it can score (the network: extract them with --patches)"
            )
        confusions[name] = _confusion(labels[present], votes[name][present], classes)
    confusions[ENSEMBLE] = _confusion(labels, predicted, classes)
    priority = ensemble.vote_priority()
    by_scheme, differ = {}, 0
    for key, settings in schemes.items():
        scheme = voting.predict(settings, names, votes, margins, classes, priority=priority)
        by_scheme[key] = _confusion(labels, scheme, classes)
        if key == chosen:
            differ = int((scheme != predicted).sum())
    if differ:
        log.warning("the ensemble's vote differs from NumPy's on %d test rows", differ)
    alone = {}
    if without is not None:
        order = ensemble.getTieBreakOrder()
        alone["test"] = {
            key: _confusion(
                labels,
                voting.predict(settings, MODEL_NAMES, votes, margins, classes, priority=order),
                classes,
            )
            for key, settings in without[0].items()
        }
        confusions[without_key(external)] = alone["test"][without[1]]
        alone["abstained"] = {name: int((votes[name] < 0).sum()) for name in external}
    return confusions, by_scheme, differ, alone


def _summaries(confusions: Mapping[str, np.ndarray], labels: Sequence[str]) -> dict:
    return {
        key: {**classification_summary(confusion, labels), "confusion": confusion.tolist()}
        for key, confusion in confusions.items()
    }


def _vote_dict(
    settings: voting.VoteSettings,
    *,
    chosen: str,
    voters: Sequence[str],
    labels: Sequence[str],
    cv_scores: Mapping[str, float],
    test: Mapping[str, np.ndarray],
) -> dict:
    """The ``vote`` part of the metrics: the chosen scheme, its parameters by voter and genre,
    every scheme's cross-validated kappa and test scores."""
    return {
        "scheme": chosen,
        "weights": dict(zip(voters, settings.weights or (1.0,) * len(voters), strict=True)),
        "temperatures": dict(zip(voters, settings.temperatures, strict=True))
        if settings.temperatures
        else {},
        "class_bias": dict(zip(labels, settings.bias, strict=True)) if settings.bias else {},
        "cv_kappa": cv_scores,
        "test": _summaries(test, labels),
    }


def _metrics(
    *,
    inputs: dict[str, str],
    output: str,
    started_at: datetime,
    options: TrainOptions,
    settings: ClassifierSettings,
    data: LabelledData,
    n_search: int,
    searches: Mapping[str, SearchResult],
    ensemble: VotingEnsembleModel,
    confusions: Mapping[str, np.ndarray],
    vote: dict,
    external: dict,
    timings: _Timings,
) -> dict:
    """What :func:`run` returns and writes to ``metrics.json``."""
    columns = ensemble.getFeatureCols()
    families: dict[str, int] = {}
    for column in columns:
        families[family_of(column)] = families.get(family_of(column), 0) + 1
    return {
        "job": "train",
        "started_at": started_at.isoformat(timespec="seconds"),
        "inputs": inputs,
        "model": f"{output.rstrip('/')}/{MODEL_DIR}",
        "report": f"{output.rstrip('/')}/report.md",
        "options": {
            "candidates": options.candidates,
            "folds": options.folds,
            "seed": options.seed,
            "class_weights": options.class_weights,
            "vote": options.vote,
            "class_bias": options.class_bias,
            "search_rows": options.search_rows,
            "windows": options.windows,
            "xgb_workers": settings.xgb_workers,
            "svc_parallelism": settings.parallelism,
        },
        "features": {
            "set": families_of(columns),
            "count": len(columns),
            "families": families,
            "columns": columns,
        },
        "labels": data.labels,
        "rows": {
            "train_total": sum(data.counts["train"].values()),
            "test_total": sum(data.counts["test"].values()),
            "search": n_search,
            "train": data.counts["train"],
            "test": data.counts["test"],
            # With windows, rows are windows; these are their tracks.
            **({"tracks": data.tracks} if data.tracks else {}),
        },
        "search": {
            name: {
                **searches[name].as_dict(),
                "space": {
                    param: [scale.low, scale.high]
                    for param, scale in options.search_spaces[name].items()
                },
            }
            for name in MODEL_NAMES
        },
        "tie_break_order": ensemble.getTieBreakOrder(),
        "vote": vote,
        **({"external": external} if external else {}),
        "test": {
            model: {
                **summary,
                **({"abstained": external[model]["test_abstained"]} if model in external else {}),
            }
            for model, summary in _summaries(confusions, data.labels).items()
        },
        # The same dict: the last stages and the total go in before the report is written.
        "timings": timings,
    }


def run(
    spark: SparkSession,
    *,
    features: str,
    labels: str,
    output: str,
    options: TrainOptions | None = None,
    external: Sequence[ExternalMember] = (),
) -> dict:
    """Train, evaluate and save the voting ensemble; return the metrics.

    Parameters
    ----------
    spark : SparkSession
    features : str
        Feature table or Parquet directory (any Hadoop path).
    labels : str
        Label table (``jobs/prepare_labels.py``).
    output : str
        Directory to create: the model in ``OUTPUT/model``, the metrics and report beside.
    options : TrainOptions or None
        None for the defaults.
    external : sequence of ExternalMember
        Members trained elsewhere that vote too (see the module); their margins are added
        to the feature rows by their ``add_margins``, their files saved by their ``save`` in
        ``OUTPUT/members/<name>``.

    Returns
    -------
    dict
        Everything also written to ``metrics.json``: inputs, options, row counts, the feature
        set, each search's candidates (parameters, fold kappas, mean, seconds), the tie-break
        order, the vote (``vote``: the chosen scheme, its weights, temperatures and class
        biases, each scheme's cross-validated kappa and test scores), each model's and the
        ensemble's test scores and confusion matrix, seconds per stage. With external
        members: ``test`` also holds each member's scores (on the test rows it scores;
        ``abstained``: the others) and ``ensemble_without_<names>``, the vote of the models
        alone; ``vote`` describes the vote of every voter, with ``rows`` (the out-of-fold
        rows it was fitted on), ``folds``, ``member_cv_kappa``, ``fallback`` (None, or why
        its weights are equal) and ``without`` (the vote of the models alone, as ``vote`` is
        without members); ``external`` holds, by member, its ``source``, ``held_out_tracks``,
        ``vote_rows`` (its held-out out-of-fold rows it scores), ``test_abstained`` and
        ``saved`` (its directory).

    Raises
    ------
    fmagenre.tables.inputs.InputTableError
        On inputs that cannot make training data (checked before any training).
    fmagenre.ml.external.ExternalMemberError
        On an external member with an invalid name or other genres than the training data
        (checked before any training), or one that scores no test row (after saving).
    FileExistsError
        When ``output`` exists and ``options.overwrite`` is false.
    fmagenre.ml.classifiers.BarrierModeError
        When the session uses dynamic allocation, which XGBoost cannot train under.
    fmagenre.platform.barrier.BarrierSlotsError
        When the cluster has too few task slots for XGBoost's workers for longer than
        Spark's barrier slot checks allow (an executor lost during the training).
    """
    options = options or TrainOptions()
    workers = options.xgb_workers or spark.sparkContext.defaultParallelism
    with slots_guard(spark, needed=workers, what=f"XGBoost's --xgb-workers {workers}"):
        return _train(spark, features, labels, output, options, list(external))


def _train(
    spark: SparkSession,
    features: str,
    labels: str,
    output: str,
    options: TrainOptions,
    external: list[ExternalMember],
) -> dict:
    check_names(external, MODEL_NAMES)
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    check_barrier_mode(spark)
    prepare_output(spark, output, overwrite=options.overwrite)
    timings = _Timings()
    columns = list(options.columns)
    parallelism = spark.sparkContext.defaultParallelism
    settings = ClassifierSettings(
        weighted=options.class_weights != "none",
        # A binary SVC fit is mostly short Spark jobs and driver work: run twice as many as
        # there are cores, so that one's waits overlap another's work.
        parallelism=2 * parallelism,
        xgb_workers=options.xgb_workers or parallelism,
        seed=options.seed,
        svc=options.svc,
    )
    with timings.stage("prepare data"):
        rows = read_feature_rows(spark, features)
        for member in external:
            rows = member.add_margins(rows)
        margins = [member.column for member in external]
        data = labelled_data(
            rows,
            read_labels(spark, labels),
            columns=columns,
            class_weights=options.class_weights,
            folds=options.folds,
            windows=options.windows,
            keep=margins,
        )
        data = _aligned(data, external)
        # The features are imputed and assembled with training means fitted once, for the
        # search and the fits: only the scaler and the classifier are fitted per fold.
        vectorizer = _fit_preprocessing(
            data.split("train"),
            columns,
            rows=sum(data.counts["train"].values()),
            seed=options.seed,
        )
        search_vectors = _search_vectors(
            data,
            vectorizer,
            options,
            weight=[WEIGHT_COL] if settings.weighted else [],
            partitions=parallelism,
            keep=["track_id", *margins] if external else [],
        )
        n_search = search_vectors.count()
    log.info(
        "%d training tracks (%d in the search sample), %d test tracks, %d genres, %d features",
        sum(data.counts["train"].values()),
        n_search,
        sum(data.counts["test"].values()),
        len(data.labels),
        len(columns),
    )
    searches, evaluators = _search_models(search_vectors, settings, options, timings)
    oof, numbers = _out_of_fold(searches, evaluators, options.folds)
    if external:
        oof, vote_rows = _external_out_of_fold(
            search_vectors, oof, numbers, external, len(data.labels)
        )
    search_vectors.unpersist()
    ensemble = _fit_ensemble(
        data, vectorizer, searches, settings, columns=columns, partitions=parallelism
    )
    for part, seconds in ensemble.fit_seconds.items():
        timings[f"fit {part}"] = round(seconds, 3)
    with timings.stage("choose vote"):
        chosen, schemes, cv_scores = _choose_vote(
            ensemble, oof, searches, options, len(data.labels)
        )
    log.info(
        "vote %s; cross-validated kappa: %s",
        chosen,
        ", ".join(f"{key} {score:.4f}" for key, score in cv_scores.items()),
    )
    # The vote of the models alone: (chosen scheme, every scheme, their CV kappas).
    alone = (chosen, schemes, cv_scores)
    if external:
        with timings.stage("choose vote with external members"):
            chosen, schemes, cv_scores, about = _choose_external_vote(
                ensemble, oof, external, options, classes=len(data.labels), without=chosen
            )
        log.info(
            "vote with %s on %d out-of-fold rows: %s; cross-validated kappa: %s",
            ", ".join(ensemble.getExternalModels()),
            about["rows"],
            chosen,
            ", ".join(f"{key} {score:.4f}" for key, score in cv_scores.items()),
        )
    with timings.stage("save model"):
        ensemble.save(f"{output.rstrip('/')}/{MODEL_DIR}")
        saved = {}
        for member in external:
            saved[member.name] = f"{output.rstrip('/')}/{MEMBERS_DIR}/{member.name}"
            member.save(saved[member.name])
    with timings.stage("evaluate"):
        confusions, by_scheme, differ, without = _evaluate(
            ensemble,
            data,
            schemes,
            chosen,
            partitions=parallelism,
            without=(alone[1], alone[0]) if external else None,
        )
    vote = {
        **_vote_dict(
            schemes[chosen],
            chosen=chosen,
            voters=ensemble.voters(),
            labels=data.labels,
            cv_scores=cv_scores,
            test=by_scheme,
        ),
        "test_rows_unlike_numpy": differ,
    }
    members = {}
    if external:
        vote.update(about)
        vote["without"] = _vote_dict(
            alone[1][alone[0]],
            chosen=alone[0],
            voters=MODEL_NAMES,
            labels=data.labels,
            cv_scores=alone[2],
            test=without["test"],
        )
        members = {
            member.name: {
                "source": member.source,
                "held_out_tracks": len(member.held_out),
                "vote_rows": vote_rows[member.name],
                "test_abstained": without["abstained"][member.name],
                "saved": saved[member.name],
            }
            for member in external
        }
    metrics = _metrics(
        inputs={"features": features, "labels": labels},
        output=output,
        started_at=started_at,
        options=options,
        settings=settings,
        data=data,
        n_search=n_search,
        searches=searches,
        ensemble=ensemble,
        confusions=confusions,
        vote=vote,
        external=members,
        timings=timings,
    )
    with timings.stage("write confusion matrices"):
        write_confusions(spark, output, confusions, data.labels)
    timings["total"] = round(time.perf_counter() - started, 3)
    write_report(spark, output, metrics)
    return metrics
