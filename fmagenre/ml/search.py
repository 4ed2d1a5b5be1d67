"""Randomized hyper-parameter search with stratified k-fold cross-validation in Spark.

Each candidate is fitted on ``k - 1`` folds and scored on the remaining one, for each fold in
turn; its score is the mean of the ``k`` scores (Cohen's kappa here) and the best mean wins.
Candidates and folds run one after the other: every fit already uses all the cluster's cores,
and XGBoost's barrier stages need every slot at once. Each candidate's parameters, fold
scores and time go to the log and into the result.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

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
    seconds: float

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
    """
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    if not evaluator.isLargerBetter():
        raise ValueError("the evaluator's metric must be larger-is-better")
    started = time.perf_counter()
    results = []
    drawn = draw_candidates(space, candidates=candidates, seed=seed)
    for number, params in enumerate(drawn, start=1):
        candidate_started = time.perf_counter()
        scores = []
        for fold in range(folds):
            model = build(params).fit(data.where(F.col(fold_col) != fold))
            scores.append(evaluator.evaluate(model.transform(data.where(F.col(fold_col) == fold))))
        result = CandidateResult(
            params=params, fold_scores=scores, seconds=time.perf_counter() - candidate_started
        )
        results.append(result)
        log.info(
            "%s candidate %d/%d: score %.4f (folds %s) in %.1f s: %s",
            name,
            number,
            len(drawn),
            result.score,
            ", ".join(f"{s:.4f}" for s in scores),
            result.seconds,
            ", ".join(f"{key}={_short(value)}" for key, value in params.items()),
        )
    return SearchResult(candidates=results, seconds=time.perf_counter() - started)


def _short(value: float | int) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"
