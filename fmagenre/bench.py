"""Benchmarks: ``python -m fmagenre.bench extract|spark|analysis|train|cpu-drift``.

Figures are printed, never asserted: machines are shared and noisy, so every ratio is
measured side by side in one run (alternating the implementations) and medians are reported.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def _single_threaded_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({var: "1" for var in THREAD_VARS})
    return env


def _write_track(path: Path, *, duration: float, sr: int) -> None:
    import numpy as np
    import soundfile as sf

    from fmagenre.synth import render

    y = render("Rock", duration=duration, sr=sr, seed=7)
    sf.write(path, np.stack([y, np.roll(y, 441) * 0.8], axis=1), sr, format="MP3")


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent.
_PEAK_RSS_CODE = """
import sys
import fmagenre.features, fmagenre.reference
{call}
print([line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1])
"""


def _peak_rss_mib(call: str, path: Path) -> float:
    """Peak resident memory of a fresh process that runs ``call`` on ``sys.argv[1]``."""
    code = _PEAK_RSS_CODE.format(call=call)
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        env=_single_threaded_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def bench_extract(args: argparse.Namespace) -> None:
    import numpy as np
    from threadpoolctl import threadpool_limits

    from fmagenre.features import extract_file
    from fmagenre.reference import reference_extract_file

    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        track = Path(tmp) / "track.mp3"
        print(f"writing a {args.duration:.0f} s {args.sr} Hz stereo MP3 ...", flush=True)
        _write_track(track, duration=args.duration, sr=args.sr)
        fast_s, plain_s = [], []
        extract_file(track)  # compile numba kernels and warm caches for both
        for i in range(args.repeat):
            start = time.perf_counter()
            fast = extract_file(track)
            fast_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            plain = reference_extract_file(str(track))
            plain_s.append(time.perf_counter() - start)
            print(f"  run {i + 1}: fmagenre {fast_s[-1]:.2f} s, plain {plain_s[-1]:.2f} s")
        rel = np.abs(fast.to_numpy() - plain.to_numpy()) / (np.abs(plain.to_numpy()) + 1e-3)
        fast_med, plain_med = statistics.median(fast_s), statistics.median(plain_s)
        print(
            f"\nextract: {args.duration:.0f} s track, {args.sr} Hz, single-threaded, decode incl."
        )
        print(f"  {'':10s} {'s/track':>8s} {'tracks/s':>9s} {'x real time':>12s}")
        for name, sec in (("fmagenre", fast_med), ("plain", plain_med)):
            print(f"  {name:10s} {sec:8.2f} {1 / sec:9.3f} {args.duration / sec:12.1f}")
        print(
            f"  speed-up (plain / fmagenre, medians of {args.repeat}): {plain_med / fast_med:.2f}x"
        )
        print(f"  max relative difference to plain: {np.nanmax(rel):.2e} (limit 1e-4)")

        if args.memory_duration > 0:
            long_track = Path(tmp) / "long.mp3"
            print(f"\nwriting a {args.memory_duration:.0f} s track for memory ...", flush=True)
            _write_track(long_track, duration=args.memory_duration, sr=args.sr)
            base = _peak_rss_mib("", long_track)
            ours = _peak_rss_mib("fmagenre.features.extract_file(sys.argv[1])", long_track)
            plain_rss = _peak_rss_mib(
                "fmagenre.reference.reference_extract_file(sys.argv[1])", long_track
            )
            print(f"peak RSS, one extraction of {args.memory_duration:.0f} s at {args.sr} Hz:")
            print(f"  fmagenre {ours:7.0f} MiB   plain {plain_rss:7.0f} MiB")
            print(f"  (a process that only imports the libraries: {base:.0f} MiB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmagenre.bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    extract = sub.add_parser(
        "extract", help="fmagenre.features vs the plain librosa recipe: speed, memory, accuracy"
    )
    extract.add_argument("--duration", type=float, default=240.0, help="track seconds")
    extract.add_argument("--sr", type=int, default=44100, help="sample rate")
    extract.add_argument("--repeat", type=int, default=3, help="alternating runs of each")
    extract.add_argument(
        "--memory-duration",
        type=float,
        default=600.0,
        help="seconds of the track whose peak memory is measured (0 skips)",
    )
    delegated = {
        "spark": ("fmagenre.bench_spark", "the Spark extraction job: scaling and overhead"),
        "analysis": ("fmagenre.bench_analysis", "the algorithm x feature-set grid of the thesis"),
        "train": (
            "fmagenre.bench_train",
            "search, ensemble and evaluation on a thesis-sized table",
        ),
        "cpu-drift": ("fmagenre.bench_cpu", "feature drift between this CPU and emulated AVX2"),
    }
    for name, (_, text) in delegated.items():
        sub.add_parser(name, help=text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command in delegated:
        module = importlib.import_module(delegated[args.command][0])
        return module.main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    bench_extract(args)
    return 0


if __name__ == "__main__":
    for _var in THREAD_VARS:
        os.environ.setdefault(_var, "1")
    sys.exit(main())
