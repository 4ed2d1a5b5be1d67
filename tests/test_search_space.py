"""Log-uniform candidate draws and search-space files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fmagenre.ml.classifiers import SEARCH_SPACES
from fmagenre.ml.search_space import (
    LogUniform,
    SearchSpaceError,
    draw_candidates,
    read_search_space,
)


def test_draws_are_log_uniform_and_seeded():
    rng = np.random.default_rng(0)
    scale = LogUniform(1e-4, 1.0)
    values = np.array([scale.draw(rng) for _ in range(4000)])
    assert values.min() >= 1e-4 and values.max() <= 1.0
    # Each decade gets a quarter of the draws.
    decades = np.histogram(np.log10(values), bins=[-4, -3, -2, -1, 0])[0] / len(values)
    np.testing.assert_allclose(decades, 0.25, atol=0.03)
    integers = [LogUniform(2, 6, integer=True).draw(rng) for _ in range(4000)]
    assert set(integers) == {2, 3, 4, 5, 6}
    # P(k) = log((k + 1) / k) / log(7 / 2): 2 is drawn about 3 times as often as 6.
    share = np.mean(np.array(integers) == 2)
    assert share == pytest.approx(math.log(1.5) / math.log(3.5), abs=0.03)

    space = SEARCH_SPACES["xgb"]
    first = draw_candidates(space, candidates=5, seed=3)
    assert first == draw_candidates(space, candidates=5, seed=3)
    assert first != draw_candidates(space, candidates=5, seed=4)
    assert all(isinstance(c["n_estimators"], int) for c in first)
    assert all(set(c) == set(space) for c in first)
    with pytest.raises(ValueError, match="candidates must be at least 1"):
        draw_candidates(space, candidates=0, seed=0)
    for bad in ((0, 1), (2, 1), (1, math.inf)):
        with pytest.raises(ValueError):
            LogUniform(*bad)
    with pytest.raises(ValueError, match="integer bounds"):
        LogUniform(1.5, 3, integer=True)


def test_search_space_file(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text("[lr]\nmaxIter = [5, 20]\nelasticNetParam = 0.5\n[xgb]\nmax_depth = 3\n")
    spaces = read_search_space(path, SEARCH_SPACES)
    assert spaces["lr"]["maxIter"] == LogUniform(5, 20, integer=True)
    assert spaces["lr"]["elasticNetParam"] == LogUniform(0.5, 0.5)
    assert spaces["lr"]["regParam"] == SEARCH_SPACES["lr"]["regParam"]
    assert spaces["xgb"]["max_depth"] == LogUniform(3, 3, integer=True)
    assert spaces["svc"] == SEARCH_SPACES["svc"]
    assert SEARCH_SPACES["lr"]["maxIter"] == LogUniform(20, 150, integer=True)  # untouched
    for text, message in (
        ("[rf]\nn = 3\n", r"\[rf\] is not a model table; models: lr, svc, xgb"),
        ("[lr]\nalpha = 3\n", "has no parameter 'alpha'; parameters: regParam"),
        ("[lr]\nmaxIter = [5, 6, 7]\n", "must be \\[low, high\\] or one value"),
        ("[lr]\nmaxIter = [5.5, 7]\n", "integer bounds"),
        ("[lr]\nregParam = [1, 0.1]\n", "need 0 < low <= high"),
        ("[lr\n", "cannot read the search space"),
    ):
        path.write_text(text)
        with pytest.raises(SearchSpaceError, match=message):
            read_search_space(path, SEARCH_SPACES)
