"""jobs/explore.py on FMA-format metadata, the real label table and synthetic features."""

from __future__ import annotations

import base64
import html
import re

import numpy as np
import pandas as pd
import pytest
from job_loader import load_job

from fmagenre.analysis.explore import REPORT_FILE, SECTIONS
from fmagenre.labels.imputation import build_label_table
from fmagenre.labels.metadata import load_metadata
from fmagenre.platform.figures import IMAGE_PREFIX, PNG_SIGNATURE
from fmagenre.synthetic.feature_tables import synthetic_rows
from fmagenre.synthetic.metadata_writer import write_fma_metadata
from fmagenre.tables.label_table import write_label_table

pytestmark = pytest.mark.slow

TOPS = {"Rock": 12, "Electronic": 15, "Hip-Hop": 21, "Folk": 17, "Pop": 10}
SUBS = [(25, 12, "Punk"), (181, 15, "Techno"), (539, 21, "Rap"), (49, 17, "Singer-Songwriter")]
ERRORS = ("truncated", "truncated", "silent")


def _tracks(count: int) -> list[dict]:
    rng = np.random.default_rng(5)
    titles = list(TOPS)
    tracks = []
    for i in range(count):
        genre = titles[min(int(rng.exponential(1.5)), len(titles) - 1)]
        sub = [g for g, parent, _ in SUBS if parent == TOPS[genre]]
        genres = [sub[0]] if sub and i % 3 == 0 else [TOPS[genre]]
        if i % 5 == 0:
            genres.append(TOPS[titles[(titles.index(genre) + 1) % len(titles)]])
        tracks.append(
            {
                "track_id": 2 + 3 * i,
                "title": f"track {i}",
                "artist": f"{genre} artist {i % 7}",
                "album": f"album {i % 11}",
                "genres": genres,
                "genre_top": None if i % 4 == 0 else genre,
                "duration": int(rng.integers(20, 600)),
                "bit_rate": int(rng.choice([320_000, 256_000, 128_000])),
                "split": "test" if i % 6 == 0 else "training",
                "subset": "large",
            }
        )
    return tracks


@pytest.fixture(scope="module")
def corpus(spark, tmp_path_factory):
    """FMA metadata of 160 tracks, its label table, and a feature table with error rows."""
    root = tmp_path_factory.mktemp("explore")
    metadata = root / "fma_metadata"
    genre_rows = [(gid, 0, title) for title, gid in TOPS.items()] + SUBS
    write_fma_metadata(metadata, _tracks(160), genre_rows)
    labelled = build_label_table(*load_metadata(metadata), seed=0)
    labels = str(root / "labels")
    write_label_table(spark, labelled.table, labelled.summary, labels)
    ids = labelled.table["track_id"].to_numpy()
    rows = synthetic_rows(
        ids,
        genre_shares=dict.fromkeys(TOPS, 1.0),
        separation={"mfcc": 1.0, "tonnetz": 0.5},
        assigned=labelled.table["genre_top"].tolist(),
    )
    rows = rows.drop(columns=["genre_top", "split"]).assign(status="ok", error_reason=None)
    bad = pd.DataFrame(
        {"track_id": ids[: len(ERRORS)], "status": "error", "error_reason": list(ERRORS)}
    )
    features = root / "features"
    features.mkdir()
    pd.concat([rows, bad]).to_parquet(features / "part-00000.parquet", index=False)
    return root, str(features), labels, str(metadata)


@pytest.fixture(scope="module")
def job():
    return load_job("explore")


@pytest.fixture(scope="module")
def report(spark, job, corpus):
    root, features, labels, metadata = corpus
    argv = ["--features", features, "--labels", labels, "--output", str(root / "out")]
    argv += ["--metadata", metadata, "--sample-rows", "300"]
    assert job.main(argv, spark=spark) == 0
    return (root / "out" / REPORT_FILE).read_text()


def _section(page: str, heading: str) -> str:
    """The HTML between ``heading``'s <h2> and the next one."""
    start = page.index(f">{html.escape(heading)}</h2>")
    end = page.find("<h2", start)
    return page[start : end if end >= 0 else len(page)]


def test_report_has_every_section_in_order(report):
    headings = re.findall(r'<h2 id="s\d+">(.*?)</h2>', report)
    assert headings == [html.escape(heading) for heading in SECTIONS]


def test_report_images_are_embedded_pngs(report):
    images = re.findall(r'<img src="([^"]+)"', report)
    assert all(src.startswith(IMAGE_PREFIX) for src in images)
    for src in images:
        assert base64.b64decode(src[len(IMAGE_PREFIX) :]).startswith(PNG_SIGNATURE)
    # With metadata and error rows, every section but the overview has a plot.
    for heading in SECTIONS[1:]:
        assert "<img " in _section(report, heading), heading


def test_report_contents(report):
    assert "Punk" in _section(report, "Tracks per genre")
    assert "Rock artist" not in report  # artists are counted, not listed
    errors = _section(report, "Extraction errors")
    assert "truncated" in errors and "silent" in errors
    assert "track.genre_top" in _section(report, "Missing values")
    pca = _section(report, "PCA per MIR family")
    assert "Rock" in pca and "<table" in pca
    # The per-family table is sorted by separation: MFCC carries the most signal.
    families = re.findall(r"<th>([a-z_]+)</th>\s*<td>", pca)
    assert families[0] == "mfcc"


def test_unknown_pca_genre_exits_2(spark, job, corpus, capsys):
    root, features, labels, _ = corpus
    argv = ["--features", features, "--labels", labels, "--output", str(root / "bad")]
    assert job.main([*argv, "--pca-genres", "Rock,Jazz"], spark=spark) == 2
    error = capsys.readouterr().err
    assert error.startswith("explore: --pca-genres: no labelled track") and "'Jazz'" in error
    assert error.count("\n") == 1
    assert not (root / "bad").exists()


@pytest.mark.parametrize("option", ["--features", "--labels", "--metadata"])
def test_missing_path_exits_2(spark, job, corpus, tmp_path, capsys, option):
    _, features, labels, metadata = corpus
    paths = {"--features": features, "--labels": labels, "--metadata": metadata}
    paths[option] = str(tmp_path / "missing")
    argv = [arg for pair in paths.items() for arg in pair] + ["--output", str(tmp_path)]
    assert job.main(argv, spark=spark) == 2
    error = capsys.readouterr().err
    assert error.startswith("explore: ") and "missing" in error and error.count("\n") == 1


def test_report_without_metadata_takes_missing_values_from_the_label_summary(spark, job, corpus):
    root, features, labels, _ = corpus
    out = root / "no_metadata"
    argv = ["--features", features, "--labels", labels, "--output", str(out)]
    assert job.main([*argv, "--sample-rows", "300"], spark=spark) == 0
    missing = _section((out / REPORT_FILE).read_text(), "Missing values")
    assert "from the label table&#x27;s summary" in missing
    assert "track.genre_top" in missing
