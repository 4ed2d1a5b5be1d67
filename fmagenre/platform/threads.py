"""The thread pools of native libraries (BLAS, OpenMP, numba), sized by environment variables.

Each library reads its variable once, when it loads: set them before numpy is imported. This
module imports nothing that starts a pool.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: Environment variables that size the thread pools of BLAS, OpenMP and numba.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def thread_env(threads: int = 1, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process' environment) with every pool sized to ``threads``."""
    return {**(os.environ if base is None else base), **dict.fromkeys(THREAD_VARS, str(threads))}
