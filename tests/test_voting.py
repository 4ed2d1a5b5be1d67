"""Vote schemes on arrays (fmagenre.ml.voting) and class weights (fmagenre.ml.training_data)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fmagenre.ml import voting
from fmagenre.ml.training import TrainOptions
from fmagenre.ml.training_data import class_weight_values


def test_class_weights():
    counts = {"Rock": 900, "Jazz": 100}
    assert class_weight_values(counts, "none") == {"Rock": 1.0, "Jazz": 1.0}
    balanced = class_weight_values(counts, "balanced")
    assert balanced == pytest.approx({"Rock": 1000 / 1800, "Jazz": 1000 / 200})
    root = class_weight_values(counts, "sqrt")
    # Proportional to 1 / sqrt(n): 1/30 and 1/10, scaled so that the mean row weighs 1.
    assert root["Jazz"] / root["Rock"] == pytest.approx(3.0)
    assert 900 * root["Rock"] + 100 * root["Jazz"] == pytest.approx(1000)
    assert root == pytest.approx({"Rock": 1000 / (30 * 40), "Jazz": 1000 / (10 * 40)})
    with pytest.raises(ValueError, match="none, balanced, sqrt"):
        class_weight_values(counts, "inverse")


def test_options_check_the_vote():
    assert TrainOptions(class_weights="sqrt", vote="soft", class_bias="none").vote == "soft"
    with pytest.raises(ValueError, match="vote must be hard, kappa, soft, auto"):
        TrainOptions(vote="stacking")
    with pytest.raises(ValueError, match="class_bias must be none or kappa or f1"):
        TrainOptions(class_bias="recall")
    with pytest.raises(ValueError, match="class_weights must be none or balanced or sqrt"):
        TrainOptions(class_weights="inverse")
    with pytest.raises(ValueError, match="search_parallelism must be at least 1, got 0"):
        TrainOptions(search_parallelism=0)
    with pytest.raises(ValueError, match="svc must be lockstep or spark, got 'sgd'"):
        TrainOptions(svc="sgd")


def test_hard_vote_weights_and_ties():
    votes = [np.array([0, 0, 2, 1]), np.array([1, 1, 1, 2]), np.array([1, 2, 0, 0])]
    # Majority, no majority (tie to model 0 by default, to model 2 first when it leads).
    assert voting.hard_vote(votes, 3).tolist() == [1, 0, 2, 1]
    assert voting.hard_vote(votes, 3, priority=[2, 1, 0]).tolist() == [1, 2, 0, 0]
    # Model 0 outweighs the two others together.
    assert voting.hard_vote(votes, 3, weights=[3, 1, 1]).tolist() == [0, 0, 2, 1]


def test_fit_temperature_finds_the_temperature_of_the_labels():
    rng = np.random.default_rng(0)
    margins = rng.normal(0, 3, (20_000, 4))
    probabilities = voting.softmax(margins, 2.5)
    labels = np.array([rng.choice(4, p=p) for p in probabilities])
    assert voting.fit_temperature(margins, labels) == pytest.approx(2.5, rel=0.05)
    # Margins scaled by 10 need a temperature 10 times larger.
    assert voting.fit_temperature(10 * margins, labels) == pytest.approx(25, rel=0.05)


def _skewed(rows: int, seed: int):
    """Scores of 3 classes of shares 80%, 15%, 5% whose mean scores barely differ."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=rows, p=[0.8, 0.15, 0.05])
    scores = rng.normal(0, 1, (rows, 3)) + 1.2 * np.eye(3)[labels] + np.log([0.8, 0.15, 0.05])
    return scores, labels


def test_tune_bias_trades_majority_hits_for_kappa():
    scores, labels = _skewed(6000, 1)
    before = np.argmax(scores, axis=1)
    bias = voting.tune_bias(scores, labels)
    after = np.argmax(scores + bias, axis=1)
    assert bias.max() == 0 and bias[2] > bias[0]
    assert voting.kappa(labels, after, 3) > voting.kappa(labels, before, 3) + 0.05
    # The minority's recall doubles, for an accuracy within a point.
    assert np.mean(after[labels == 2] == 2) > 2 * np.mean(before[labels == 2] == 2)
    assert np.mean(after == labels) > np.mean(before == labels) - 0.01
    # It holds on rows it was not tuned on.
    test_scores, test_labels = _skewed(6000, 2)
    assert voting.kappa(test_labels, np.argmax(test_scores + bias, axis=1), 3) > voting.kappa(
        test_labels, np.argmax(test_scores, axis=1), 3
    )


