"""Benchmarks: ``python -m fmagenre.bench COMMAND`` (see ``__main__``)."""

from __future__ import annotations

#: The accuracy benchmarks' search ranges: small, the generated corpus is easy.
SEARCH_SPACE = """\
[lr]
maxIter = [20, 60]
[svc]
maxIter = [5, 15]
[xgb]
n_estimators = [20, 60]
max_depth = [2, 4]
"""


def training_session(app: str, *, master: str, driver_memory: str, progress: bool = True):
    """The local SparkSession of the training benchmarks: no UI, 8 shuffle partitions,
    errors only in the log; ``progress=False`` hides the console progress bars."""
    from fmagenre.platform.session import build_session

    conf = {
        "spark.ui.enabled": "false",
        "spark.driver.memory": driver_memory,
        "spark.sql.shuffle.partitions": "8",
    }
    if not progress:
        conf["spark.ui.showConsoleProgress"] = "false"
    spark = build_session(app, master=master, conf=conf)
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def generated_corpus(directory, args, *, app: str):
    """The accuracy benchmarks' corpus and session: a sample of ``args.tracks_per_genre``
    generated tracks of each style (``args.min_duration`` to ``args.max_duration`` s, seeded
    by ``args.seed``) under ``directory``, announced on one line, and a session on
    ``args.master``."""
    import time
    from pathlib import Path

    from fmagenre.platform.session import build_session
    from fmagenre.synthetic.sample import generate_sample

    started = time.perf_counter()
    sample = generate_sample(
        Path(directory),
        tracks_per_genre=args.tracks_per_genre,
        min_duration=args.min_duration,
        max_duration=args.max_duration,
        seed=args.seed,
    )
    print(
        f"\naccuracy: {len(sample.tracks)} generated tracks of {args.min_duration:g}-"
        f"{args.max_duration:g} s (+{len(sample.bad_files)} bad files) in"
        f" {time.perf_counter() - started:.0f} s; {args.master}",
        flush=True,
    )
    spark = build_session(
        app,
        master=args.master,
        conf={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "8"},
    )
    spark.sparkContext.setLogLevel("ERROR")
    return sample, spark


def add_corpus_arguments(parser) -> None:
    """The accuracy benchmarks' options: the corpus of :func:`generated_corpus`, the search,
    the master and the seed."""
    parser.add_argument("--tracks-per-genre", type=int, default=40, help="accuracy corpus (40)")
    parser.add_argument("--min-duration", type=float, default=10.0)
    parser.add_argument("--max-duration", type=float, default=20.0)
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--candidates", type=int, default=3, help="(accuracy) search (3)")
    parser.add_argument("--master", default="local[2]", help="(accuracy) Spark master")
    parser.add_argument("--seed", type=int, default=0)


def chosen_parts(parser, text: str, parts) -> list[str]:
    """The parts named in ``text`` (comma-separated); an unknown one is the parser's error."""
    chosen = [p.strip() for p in text.split(",") if p.strip()]
    unknown = sorted(set(chosen) - set(parts))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(parts)}")
    return chosen
