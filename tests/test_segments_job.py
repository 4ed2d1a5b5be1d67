"""jobs/segments.py end to end on generated MP3s: windows, tracks, pages, error rows, reports."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout

import pyarrow.parquet as pq
import pytest
from job_loader import load_job

from fmagenre.audio.windows import window_count
from fmagenre.ml.classifiers import MODEL_NAMES
from fmagenre.timeline.pages import page_name

BAD = ("empty", "truncated", "not_audio", "silent")  # the sample's files that fail
WINDOW, HOP = 2.0, 1.0


@pytest.fixture(scope="module")
def job():
    return load_job("segments")


def _run(job, spark, *argv: str) -> str:
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert job.main(list(argv), spark=spark) == 0
    return printed.getvalue()


@pytest.fixture(scope="module")
def labels(spark, sample_corpus, tmp_path_factory):
    from fmagenre.labels.imputation import build_label_table
    from fmagenre.tables.label_table import read_metadata, write_label_table

    result = build_label_table(*read_metadata(spark, str(sample_corpus.metadata_dir)))
    path = tmp_path_factory.mktemp("labels") / "labels"
    write_label_table(spark, result.table, result.summary, str(path))
    return path, result.table.set_index("track_id")["genre_top"]


@pytest.fixture(scope="module")
def timeline(job, spark, sample_corpus, trained_model, labels, tmp_path_factory):
    output = tmp_path_factory.mktemp("timeline") / "out"
    argv = ["--model", str(trained_model.output), "--input", str(sample_corpus.audio_dir)]
    argv += ["--output", str(output), "--window", str(WINDOW), "--hop", str(HOP)]
    printed = _run(job, spark, *argv, "--labels", str(labels[0]))
    windows = pq.read_table(output / "windows").to_pandas()
    tracks = pq.read_table(output / "tracks").to_pandas()
    return output, printed, windows, tracks


def test_every_file_has_one_track_row_and_windows_by_the_rule(timeline, sample_corpus):
    _, _, windows, tracks = timeline
    files = len(sample_corpus.tracks) + len(sample_corpus.bad_files)
    assert len(tracks) == tracks["path"].nunique() == files
    ok = tracks[tracks["status"] == "ok"]
    assert len(ok) == files - len(BAD)
    for track in ok.itertuples():
        mine = windows[windows["path"] == track.path].sort_values("window")
        expected = window_count(track.analysed_s, window=WINDOW, hop=HOP)
        assert track.n_windows == len(mine) == expected
        assert mine["window"].tolist() == list(range(expected))
        assert mine["start_s"].iloc[0] == 0.0
        assert mine["end_s"].iloc[-1] == pytest.approx(track.analysed_s)
        assert (mine["end_s"] - mine["start_s"] <= WINDOW + 1e-6).all()


def test_a_short_file_is_one_window_and_bad_files_one_error_row(timeline, sample_corpus):
    _, _, windows, tracks = timeline
    short = windows[windows["path"].str.endswith(sample_corpus.bad_files["short"].name)]
    assert len(short) == 1 and short["status"].iloc[0] == "ok"
    for reason in BAD:
        name = sample_corpus.bad_files[reason].name
        rows = windows[windows["path"].str.endswith(name)]
        assert len(rows) == 1, reason
        row = rows.iloc[0]
        assert row["status"] == "error" and row["error"].startswith(reason)
        assert row["window"] is None or row["window"] != row["window"]  # null
        assert row["genre"] is None
        track = tracks[tracks["path"].str.endswith(name)].iloc[0]
        assert (track["status"], track["n_windows"], track["genre"]) == ("error", 0, None)


def test_majority_shares_and_scores(timeline):
    _, _, windows, tracks = timeline
    ok = windows[windows["status"] == "ok"]
    assert ok["genre"].notna().all()
    for name in MODEL_NAMES:
        assert ok[f"vote_{name}"].notna().all()
    # Logistic regression and XGBoost give probabilities, the SVC none.
    for name in ("lr", "xgb"):
        for scores in ok[f"scores_{name}"]:
            assert sum(p for _, p in scores) == pytest.approx(1.0, abs=1e-6)
    assert ok["scores_svc"].isna().all()
    for track in tracks[tracks["status"] == "ok"].itertuples():
        mine = ok[ok["path"] == track.path]["genre"].value_counts()
        shares = dict(track.shares)
        assert sum(shares.values()) == pytest.approx(1.0)
        assert shares == pytest.approx((mine / mine.sum()).to_dict())
        assert mine[track.genre] == mine.max()
        assert track.share == pytest.approx(mine.max() / mine.sum())
        assert track.agree == (track.genre == track.track_genre)


def test_pages_and_index_are_written_and_printed(timeline):
    output, printed, _, tracks = timeline
    assert printed.strip().splitlines()[-1] == f"timeline: {output}/pages/index.html"
    index = (output / "pages" / "index.html").read_text()
    for track in tracks.itertuples():
        page = output / "pages" / page_name(track._asdict())
        assert page.is_file()
        assert page.name in index
    report = json.loads((output / "report.json").read_text())
    assert (report["files"], report["errors"]) == (len(tracks), len(BAD))
    assert "model" in (output / "report.md").read_text()


def test_scores_against_labels_are_those_of_the_tables(timeline, labels):
    output, printed, windows, tracks = timeline
    truth = labels[1]
    scores = json.loads((output / "report.json").read_text())["scores"]
    ok = tracks[(tracks["status"] == "ok") & tracks["track_id"].isin(truth.index)]
    right = [genre == truth[tid] for tid, genre in zip(ok["track_id"], ok["genre"], strict=True)]
    assert scores["tracks"] == len(ok) > 0
    assert scores["majority_accuracy"] == pytest.approx(sum(right) / len(ok), abs=1e-4)
    mine = windows[windows["window"].notna() & windows["track_id"].isin(truth.index)]
    hits = [genre == truth[tid] for tid, genre in zip(mine["track_id"], mine["genre"], strict=True)]
    assert scores["windows"] == len(mine)
    assert scores["window_accuracy"] == pytest.approx(sum(hits) / len(mine), abs=1e-4)
    assert "window accuracy" in printed
    assert "| each window |" in (output / "report.md").read_text()


@pytest.mark.slow
def test_features_only_windows(job, spark, sample_corpus, tmp_path):
    output = tmp_path / "features"
    argv = ["--input", str(sample_corpus.audio_dir), "--output", str(output), "--keep-features"]
    printed = _run(job, spark, *argv, "--window", "3", "--hop", "3")
    assert "windows with their features" in printed
    rows = pq.read_table(output / "windows").to_pandas()
    assert "mfcc_mean_01" in rows.columns
    ok = rows[rows["status"] == "ok"]
    assert ok["window"].notna().all() and ok["mfcc_mean_01"].notna().all()
    assert (rows["status"] == "error").sum() == len(BAD)
    assert not (output / "pages").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--hop", "5", "--window", "2"], "hop must be"),
        ([], "no --model"),
    ],
)
def test_bad_options_exit_2_with_one_line(job, spark, sample_corpus, tmp_path, argv, message):
    errors = io.StringIO()
    full = ["--input", str(sample_corpus.audio_dir), "--output", str(tmp_path / "x"), *argv]
    with redirect_stderr(errors):
        assert job.main(full, spark=spark) == 2
    (line,) = errors.getvalue().strip().splitlines()
    assert line.startswith("segments: ") and message in line


@pytest.fixture(scope="module")
def similar_timeline(job, spark, sample_corpus, trained_model, labels, tmp_path_factory):
    """The sample extracted with musicnn, its index on mir+musicnn, and the timeline with the
    3 nearest tracks on its pages."""
    root = tmp_path_factory.mktemp("similar")
    audio = str(sample_corpus.audio_dir)
    features, index, output = root / "features", root / "index", root / "timeline"
    printed = io.StringIO()
    with redirect_stdout(printed):
        argv = ["--input", audio, "--output", str(features), "--families", "mir,musicnn"]
        assert load_job("extract_features").main(argv, spark=spark) == 0
        argv = ["--features", str(features), "--families", "mir,musicnn", "--output", str(index)]
        assert load_job("similar").main([*argv, "--labels", str(labels[0])], spark=spark) == 0
    argv = ["--model", str(trained_model.output), "--input", audio, "--output", str(output)]
    argv += ["--similar", str(index), "--similar-k", "3"]
    printed = _run(job, spark, *argv)
    return output, printed, pq.read_table(output / "similar").to_pandas()


def test_each_page_lists_the_nearest_tracks_linked_to_their_pages(similar_timeline, labels):
    from fmagenre.timeline import browser as tb

    output, printed, similar = similar_timeline
    assert f"  similar {output}/similar (3 nearest tracks of each file in " in printed
    ok = similar[similar["rank"].notna()]
    assert set(ok.groupby("query")["rank"].apply(sorted).map(tuple)) == {(1, 2, 3)}
    assert (ok["query_track_id"] != ok["track_id"]).all()  # never itself
    genres = ok["track_id"].map(labels[1])  # NaN: a track the label table dropped
    assert (ok["genre"].fillna("-") == genres.fillna("-")).all() and genres.notna().any()
    assert sorted(similar.loc[similar["rank"].isna(), "error_reason"]) == sorted(BAD)
    pages = {p.name for p in output.joinpath("pages").glob("[0-9]*.html")}
    first = ok["query_track_id"].min()
    query = ok[ok["query_track_id"] == first].sort_values("rank")
    with tb.chromium() as browser:
        page = tb.open_page(browser, output / "pages" / f"{int(first)}.html")
        items = page.locator("#similar li")
        assert items.count() == 3
        for i, neighbour in enumerate(query.itertuples()):
            item = items.nth(i)
            assert item.get_attribute("data-rank") == str(i + 1)
            assert item.locator(".genre").text_content() == neighbour.genre
            assert f"distance {neighbour.distance:.3g}" in item.text_content()
            name = f"{int(neighbour.track_id)}.html"
            assert name in pages and item.locator("a").get_attribute("href") == name
        items.nth(0).locator("a").click()
        page.wait_for_url(f"**/{int(query['track_id'].iloc[0])}.html")
        assert page.locator("#similar li").count() == 3
        page.close()
