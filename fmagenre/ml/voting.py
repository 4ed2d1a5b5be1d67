"""Vote schemes of the ensemble on arrays: the out-of-fold choice and its parameters.

The training job collects, for each model's best candidate, its out-of-fold votes and class
margins on the search folds (:class:`OutOfFold`), and here, in NumPy:

- ``hard``: one vote per model, the most-voted class wins, ties to the first model of the
  tie-break order that voted a tied class (fmagenre 0.1's vote);
- ``kappa``: the same, each vote weighing the model's cross-validated kappa (with three
  models it differs from ``hard`` only when one model's kappa exceeds the others' sum);
- ``soft``: the weighted mean of the models' class probabilities ``softmax(margins / T)``,
  one temperature ``T`` per model fitted on its out-of-fold margins (log loss; LR and
  XGBoost's margins give their own probabilities at ``T = 1``, the one-vs-rest SVC's are
  scaled to probabilities), then the weights, on a grid of the simplex (steps of
  :data:`WEIGHT_STEP`), for the least out-of-fold log loss of the mean: a weak model gets
  little or no weight, a lone strong one may get all of it; the class of the largest
  ``log(mean probability) + bias`` wins.
  With a class bias, per-class biases (coordinate ascent on a grid) maximise the out-of-fold
  kappa (``--class-bias kappa``), which moves predictions towards minority genres as far as
  kappa, which discounts agreement by chance, pays for it; or the macro F1 while the
  accuracy stays within :data:`MAX_ACCURACY_LOSS` of the unbiased vote's (``f1``), which
  gives every genre some predictions when it can afford them.

Each scheme's cross-validated kappa is the mean of its fold kappas, as the search scores its
candidates; temperatures and biases are fitted on the other folds' rows (cross-fitting), so
that a scheme with fitted parameters is not scored on the rows it was fitted on.

External members (:mod:`fmagenre.ml.external`) have predictions on some rows only: a row a
member does not score has NaN margins and the vote -1, an abstention (:func:`hard_vote`
counts the others' votes, the soft vote pools the members present, their weights
renormalised). :func:`choose_with_external` fits and scores the schemes of the models and the
members on the rows that every one of them scores; with fewer than
:data:`MIN_EXTERNAL_ROWS` such rows, or rows in fewer than two folds, it fits nothing and
gives every voter the same weight.
:class:`fmagenre.ml.ensemble.VotingEnsembleModel` computes the same votes in Spark.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fmagenre.metrics.classification import cohen_kappa, confusion_of

VOTES = ("hard", "kappa", "soft")
CLASS_BIASES = ("none", "kappa", "f1")
#: The soft vote's variants: no bias, and a bias tuned for each objective.
SOFT_VARIANTS = {"soft": "none", "soft_bias": "kappa", "soft_f1": "f1"}
#: Out-of-fold accuracy the ``f1`` bias may give up, from the unbiased soft vote's.
MAX_ACCURACY_LOSS = 0.02
#: Spacing of the soft vote's weight grid (weights are multiples of it that sum to 1).
WEIGHT_STEP = 0.05
#: Bias values tried for a class in each sweep, around its current one (log-score units).
_BIAS_STEPS = np.linspace(-3.0, 3.0, 49)
_BIAS_SWEEPS = 3
#: Out-of-fold rows scored by every voter below which the vote with external members gets
#: equal weights instead of fitted ones.
MIN_EXTERNAL_ROWS = 30


@dataclass(frozen=True)
class OutOfFold:
    """Out-of-fold predictions of each model on the same rows."""

    #: True class index of each row.
    labels: np.ndarray
    #: Fold of each row.
    folds: np.ndarray
    #: Class-index vote of each model, by model name (-1: the model abstains).
    votes: Mapping[str, np.ndarray]
    #: Class margins of each model, shape (rows, classes), by model name (NaN rows: it
    #: abstains).
    margins: Mapping[str, np.ndarray]

    def subset(self, rows: np.ndarray) -> OutOfFold:
        """The same predictions on ``rows`` (indices or a mask)."""
        return OutOfFold(
            labels=self.labels[rows],
            folds=self.folds[rows],
            votes={name: vote[rows] for name, vote in self.votes.items()},
            margins={name: margin[rows] for name, margin in self.margins.items()},
        )


@dataclass(frozen=True)
class VoteSettings:
    """The parameters of a vote scheme (:class:`fmagenre.ml.ensemble.VotingEnsembleModel`)."""

    scheme: str = "hard"
    #: Vote weight of each model (kappa and soft votes); empty for 1 each.
    weights: tuple[float, ...] = ()
    #: Softmax temperature of each model's margins (soft vote).
    temperatures: tuple[float, ...] = ()
    #: Added to each class's log mean probability (soft vote); empty for none.
    bias: tuple[float, ...] = ()


def scored(margins: np.ndarray) -> np.ndarray:
    """The rows whose ``margins`` are all numbers: those the model does not abstain on."""
    return ~np.isnan(margins).any(axis=1)


def kappa(labels: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    """Cohen's kappa of class-index arrays."""
    return cohen_kappa(confusion_of(labels, predicted, classes))


