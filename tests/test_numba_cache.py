"""numba's cache in fresh processes: started together on an empty cache, and as a user who
can write neither HOME nor site-packages."""

import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from fmagenre.audio import features
from fmagenre.synthetic.music import render

pytestmark = pytest.mark.slow

NOBODY = 65534
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}

# Waits for a line on stdin, so that every process starts analysing at the same moment.
_ANALYSE_TOGETHER = """
import json, os, sys
from pathlib import Path
from fmagenre.audio import features
from fmagenre.audio import numba_cache

def kernels():
    cache = Path(os.environ["NUMBA_CACHE_DIR"])
    return {str(p): p.stat().st_mtime_ns for p in cache.rglob("*.nbc")}

print("ready", flush=True)
sys.stdin.readline()
compiled = numba_cache.warm_up()
warm = kernels()
results = [features.analyse(p, fma_compat=c) for p in sys.argv[1:] for c in (True, False)]
print(json.dumps({
    "compiled": compiled,
    "compiled_after_warm_up": kernels() != warm,
    "status": [r.status for r in results],
    "values": [r.features.tobytes().hex() for r in results],
}))
"""

# Analyses the MP3 bytes read from stdin.
_ANALYSE_STDIN = """
import json, os, sys
import librosa
from fmagenre.audio import features

result = features.analyse(sys.stdin.buffer.read())
print(json.dumps({
    "status": result.status,
    "error": result.error,
    "values": result.features.tobytes().hex(),
    "cache": os.environ["NUMBA_CACHE_DIR"],
    "site_packages_writable": os.access(os.path.dirname(librosa.__file__), os.W_OK),
}))
"""


def _start_together(code: str, args: list[str], env: dict[str, str], n: int) -> list[dict]:
    """Run ``code`` in ``n`` fresh interpreters, released at once when all have imported."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(n)
    ]
    for proc in procs:
        assert proc.stdout.readline() == "ready\n", proc.communicate()[1]
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out))
    return results


def _cache_files(cache: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}


def test_processes_started_together_on_an_empty_cache_compile_once_and_agree(tmp_path):
    files = []
    for sr in (8000, 11025, 44100):  # the extractor's paths: CQT resampled, no contrast, plain
        files.append(str(tmp_path / f"{sr}.mp3"))
        sf.write(files[-1], render("Electronic", duration=2.0, sr=sr, seed=sr), sr, format="MP3")
    cache = tmp_path / "numba"
    env = {**os.environ, **THREADS, "NUMBA_CACHE_DIR": str(cache)}

    cold = _start_together(_ANALYSE_TOGETHER, files, env, n=4)
    # The lock: one process compiles everything, the others wait and load.
    assert sorted(r["compiled"] > 0 for r in cold) == [False, False, False, True]
    assert not any(r["compiled_after_warm_up"] for r in cold)
    written = _cache_files(cache)

    warm = _start_together(_ANALYSE_TOGETHER, files, env, n=4)
    assert [r["compiled"] for r in warm] == [0, 0, 0, 0]
    assert _cache_files(cache) == written
    for result in cold + warm:
        assert result["status"] == ["ok"] * 6
        assert result["values"] == cold[0]["values"]


def _runs_as_nobody(python: str, env: dict[str, str]) -> bool:
    probe = [python, "-c", "import fmagenre.audio.features"]
    try:
        done = subprocess.run(probe, env=env, user=NOBODY, group=NOBODY, extra_groups=[])
    except PermissionError:
        return False
    return done.returncode == 0


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _python_for_nobody(where: Path, env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """An interpreter with this venv's packages that nobody can run, and its environment.

    This one when nobody can run it. Otherwise (a base interpreter under root's 0700 home)
    ``where`` gets a hard-linked (else copied) base prefix, and the venv's site-packages and
    the project go on PYTHONPATH: the same code, reachable by nobody, still read-only to it.
    """
    if _runs_as_nobody(sys.executable, env):
        return sys.executable, env
    base, version = (
        Path(sys.base_prefix),
        f"python{sys.version_info.major}.{sys.version_info.minor}",
    )
    for name in ("bin", "lib"):
        (where / name).mkdir(parents=True)
    _link_or_copy(str(base / "bin" / version), str(where / "bin" / version))
    for lib in (base / "lib").glob(f"lib{version}.so*"):
        _link_or_copy(str(lib), str(where / "lib" / lib.name))
    shutil.copytree(
        base / "lib" / version,
        where / "lib" / version,
        ignore=shutil.ignore_patterns("site-packages", "test", "idlelib", "tkinter", "turtledemo"),
        copy_function=_link_or_copy,
    )
    project = Path(features.__file__).parents[2]
    env = {
        **env,
        "PYTHONPATH": os.pathsep.join([sysconfig.get_path("purelib"), str(project)]),
        "LD_LIBRARY_PATH": str(where / "lib"),
    }
    python = str(where / "bin" / version)
    assert _runs_as_nobody(python, env)
    return python, env


@pytest.fixture
def world_readable_dir():
    path = Path(tempfile.mkdtemp(prefix="fmagenre-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to the nobody user needs root")
def test_a_user_who_can_write_neither_home_nor_site_packages_gets_features(world_readable_dir):
    temp = world_readable_dir / "tmp"
    temp.mkdir()
    os.chown(temp, NOBODY, NOBODY)
    # No NUMBA_CACHE_DIR, no XDG_CACHE_HOME: configure() must find a place by itself.
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "TMPDIR": str(temp), **THREADS}
    python, env = _python_for_nobody(world_readable_dir / "python", env)
    mp3 = io.BytesIO()
    sf.write(mp3, render("Jazz", duration=3.0, sr=22050, seed=5), 22050, format="MP3")

    done = subprocess.run(
        [python, "-c", _ANALYSE_STDIN],
        input=mp3.getvalue(),
        capture_output=True,
        env=env,
        cwd="/",
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    result = json.loads(done.stdout)
    assert not result["site_packages_writable"]
    assert result["status"] == "ok", result["error"]
    assert result["cache"] == str(temp / f"fmagenre-numba-{NOBODY}")
    assert list(Path(result["cache"]).rglob("*.nbi"))
    expected = features.analyse(mp3.getvalue()).features
    np.testing.assert_array_equal(
        np.frombuffer(bytes.fromhex(result["values"]), np.float32), expected
    )
