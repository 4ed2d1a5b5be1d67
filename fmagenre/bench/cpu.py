"""CPU drift: how far the 518 features of the same files move on a CPU without AVX-512.

``python -m fmagenre.bench cpu-drift`` writes generated MP3s and extracts their features in
two fresh processes on this machine: one native, one that emulates an AVX2 machine by
switching off the AVX-512 code paths of numpy (``NPY_DISABLE_CPU_FEATURES``), OpenBLAS
(``OPENBLAS_CORETYPE=Haswell``) and numba (``NUMBA_CPU_NAME=haswell``). It prints the
relative differences ``|a - b| / (|b| + 1e-3)``, the measure of the tests, and the features
that move most. On a machine without AVX-512 both runs are the same.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from fmagenre.audio.names import flat_names
from fmagenre.platform.threads import thread_env

#: (style, sample rate) of the generated files: the rates of the feature tests.
TRACKS = (
    ("Rock", 44100),
    ("Jazz", 48000),
    ("Experimental", 32000),
    ("Classical", 22050),
    ("Electronic", 11025),
    ("Folk", 8000),
)


def emulated_avx2_env() -> dict[str, str]:
    """Environment variables that keep numpy, OpenBLAS and numba off AVX-512 code."""
    found = np.show_config(mode="dicts")["SIMD Extensions"]["found"]
    avx512 = [t for t in found if t.startswith("AVX512") or t == "X86_V4"]
    return {
        "NPY_DISABLE_CPU_FEATURES": " ".join(avx512),
        "OPENBLAS_CORETYPE": "Haswell",
        "NUMBA_CPU_NAME": "haswell",
        # Empty: LLVM takes the named CPU's features instead of this machine's.
        "NUMBA_CPU_FEATURES": "",
    }


def _features(files: list[Path], extra_env: dict[str, str]) -> np.ndarray:
    """(files, 518) float64 features from ``python -m fmagenre.audio.features`` in a fresh
    process."""
    env = {**thread_env(1), **extra_env}
    out = subprocess.run(
        [sys.executable, "-m", "fmagenre.audio.features", "--format", "json", *map(str, files)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    return np.array([[row[name] for name in flat_names()] for row in rows], dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    """Print the drift of the features between native and emulated-AVX2 runs."""
    parser = argparse.ArgumentParser(
        prog="python -m fmagenre.bench cpu-drift",
        description="Relative differences of the features of the same files between this"
        " CPU and an emulated AVX2 one.",
    )
    parser.add_argument(
        "--duration", type=float, default=30.0, help="seconds per file (default %(default)s)"
    )
    parser.add_argument("--top", type=int, default=10, help="features listed (default 10)")
    args = parser.parse_args(argv)

    import soundfile as sf

    from fmagenre.synthetic.music import render

    emulated = emulated_avx2_env()
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for style, sr in TRACKS:
            files.append(Path(tmp) / f"{style}-{sr}.mp3")
            y = render(style, duration=args.duration, sr=sr, seed=sr)
            sf.write(files[-1], y, sr, format="MP3")
        native = _features(files, {})
        avx2 = _features(files, emulated)

    relative = np.abs(avx2 - native) / (np.abs(native) + 1e-3)
    # NaN in both runs (undefined statistics) is agreement; NaN in one only is not.
    relative[np.isnan(native) & np.isnan(avx2)] = 0.0
    relative = np.nan_to_num(relative, nan=np.inf)
    moved = relative[relative > 0]
    print(f"cpu drift: {len(files)} files of {args.duration:g} s, native vs emulated AVX2")
    for var, value in emulated.items():
        print(f"  {var}={value!r}")
    print(f"  values bitwise equal: {np.mean(relative == 0):.1%} of {relative.size}")
    print("  relative difference |a - b| / (|b| + 1e-3) over all values:")
    print(
        f"    median {np.median(relative):.1e}, 99th percentile"
        f" {np.percentile(relative, 99):.1e}, max {relative.max():.1e}"
    )
    if moved.size:
        print(f"    median of the values that moved: {np.median(moved):.1e}")
    worst = relative.max(axis=0)
    print("  features that move most (max over the files):")
    names = flat_names()
    for j in np.argsort(-worst)[: args.top]:
        if worst[j] > 0:
            track = TRACKS[int(np.argmax(relative[:, j]))]
            print(f"    {names[j]:28s} {worst[j]:.1e}  ({track[0]}, {track[1]} Hz)")
    return 0
