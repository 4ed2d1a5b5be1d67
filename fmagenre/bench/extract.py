"""Benchmark of the extractor: ``python -m fmagenre.bench extract``.

:mod:`fmagenre.audio.features` against the plain librosa recipe (:mod:`fmagenre.audio.reference`)
on one generated track: speed (alternating runs, medians), peak memory, agreement.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fmagenre.platform.threads import thread_env


def _write_track(path: Path, *, duration: float, sr: int) -> None:
    import numpy as np
    import soundfile as sf

    from fmagenre.synthetic.music import render

    y = render("Rock", duration=duration, sr=sr, seed=7)
    sf.write(path, np.stack([y, np.roll(y, 441) * 0.8], axis=1), sr, format="MP3")


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent.
_PEAK_RSS_CODE = """
import sys
import fmagenre.audio.features, fmagenre.audio.reference
{call}
print([line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1])
"""


def _peak_rss_mib(call: str, path: Path) -> float:
    """Peak resident memory of a fresh process that runs ``call`` on ``sys.argv[1]``."""
    code = _PEAK_RSS_CODE.format(call=call)
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        env=thread_env(1),
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def bench_extract(args: argparse.Namespace) -> None:
    import numpy as np
    from threadpoolctl import threadpool_limits

    from fmagenre.audio.features import extract_file
    from fmagenre.audio.reference import reference_extract_file

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
            ours = _peak_rss_mib("fmagenre.audio.features.extract_file(sys.argv[1])", long_track)
            plain_rss = _peak_rss_mib(
                "fmagenre.audio.reference.reference_extract_file(sys.argv[1])", long_track
            )
            print(f"peak RSS, one extraction of {args.memory_duration:.0f} s at {args.sr} Hz:")
            print(f"  fmagenre {ours:7.0f} MiB   plain {plain_rss:7.0f} MiB")
            print(f"  (a process that only imports the libraries: {base:.0f} MiB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmagenre.bench extract", description=__doc__)
    parser.add_argument("--duration", type=float, default=240.0, help="track seconds")
    parser.add_argument("--sr", type=int, default=44100, help="sample rate")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs of each")
    parser.add_argument(
        "--memory-duration",
        type=float,
        default=600.0,
        help="seconds of the track whose peak memory is measured (0 skips)",
    )
    bench_extract(parser.parse_args(argv))
    return 0