def softmax(margins: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(margins / temperature)``, computed as the Spark vote does."""
    scaled = np.exp((margins - margins.max(axis=1, keepdims=True)) / temperature)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(margins: np.ndarray, labels: np.ndarray) -> float:
    """The temperature whose softmax of ``margins`` has the least log loss on ``labels``.

    Golden-section search on ``log T`` in ``[log 0.01, log 100]``, rounded to 4 significant
    digits (saved in the model, and repeatable).
    """
    rows = np.arange(len(labels))
    labels = labels.astype(np.int64)

    def loss(log_t: float) -> float:
        probabilities = softmax(margins, math.exp(log_t))
        return -float(np.mean(np.log(np.maximum(probabilities[rows, labels], 1e-300))))

    low, high = math.log(0.01), math.log(100.0)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a, loss_b = loss(a), loss(b)
    for _ in range(40):
        if loss_a <= loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = loss(a)
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = loss(b)
    return float(f"{math.exp((low + high) / 2):.4g}")


def fit_weights(probabilities: Sequence[np.ndarray], labels: np.ndarray) -> tuple[float, ...]:
    """The weights on the simplex grid (multiples of :data:`WEIGHT_STEP` summing to 1) whose
    weighted mean of ``probabilities`` (one array of shape (rows, classes) per model) has the
    least log loss on ``labels``; the first of equals in the grid's order."""
    rows, labels = np.arange(len(labels)), labels.astype(np.int64)
    # Each model's probability of the true class: the mean's log loss needs no more.
    truth = np.stack([p[rows, labels] for p in probabilities], axis=1)
    units, models = round(1 / WEIGHT_STEP), len(probabilities)
    best, best_loss = None, math.inf
    # Stars and bars: each choice of models - 1 bar positions among units + models - 1 slots.
    for bars in itertools.combinations(range(units + models - 1), models - 1):
        edges = (-1, *bars, units + models - 1)
        weights = np.array([edges[i + 1] - edges[i] - 1 for i in range(models)]) / units
        loss = -float(np.mean(np.log(np.maximum(truth @ weights, 1e-300))))
        if loss < best_loss - 1e-12:
            best, best_loss = weights, loss
    return tuple(round(float(w), 4) for w in best)


def hard_vote(
    votes: Sequence[np.ndarray],
    classes: int,
    *,
    weights: Sequence[float] | None = None,
    priority: Sequence[int] | None = None,
) -> np.ndarray:
    """The (weighted) majority class of each row; ties to the vote of the model that comes
    first in ``priority`` (model positions) among those that voted a tied class. A vote of
    -1 is an abstention; a row without votes gets -1."""
    weights = np.ones(len(votes)) if weights is None else np.asarray(weights, dtype=float)
    priority = list(range(len(votes))) if priority is None else list(priority)
    stacked = np.stack([np.asarray(v, dtype=np.int64) for v in votes])
    totals = np.zeros((stacked.shape[1], classes))
    rows = np.arange(stacked.shape[1])
    for vote, weight in zip(stacked, weights, strict=True):
        cast = vote >= 0
        totals[rows[cast], vote[cast]] += weight
    best = totals.max(axis=1)
    winner = np.full(stacked.shape[1], -1)
    for model in reversed(priority):  # the highest priority is written last
        vote = stacked[model]
        count = totals[rows, np.maximum(vote, 0)]
        tied = (vote >= 0) & np.isclose(count, best, rtol=0, atol=1e-12)
        winner = np.where(tied, vote, winner)
    return winner


def soft_scores(
    margins: Sequence[np.ndarray], temperatures: Sequence[float], weights: Sequence[float]
) -> np.ndarray:
    """``log`` of the weighted mean of the models' ``softmax(margins / T)``."""
    return _log_pool(
        [softmax(margin, t) for margin, t in zip(margins, temperatures, strict=True)], weights
    )


def _log_pool(probabilities: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """``log`` of the weighted mean of the models' class ``probabilities``; on a row where
    some abstain (NaN), of the others', their weights renormalised (1 each when all are 0)."""
    present = np.stack([scored(p) for p in probabilities])
    if present.all():
        total = sum(weight * p for p, weight in zip(probabilities, weights, strict=True))
        with np.errstate(divide="ignore"):
            return np.log(total / sum(weights))
    shares = present * np.asarray(weights, dtype=float)[:, None]
    shares = np.where(shares.sum(axis=0) > 0, shares, present.astype(float))
    total = sum(
        share[:, None] * np.nan_to_num(p) for p, share in zip(probabilities, shares, strict=True)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(total / shares.sum(axis=0)[:, None])


def macro_f1(labels: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    """Mean F1 of the classes that occur in ``labels`` or ``predicted`` (scikit-learn's)."""
    confusion = confusion_of(labels, predicted, classes)
    support, guessed, hits = confusion.sum(axis=1), confusion.sum(axis=0), np.diag(confusion)
    occurring = (support + guessed) > 0
    return float(np.mean(2 * hits[occurring] / (support + guessed)[occurring]))


def tune_bias(scores: np.ndarray, labels: np.ndarray, objective: str = "kappa") -> np.ndarray:
    """Per-class biases added to ``scores`` that maximise ``objective`` on ``labels``:
    ``kappa``, or ``f1`` (macro F1, the accuracy at most :data:`MAX_ACCURACY_LOSS` below
    that of ``scores`` unbiased).

    Coordinate ascent: each sweep tries, for each class in turn, its bias plus each of
    :data:`_BIAS_STEPS`, and keeps the best (the current one unless another is better).
    """
    classes = scores.shape[1]
    labels = labels.astype(np.int64)
    bias = np.zeros(classes)
    unbiased = np.argmax(scores, axis=1)
    floor = np.mean(unbiased == labels) - MAX_ACCURACY_LOSS

    def score_of(predicted: np.ndarray) -> float:
        if objective == "kappa":
            return kappa(labels, predicted, classes)
        if np.mean(predicted == labels) < floor:
            return -math.inf
        return macro_f1(labels, predicted, classes)

    best = score_of(unbiased)
    for _ in range(_BIAS_SWEEPS):
        improved = False
        for c in range(classes):
            others = scores + bias
            others[:, c] = -np.inf
            rival, rival_class = others.max(axis=1), others.argmax(axis=1)
            for value in bias[c] + _BIAS_STEPS:
                predicted = np.where(scores[:, c] + value > rival, c, rival_class)
                score = score_of(predicted)
                if score > best + 1e-12:
                    best, bias[c], improved = score, value, True
        if not improved:
            break
    return np.round(bias - bias.max(), 4)


def _soft_settings(
    oof: OutOfFold, rows: np.ndarray, names: Sequence[str]
) -> dict[str, VoteSettings]:
    """The soft vote's variants (:data:`SOFT_VARIANTS`), temperatures, weights and biases
    fitted on ``rows``."""
    labels = oof.labels[rows]
    temperatures = tuple(fit_temperature(oof.margins[name][rows], labels) for name in names)
    probabilities = [
        softmax(oof.margins[n][rows], t) for n, t in zip(names, temperatures, strict=True)
    ]
    weights = fit_weights(probabilities, labels)
    scores = _log_pool(probabilities, weights)
    variants = {}
    for key, objective in SOFT_VARIANTS.items():
        tuned = () if objective == "none" else tuple(tune_bias(scores, labels, objective).tolist())
        variants[key] = VoteSettings("soft", weights, temperatures, tuned)
    return variants


def predict(
    settings: VoteSettings,
    names: Sequence[str],
    votes: Mapping[str, np.ndarray],
    margins: Mapping[str, np.ndarray],
    classes: int,
    *,
    priority: Sequence[str],
) -> np.ndarray:
    """The class index the ensemble votes for each row, under ``settings``."""
    weights = settings.weights or (1.0,) * len(names)
    if settings.scheme in ("hard", "kappa"):
        return hard_vote(
            [votes[name] for name in names],
            classes,
            weights=weights if settings.scheme == "kappa" else None,
            priority=[list(names).index(name) for name in priority],
        )
    temperatures = settings.temperatures or (1.0,) * len(names)
    scores = soft_scores([margins[name] for name in names], temperatures, weights)
    if settings.bias:
        scores = scores + np.asarray(settings.bias)
    return np.argmax(scores, axis=1)


def kappa_weights(cv_kappas: Sequence[float]) -> tuple[float, ...]:
    """Vote weights from cross-validated kappas: negative or NaN count 0; all 0: 1 each."""
    weights = [max(k, 0.0) if math.isfinite(k) else 0.0 for k in cv_kappas]
    return tuple(round(w, 6) for w in weights) if any(weights) else (1.0,) * len(weights)


def choose(
    oof: OutOfFold,
    names: Sequence[str],
    classes: int,
    *,
    cv_kappas: Sequence[float],
    priority: Sequence[str],
) -> tuple[dict[str, VoteSettings], dict[str, float]]:
    """Every scheme's settings fitted on all out-of-fold rows, and its cross-validated kappa.

    Returns
    -------
    settings : dict of str to VoteSettings
        By scheme: ``hard``, ``kappa``, and the soft vote without class biases (``soft``),
        with biases for kappa (``soft_bias``) and for macro F1 (``soft_f1``).
    scores : dict of str to float
        The mean fold kappa of each, its temperatures, weights and biases fitted on the
        other folds.
    """
    weights = kappa_weights(cv_kappas)
    every = np.arange(len(oof.labels))
    settings = {
        "hard": VoteSettings("hard"),
        "kappa": VoteSettings("kappa", weights),
        **_soft_settings(oof, every, names),
    }
    fold_scores: dict[str, list[float]] = {key: [] for key in settings}
    for fold in np.unique(oof.folds):
        held, rest = oof.folds == fold, oof.folds != fold
        fitted = {**settings, **_soft_settings(oof, np.flatnonzero(rest), names)}
        votes = {name: oof.votes[name][held] for name in names}
        margins = {name: oof.margins[name][held] for name in names}
        for key, setting in fitted.items():
            predicted = predict(setting, names, votes, margins, classes, priority=priority)
            fold_scores[key].append(kappa(oof.labels[held], predicted, classes))
    scores = {key: float(np.mean(values)) for key, values in fold_scores.items()}
    return settings, scores


def member_kappas(oof: OutOfFold, names: Sequence[str], classes: int) -> tuple[float, ...]:
    """Each model's mean fold kappa on ``oof`` (whose rows it all scores)."""
    folds = np.unique(oof.folds)
    return tuple(
        float(
            np.mean(
                [
                    kappa(oof.labels[oof.folds == f], oof.votes[n][oof.folds == f], classes)
                    for f in folds
                ]
            )
        )
        for n in names
    )


def choose_with_external(
    oof: OutOfFold,
    names: Sequence[str],
    external: Sequence[str],
    classes: int,
    *,
    priority: Sequence[str],
    min_rows: int = MIN_EXTERNAL_ROWS,
) -> tuple[dict[str, VoteSettings], dict[str, float], dict]:
    """Every scheme of the models ``names`` and the external members ``external``, fitted and
    scored (:func:`choose`) on the rows of ``oof`` that every one of them scores.

    Parameters
    ----------
    oof : OutOfFold
        Predictions of every voter; an external member's NaN margins (vote -1) on a row mark
        a row it cannot score, or one it must not be tuned on (it was trained on it).
    names, external : sequence of str
        The models, then the external members: the voters' order of the settings.
    classes : int
    priority : sequence of str
        Every voter, by tie-break priority.
    min_rows : int
        Rows below which nothing is fitted: then every scheme gives each voter weight 1
        (temperatures fitted on each voter's own rows, no class bias) and its score is NaN.

    Returns
    -------
    settings : dict of str to VoteSettings
        By scheme, as :func:`choose`.
    scores : dict of str to float
        The cross-validated kappa of each (NaN when nothing was fitted).
    about : dict
        ``rows`` (the rows every voter scores), ``folds`` (those they fall in),
        ``member_cv_kappa`` (each voter's mean fold kappa on them; NaN when nothing was
        fitted) and ``fallback``: None, or why the weights are equal.
    """
    voters = [*names, *external]
    usable = np.logical_and.reduce([scored(oof.margins[name]) for name in voters])
    subset = oof.subset(usable)
    folds = np.unique(subset.folds)
    about = {"rows": int(usable.sum()), "folds": len(folds), "fallback": None}
    if about["rows"] >= min_rows and len(folds) >= 2:
        cv = member_kappas(subset, voters, classes)
        about["member_cv_kappa"] = dict(zip(voters, cv, strict=True))
        settings, scores = choose(subset, voters, classes, cv_kappas=cv, priority=priority)
        return settings, scores, about
    about["fallback"] = (
        f"{about['rows']} out-of-fold rows scored by every voter, in {len(folds)} fold(s):"
        f" fewer than {min_rows} rows or 2 folds, so every voter weighs 1"
    )
    about["member_cv_kappa"] = dict.fromkeys(voters, math.nan)
    temperatures = []
    for name in voters:
        rows = scored(oof.margins[name])
        margins, labels = oof.margins[name][rows], oof.labels[rows]
        temperatures.append(fit_temperature(margins, labels) if rows.any() else 1.0)
    equal = (1.0,) * len(voters)
    soft = VoteSettings("soft", equal, tuple(temperatures))
    settings = {
        "hard": VoteSettings("hard"),
        "kappa": VoteSettings("kappa", equal),
        **dict.fromkeys(SOFT_VARIANTS, soft),
    }
    return settings, dict.fromkeys(settings, math.nan), about


def soft_key(class_bias: str) -> str:
    """The soft vote's key in :func:`choose`'s results under ``--class-bias class_bias``."""
    return next(key for key, objective in SOFT_VARIANTS.items() if objective == class_bias)


def best_scheme(scores: Mapping[str, float], *, class_bias: str) -> str:
    """The scheme with the best cross-validated kappa among ``hard``, ``kappa`` and the soft
    vote without biases (ties go to the first); a soft vote then gets ``class_bias``.

    The biases are the user's trade (``f1`` gives up kappa for minority genres on purpose), so
    the schemes are compared without them."""
    best = max(VOTES, key=lambda scheme: _finite(scores[scheme]))
    return soft_key(class_bias) if best == "soft" else best


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf
