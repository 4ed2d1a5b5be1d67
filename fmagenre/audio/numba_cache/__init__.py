"""Where numba caches librosa's compiled kernels, and one process at a time writing it.

librosa's numba kernels (``cache=True``) are compiled, or loaded from numba's cache, when a
module of librosa is first imported (the vectorized kernels, whose signatures are given) or
when a function is first called (the others). Two ways this fails in production:

- a process that can write neither the default cache locations (``__pycache__`` in
  site-packages, then ``~/.cache``), as a YARN container user, gets ``RuntimeError: cannot
  cache function`` from every librosa call;
- processes that compile the same kernel at the same moment (the Spark Python workers of
  one machine, started together) write its index and data files without a common lock; a
  mismatched pair then crashes every process that loads it with SIGSEGV (numba issue 10128,
  librosa issue 1998).

:func:`configure`, run when :mod:`fmagenre` is imported, points ``NUMBA_CACHE_DIR`` at a
writable directory. :func:`warm_up` compiles or loads every kernel that the extractor uses
while it holds an exclusive lock on a file of that directory: the first process compiles and
writes the cache, the others wait and then load it, and a process that has warmed up never
compiles for the extractor again. ``python -m fmagenre.audio.numba_cache`` fills the cache ahead
of the first job.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import stat
import sys
import tempfile
import time

LOCK_NAME = "fmagenre-warm-up.lock"
#: Rates that take the extractor through each of its paths, with ``fma_compat`` both ways:
#: CQT on the signal resampled (8000), no spectral contrast at the true rate (under 12.8 kHz).
WARM_UP_RATES = (8000, 11025, 22050, 44100)

_warmed = False


def _writable(path: str) -> bool:
    """Whether ``path`` is, or can be made, a directory where this process creates files."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def _private_temp_dir() -> str:
    """``fmagenre-numba-UID`` in the temporary directory, if this user owns it, else a new one.

    Others can create names in a shared ``/tmp``; numba's cache is code, so this process uses
    only a directory it owns.
    """
    path = os.path.join(tempfile.gettempdir(), f"fmagenre-numba-{os.getuid()}")
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and _writable(path):
        return path
    return tempfile.mkdtemp(prefix="fmagenre-numba-")


def configure() -> str:
    """Point numba's cache at a writable directory, and return it.

    ``NUMBA_CACHE_DIR`` is kept when it is set and writable. Otherwise it is set to
    ``$XDG_CACHE_HOME/fmagenre/numba`` (``~/.cache/fmagenre/numba`` by default) when that is
    writable, else to ``fmagenre-numba-UID`` in the temporary directory. Cheap, and imports
    nothing: numba reads the variable when it is imported and before each compilation, and a
    kernel keeps the cache directory of the moment librosa defined it.

    Returns
    -------
    str
        The cache directory, created if it was missing.
    """
    path = os.environ.get("NUMBA_CACHE_DIR", "")
    if not (path and _writable(path)):
        cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        path = os.path.join(cache_home, "fmagenre", "numba")
        # A relative cache home (no HOME, no passwd entry) is no place to write to.
        if not (os.path.isabs(path) and _writable(path)):
            path = _private_temp_dir()
        os.environ["NUMBA_CACHE_DIR"] = path
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None:
        numba_config.reload_config()
    return path


def _kernel_files(cache_dir: str) -> dict[str, int]:
    """Modification time of every compiled kernel (``.nbc`` file) in the cache, by path."""
    found = {}
    for root, _, names in os.walk(cache_dir):
        for name in names:
            if name.endswith(".nbc"):
                path = os.path.join(root, name)
                found[path] = os.stat(path).st_mtime_ns
    return found


def warm_up() -> int:
    """Compile, or load from the cache, every numba kernel of the extractor; once a process.

    Runs :func:`fmagenre.audio.features.extract` on short synthetic signals at each of
    :data:`WARM_UP_RATES`, with ``fma_compat`` True and False, under an exclusive lock on
    :data:`LOCK_NAME` in the cache directory. :func:`fmagenre.audio.features.analyse` and
    :func:`fmagenre.audio.features.extract_file` call it; a process that forks analysing children
    should call it before forking, so that they start warm.

    Returns
    -------
    int
        Kernels that this call compiled and wrote to the cache: 0 when the cache was warm or
        this process had warmed up already.
    """
    global _warmed
    if _warmed:
        return 0
    # Imported here, not at the top: importing fmagenre (which runs configure) stays light.
    import numpy as np

    from fmagenre.audio import features

    cache_dir = configure()
    with open(os.path.join(cache_dir, LOCK_NAME), "a") as lock:  # closing it unlocks
        fcntl.flock(lock, fcntl.LOCK_EX)
        before = _kernel_files(cache_dir)
        for sr in WARM_UP_RATES:
            t = np.arange(sr // 2) / sr
            chirp = (0.5 * np.sin(2 * np.pi * (220 * t + 2000 * t**2))).astype(np.float32)
            for fma_compat in (True, False):
                features.extract(chirp, sr, fma_compat=fma_compat)
        compiled = len(_kernel_files(cache_dir).items() - before.items())
    _warmed = True
    return compiled


def main(argv: list[str] | None = None) -> int:
    """Warm the cache up in this process; print the cache directory and what was compiled."""
    parser = argparse.ArgumentParser(
        prog="python -m fmagenre.audio.numba_cache",
        description="Compile the numba kernels of the feature extractor into numba's cache"
        " (NUMBA_CACHE_DIR, else a writable default), one process at a time.",
    )
    parser.parse_args(argv)
    started = time.perf_counter()
    compiled = warm_up()
    print(f"numba cache: {configure()}")
    print(f"kernels compiled: {compiled} in {time.perf_counter() - started:.1f} s")
    return 0
