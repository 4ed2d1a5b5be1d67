"""Randomized hyper-parameter search with stratified k-fold cross-validation in Spark.

Each candidate is fitted on ``k - 1`` folds and scored on the remaining one, for each fold in
turn; its score is the mean of the ``k`` scores (Cohen's kappa here) and the best mean wins.
The ``candidates x k`` fits run ``parallelism`` at a time, from driver threads (Spark runs
the jobs of several threads at once): a fit on a search sample is mostly short Spark jobs
and driver work, which leave the cores idle, so two fits overlap well on two cores. Each
candidate's parameters, fold scores and times go to the log and into the result, whatever
the parallelism, in drawing order.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pyspark.ml import Estimator
from pyspark.ml.evaluation import Evaluator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fmagenre.ml.search_space import LogUniform, draw_candidates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CandidateResult:
    """One candidate's cross-validation."""

    params: dict
    fold_scores: list[float]
    #: From the start of its first fold's fit to the end of its last fold's evaluation.
    seconds: float
    #: Each fold's fit and evaluation.
    fold_seconds: list[float] = field(default_factory=list)

    @property
    def score(self) -> float:
        """Mean fold score; NaN when a fold's score is undefined."""
        return sum(self.fold_scores) / len(self.fold_scores)


@dataclass(frozen=True)
class SearchResult:
    """All candidates of a search, in drawing order, and the best one."""

    candidates: list[CandidateResult]
    seconds: float

    @property
    def best(self) -> CandidateResult:
        """The candidate with the highest score (NaN scores lose; the first of equals wins)."""
        return max(
            self.candidates,
            key=lambda c: -math.inf if math.isnan(c.score) else c.score,
        )

    def as_dict(self) -> dict:
        return {
            "seconds": round(self.seconds, 3),
            "best": self.candidates.index(self.best),
            "candidates": [
                {
                    "params": c.params,
                    "fold_scores": c.fold_scores,
                    "score": c.score,
                    "seconds": round(c.seconds, 3),
                    "fold_seconds": [round(seconds, 3) for seconds in c.fold_seconds],
                }
                for c in self.candidates
            ],
        }


def random_search(
    data: DataFrame,
    *,
    build: Callable[[dict], Estimator],
    space: Mapping[str, LogUniform],
    evaluator: Evaluator,
    candidates: int,
    folds: int,
    seed: int,
    fold_col: str = "fold",
    name: str = "model",
    parallelism: int = 1,
) -> SearchResult:
    """Draw ``candidates`` parameter sets from ``space`` and cross-validate each.

    Parameters
    ----------
    data : DataFrame
        Training rows with an integer ``fold_col`` in ``[0, folds)``
        (:func:`fmagenre.ml.stratify.assign_folds`); cache it, every fit reads it.
    build : callable
        Parameter set to an unfitted estimator whose model the evaluator can score.
    space : mapping of str to LogUniform
        Parameter ranges.
    evaluator : Evaluator
        Scores a fold's predictions; larger is better.
    candidates, folds, seed : int
        Number of parameter sets, of folds, and the seed of the draws.
    fold_col : str
        The fold column.
    name : str
        Model name for the log.
    parallelism : int
        Fits (with their evaluations) run at once, in drawing order; ``build`` and
        ``evaluator`` must then be safe to call from several threads.
    """
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    if parallelism < 1:
        raise ValueError(f"parallelism must be at least 1, got {parallelism}")
    if not evaluator.isLargerBetter():
        raise ValueError("the evaluator's metric must be larger-is-better")
    started = time.perf_counter()
    drawn = draw_candidates(space, candidates=candidates, seed=seed)

    def fit_and_score(params: dict, fold: int) -> tuple[float, float, float]:
        """The fold's score, and the start and end of its fit and evaluation."""
        fold_started = time.perf_counter()
        model = build(params).fit(data.where(F.col(fold_col) != fold))
        score = evaluator.evaluate(model.transform(data.where(F.col(fold_col) == fold)))
        return score, fold_started, time.perf_counter()

    results = []
    with ThreadPoolExecutor(parallelism, thread_name_prefix=f"search-{name}") as pool:
        try:
            runs = [
                [pool.submit(fit_and_score, params, fold) for fold in range(folds)]
                for params in drawn
            ]
            for number, (params, futures) in enumerate(zip(drawn, runs, strict=True), start=1):
                outcomes = [future.result() for future in futures]
                result = CandidateResult(
                    params=params,
                    fold_scores=[score for score, _, _ in outcomes],
                    seconds=max(end for *_, end in outcomes) - min(s for _, s, _ in outcomes),
                    fold_seconds=[end - begin for _, begin, end in outcomes],
                )
                results.append(result)
                _log_candidate(name, number, len(drawn), result)
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return SearchResult(candidates=results, seconds=time.perf_counter() - started)


def _log_candidate(name: str, number: int, count: int, result: CandidateResult) -> None:
    log.info(
        "%s candidate %d/%d: score %.4f (folds %s) in %.1f s (fits %s s): %s",
        name,
        number,
        count,
        result.score,
        ", ".join(f"{score:.4f}" for score in result.fold_scores),
        result.seconds,
        ", ".join(f"{seconds:.1f}" for seconds in result.fold_seconds),
        ", ".join(f"{key}={_short(value)}" for key, value in result.params.items()),
    )


def _short(value: float | int) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"
