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
