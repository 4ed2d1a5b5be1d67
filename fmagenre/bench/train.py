"""Training benchmark: the whole search and ensemble on a thesis-sized synthetic table.

``python -m fmagenre.bench train`` writes a 104,343 x 518 feature table with the thesis' 16
genres and their imbalance (:mod:`fmagenre.synthetic.feature_tables`; genre means apart enough to
be learnable, not separable) and its labels (93,222 train, 11,121 test), then times
:func:`fmagenre.ml.training.run` on it in Spark local mode: each model's random search, each
final fit, saving, evaluation. ``--rows`` and ``--candidates`` scale it down for a quick run.
It prints the seconds of each stage, of each model's candidates and of their fold fits, and
the peak memory (VmHWM) of the driver's JVM, the Python driver and the Python workers (the
JVM's descendants, sampled every second). ``--svc spark --search-parallelism 1`` runs the
former path (Spark's one-vs-rest ``LinearSVC``, one search fit at a time), to compare in
one session. Figures are printed, never asserted: shared machines are noisy, so the load
average is printed with them.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

from fmagenre.bench import training_session
from fmagenre.synthetic.feature_tables import (
    THESIS_GENRE_SHARES,
    THESIS_ROWS,
    write_synthetic_tables,
)

#: The goal: search and ensemble of the full table in 16 minutes on 2 cores (issue 15).
GOAL_S = 960


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fmagenre.bench train",
        description="Time the training job (search of the 3 models, final fits, ensemble,"
        " evaluation) on a synthetic thesis-shaped table in Spark local mode.",
    )
    parser.add_argument(
        "--rows", type=int, default=THESIS_ROWS, help="tracks (default %(default)s)"
    )
    parser.add_argument("--candidates", type=int, default=10, help="default %(default)s")
    parser.add_argument("--folds", type=int, default=3, help="default %(default)s")
    parser.add_argument(
        "--search-rows",
        type=int,
        default=10_000,
        help="search sample, 0 for all (default %(default)s)",
    )
    parser.add_argument(
        "--separation",
        type=float,
        default=0.05,
        help="spread of the genre means in noise units (default %(default)s)",
    )
    parser.add_argument(
        "--svc", choices=("lockstep", "spark"), default="lockstep", help="default %(default)s"
    )
    parser.add_argument(
        "--search-parallelism",
        type=int,
        default=0,
        help="search fits at once, 0 for the default parallelism (default %(default)s)",
    )
    parser.add_argument("--master", default="local[2]", help="default %(default)s")
    parser.add_argument("--driver-memory", default="6g", help="default %(default)s")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def _status_kib(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` field in KiB (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _descendants(root: int) -> list[int]:
    """The processes below ``root``, from ``/proc/*/stat``."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


class _MemorySampler(threading.Thread):
    """Peak VmHWM of the JVM's descendant processes (Python workers and their daemon), and
    the peak of their summed VmRSS, sampled every ``period`` seconds."""

    def __init__(self, jvm_pid: int, period: float = 1.0):
        super().__init__(daemon=True)
        self.jvm_pid, self.period = jvm_pid, period
        self.peak_kib: dict[int, int] = {}
        self.peak_sum_kib = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.period):
            total = 0
            for pid in _descendants(self.jvm_pid):
                self.peak_kib[pid] = max(self.peak_kib.get(pid, 0), _status_kib(pid, "VmHWM"))
                total += _status_kib(pid, "VmRSS")
            self.peak_sum_kib = max(self.peak_sum_kib, total)


def _jvm_pid(spark) -> int | None:
    try:
        return int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
    except Exception:  # not a local JVM (Spark Connect)
        return None


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    from fmagenre.ml.report import VOTE_HEADER, console_summary, vote_table, zero_recall
    from fmagenre.ml.training import TrainOptions, run

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        started = time.perf_counter()
        features, labels = write_synthetic_tables(
            tmp,
            rows=args.rows,
            genre_shares=THESIS_GENRE_SHARES,
            separation=args.separation,
            seed=args.seed,
        )
        generated = time.perf_counter() - started
        spark = training_session(
            "fmagenre-bench-train", master=args.master, driver_memory=args.driver_memory
        )
        load_before = _load()
        jvm_pid = _jvm_pid(spark)
        sampler = _MemorySampler(jvm_pid) if jvm_pid else None
        if sampler:
            sampler.start()
        options = TrainOptions(
            candidates=args.candidates,
            folds=args.folds,
            search_rows=args.search_rows,
            seed=args.seed,
            svc=args.svc,
            search_parallelism=args.search_parallelism or None,
        )
        metrics = run(
            spark, features=features, labels=labels, output=f"{tmp}/model", options=options
        )
        jvm_peak = _status_kib(jvm_pid, "VmHWM") if jvm_pid else 0
        if sampler:
            sampler.stopped.set()
            sampler.join()
        spark.stop()
    timings = metrics["timings"]
    rows = metrics["rows"]
    print(
        f"bench train: {args.rows} rows x {metrics['features']['count']} features,"
        f" {len(metrics['labels'])} genres ({rows['train_total']} train, {rows['test_total']}"
        f" test, {rows['search']} in the search sample), {args.candidates} candidates x"
        f" {args.folds} folds, {args.master}, {os.cpu_count()} CPUs; svc {args.svc}, search"
        f" parallelism {args.search_parallelism or 'default'}"
    )
    print(f"  table generated in {generated:.1f} s; load average {load_before} -> {_load()}")
    print("  stage                      wall s")
    for stage, seconds in timings.items():
        print(f"  {stage:<26} {seconds:8.1f}")
    for name, search in metrics["search"].items():
        fits = len(search["candidates"]) * args.folds
        work = sum(sum(c["fold_seconds"]) for c in search["candidates"])
        print(
            f"  search {name}: {fits} fits, {search['seconds'] / fits:.1f} s of wall time per"
            f" fit and fold evaluation ({work / fits:.1f} s each, overlapping)"
        )
        for number, candidate in enumerate(search["candidates"], start=1):
            folds = " ".join(f"{seconds:6.1f}" for seconds in candidate["fold_seconds"])
            params = ", ".join(
                f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
                for key, value in candidate["params"].items()
            )
            print(
                f"    {number:2d} {candidate['seconds']:7.1f} s  folds {folds}  kappa"
                f" {candidate['score']:.4f}  {params}"
            )
    print(
        f"  total {timings['total'] / 60:.1f} min (goal for the full table, 10 candidates:"
        f" under {GOAL_S // 60} min)"
    )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"  peak memory: Python driver {_mib(own)}", end="")
    if jvm_pid:
        workers = sampler.peak_kib
        print(
            f", driver JVM {_mib(jvm_peak)}, Python workers {len(workers)} processes, largest"
            f" {_mib(max(workers.values(), default=0))}, together at most"
            f" {_mib(sampler.peak_sum_kib)} (sampled every second)"
        )
    else:
        print()
    print(console_summary(metrics))
    print("  every vote scheme, from the same fitted models (test split):")
    widths = [28, 10, 10, 8, 10, 20]
    for row in [VOTE_HEADER, *vote_table(metrics)]:
        print("  " + "".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    for name, test in metrics["test"].items():
        print(f"  {name}: {len(zero_recall(test))} genre(s) at 0% recall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
