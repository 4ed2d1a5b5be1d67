"""Random-search candidates: hyper-parameters drawn from log-uniform ranges.

A log-uniform draw spends as many candidates on [0.001, 0.01] as on [0.1, 1], which suits
scale parameters (regularisation, learning rate, tree counts). Integer ranges are discrete
log-uniform: ``k`` has the probability of ``[k, k + 1)`` under the continuous law on
``[low, high + 1)``. Draws are deterministic for a seed. A TOML file can replace ranges
(:func:`read_search_space`). :func:`spark_reg_param` and :func:`sklearn_C` translate Spark's
``regParam`` to and from scikit-learn's ``C``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmagenre.errors import InputError


@dataclass(frozen=True)
class LogUniform:
    """A log-uniform range ``[low, high]``, of integers when ``integer``."""

    low: float
    high: float
    integer: bool = False

    def __post_init__(self):
        if not 0 < self.low <= self.high or not math.isfinite(self.high):
            raise ValueError(f"need 0 < low <= high < inf, got [{self.low}, {self.high}]")
        if self.integer and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError(f"integer ranges need integer bounds, got [{self.low}, {self.high}]")

    def draw(self, rng: np.random.Generator) -> float | int:
        """One value."""
        if self.integer:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
            return min(int(value), int(self.high))
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


def draw_candidates(
    space: Mapping[str, LogUniform], *, candidates: int, seed: int
) -> list[dict[str, float | int]]:
    """``candidates`` parameter sets drawn from ``space``, the same for the same seed.

    Parameters
    ----------
    space : mapping of str to LogUniform
        Parameter name to its range.
    candidates : int
        How many sets, at least 1.
    seed : int
        Seed of the generator.
    """
    if candidates < 1:
        raise ValueError(f"candidates must be at least 1, got {candidates}")
    if not space:
        raise ValueError("the search space is empty")
    rng = np.random.default_rng(seed)
    return [{name: scale.draw(rng) for name, scale in space.items()} for _ in range(candidates)]


def spark_reg_param(C: float, n: float) -> float:
    """Spark ML's ``regParam`` equivalent to scikit-learn's ``C`` on ``n`` training rows.

    Spark's ``LogisticRegression`` and ``LinearSVC`` minimise the mean loss plus
    ``regParam * (alpha * |w|_1 + (1 - alpha) / 2 * |w|^2)``; scikit-learn's
    ``LogisticRegression`` and ``LinearSVC`` minimise ``C`` times the summed loss plus
    ``l1_ratio * |w|_1 + (1 - l1_ratio) / 2 * |w|^2``. Dividing Spark's objective by
    ``regParam`` gives scikit-learn's with ``C = 1 / (regParam * n)`` and
    ``l1_ratio = alpha``. The intercept is not penalised, except by scikit-learn's
    ``LinearSVC`` (liblinear's penalty covers it as the weight of a constant feature).

    Parameters
    ----------
    C : float
        scikit-learn's inverse regularisation strength, positive.
    n : float
        Training rows, positive; with sample weights, their sum.

    Returns
    -------
    float
        ``1 / (C * n)``.
    """
    return 1.0 / _positive(C, "C") / _positive(n, "n")


def sklearn_C(reg_param: float, n: float) -> float:
    """scikit-learn's ``C`` equivalent to Spark ML's ``regParam`` on ``n`` training rows.

    The inverse of :func:`spark_reg_param`: ``1 / (regParam * n)``.
    """
    return 1.0 / _positive(reg_param, "reg_param") / _positive(n, "n")


def _positive(value: float, name: str) -> float:
    if not 0 < value < math.inf:
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return float(value)


class SearchSpaceError(InputError, ValueError):
    """A search-space file that does not fit the models' spaces."""


def read_search_space(
    path: str | Path,
    defaults: Mapping[str, Mapping[str, LogUniform]],
    *,
    read: Callable[[str], bytes] | None = None,
) -> dict[str, dict[str, LogUniform]]:
    """``defaults`` with the ranges of a TOML file replaced.

    The file has a table per model and a ``[low, high]`` pair or a single value (a fixed
    parameter) per parameter; integer parameters stay integer::

        [lr]
        maxIter = [10, 50]
        elasticNetParam = 0.5

    ``read(path)`` gives a file's bytes; None reads a local file. The jobs pass
    :func:`fmagenre.platform.hadoop.read_bytes` with their session, for any Hadoop path.

    Raises
    ------
    SearchSpaceError
        On an unreadable file, an unknown model or parameter, or an invalid range.
    """
    try:
        data = read(str(path)) if read else Path(path).read_bytes()
        document = tomllib.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise SearchSpaceError(f"{path}: cannot read the search space: {error}") from error
    spaces = {model: dict(space) for model, space in defaults.items()}
    for model, table in document.items():
        if model not in spaces or not isinstance(table, dict):
            raise SearchSpaceError(
                f"{path}: [{model}] is not a model table; models: {', '.join(spaces)}"
            )
        for param, value in table.items():
            if param not in spaces[model]:
                raise SearchSpaceError(
                    f"{path}: [{model}] has no parameter {param!r};"
                    f" parameters: {', '.join(spaces[model])}"
                )
            bounds = value if isinstance(value, list) else [value, value]
            try:
                low, high = (float(bound) for bound in bounds)
                spaces[model][param] = LogUniform(low, high, spaces[model][param].integer)
            except (TypeError, ValueError) as error:
                raise SearchSpaceError(
                    f"{path}: [{model}] {param} must be [low, high] or one value: {error}"
                ) from None
    return spaces