def test_f1_bias_gives_the_minority_predictions_within_the_accuracy_floor():
    scores, labels = _skewed(6000, 5)
    before = np.argmax(scores, axis=1)
    kappa_bias = voting.tune_bias(scores, labels, "kappa")
    f1_bias = voting.tune_bias(scores, labels, "f1")
    by_kappa, by_f1 = (np.argmax(scores + b, axis=1) for b in (kappa_bias, f1_bias))
    assert voting.macro_f1(labels, by_f1, 3) > voting.macro_f1(labels, by_kappa, 3)
    assert np.mean(by_f1 == labels) >= np.mean(before == labels) - voting.MAX_ACCURACY_LOSS
    assert voting.macro_f1(labels, before, 3) < voting.macro_f1(labels, by_f1, 3)
    # scikit-learn's macro F1: classes never seen nor predicted do not count.
    assert voting.macro_f1(np.array([0, 0, 1]), np.array([0, 1, 1]), 4) == pytest.approx(2 / 3)


def test_choose_scores_every_scheme_on_held_out_folds():
    # Model a is good, b and c are noise that agree with each other: the hard vote follows
    # them, a kappa-weighted one and the soft vote follow a.
    scores, labels = _skewed(3000, 3)
    rng = np.random.default_rng(4)
    noise = rng.normal(0, 1, (3000, 3))
    margins = {"a": scores, "b": noise, "c": noise + 0.01}
    oof = voting.OutOfFold(
        labels=labels,
        folds=np.arange(3000) % 3,
        votes={name: np.argmax(m, axis=1) for name, m in margins.items()},
        margins=margins,
    )
    settings, cv = voting.choose(oof, "abc", 3, cv_kappas=[0.3, 0.01, 0.01], priority="abc")
    assert set(settings) == set(cv) == {"hard", "kappa", "soft", "soft_bias", "soft_f1"}
    assert settings["kappa"].weights == (0.3, 0.01, 0.01)
    assert cv["hard"] < 0.05 < cv["kappa"]
    assert cv["soft_bias"] > cv["soft"]
    assert len(settings["soft_bias"].bias) == 3 and not settings["soft"].bias
    assert all(t > 0 for t in settings["soft"].temperatures)
    # The soft vote's weights are fitted: the noise models get (almost) none.
    assert settings["soft"].weights[0] >= 0.9 and sum(settings["soft"].weights) == pytest.approx(1)
    assert voting.kappa_weights([math.nan, -0.1]) == (1.0, 1.0)


def test_fit_weights_finds_the_pool_of_least_log_loss():
    rng = np.random.default_rng(7)
    labels = rng.choice(4, size=4000)
    truth = np.eye(4)[labels]

    def model(strength: float) -> np.ndarray:
        """Probabilities that lean ``strength`` towards the truth, with independent noise."""
        return voting.softmax(strength * truth + rng.normal(0, 1, (4000, 4)))

    good, also_good, noise = model(2.0), model(2.0), model(0.0)
    weights = voting.fit_weights([good, also_good, noise], labels)
    assert len(weights) == 3 and sum(weights) == pytest.approx(1)
    # Two equally good models with independent errors share the weight; noise gets none.
    assert weights[2] == 0 and abs(weights[0] - weights[1]) <= 0.2

    # On the grid, no other pool has a lower log loss.
    def loss(w):
        mean = sum(wi * p for wi, p in zip(w, [good, also_good, noise], strict=True))
        return -np.mean(np.log(mean[np.arange(4000), labels]))

    for other in ([1, 0, 0], [0.5, 0.5, 0], [0.4, 0.4, 0.2], [1 / 3] * 3):
        assert loss(weights) <= loss(other) + 1e-12
    assert voting.fit_weights([good], labels) == (1.0,)


def test_auto_compares_the_schemes_without_biases_then_applies_the_bias():
    # The bench train run's CV kappas: the soft vote beats the hard one unbiased, its F1
    # biases cost kappa on purpose; auto keeps the soft vote with the biases asked for.
    cv = {"hard": 0.3932, "kappa": 0.3932, "soft": 0.4020, "soft_bias": 0.3977, "soft_f1": 0.3847}
    assert voting.best_scheme(cv, class_bias="f1") == "soft_f1"
    assert voting.best_scheme(cv, class_bias="kappa") == "soft_bias"
    assert voting.best_scheme(cv, class_bias="none") == "soft"
    # A biased variant's own score never lifts the soft vote over a better hard vote.
    cv = {"hard": 0.41, "kappa": 0.40, "soft": 0.39, "soft_bias": 0.45, "soft_f1": 0.45}
    assert voting.best_scheme(cv, class_bias="f1") == "hard"
    assert voting.best_scheme({**cv, "kappa": 0.42}, class_bias="kappa") == "kappa"
    assert voting.best_scheme({**cv, "hard": math.nan}, class_bias="none") == "kappa"
