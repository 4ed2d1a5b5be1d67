"""Benchmarks: ``python -m fmagenre.bench COMMAND`` (see ``__main__``)."""

from __future__ import annotations


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
