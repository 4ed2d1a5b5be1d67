"""Small synthetic inputs of the analysis-job tests, written as plain Parquet folders."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from fmagenre.synthetic.analysis_tables import synthetic_rows

ROOT = Path(__file__).resolve().parent.parent


def load_job(name: str):
    """``jobs/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"{name}_job", ROOT / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_tables(
    directory: Path,
    *,
    rows: int,
    genres: tuple[str, ...],
    signal: dict[str, float],
    test_fraction: float = 0.25,
    seed: int = 0,
) -> tuple[str, str]:
    """A feature table (``ok`` rows) and a label table (track_id, genre_top, split) of
    ``rows`` synthetic tracks; returns their paths."""
    table = synthetic_rows(
        np.arange(1, rows + 1),
        genres=genres,
        signal=signal,
        test_fraction=test_fraction,
        seed=seed,
    )
    features, labels = directory / "features", directory / "labels"
    features.mkdir(parents=True)
    labels.mkdir(parents=True)
    feature_rows = table.drop(columns=["genre_top", "split"])
    feature_rows.insert(1, "status", "ok")
    feature_rows.insert(2, "error_reason", pd.Series([None] * rows, dtype=object))
    feature_rows.to_parquet(features / "part-00000.parquet", index=False)
    table[["track_id", "genre_top", "split"]].to_parquet(labels / "part-00000.parquet", index=False)
    return str(features), str(labels)
