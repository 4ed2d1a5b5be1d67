"""The genre-timeline pages: rendering (escaping, data, legend, index) and, in a real headless
Chromium, the playhead, the current window and the seeking by audio, click and keys."""

from __future__ import annotations

import json
import math
import re
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from fmagenre.timeline import browser as tb
from fmagenre.timeline.pages import (
    GENRE_COLORS,
    audio_data_uri,
    audio_url,
    genre_color,
    page_name,
    render_index,
    render_page,
    window_at,
)

MODELS = ["lr", "svc", "xgb"]
FMA_GENRES = [
    "Blues", "Classical", "Country", "Easy Listening", "Electronic", "Experimental", "Folk",
    "Hip-Hop", "Instrumental", "International", "Jazz", "Old-Time / Historic", "Pop", "Rock",
    "Soul-RnB", "Spoken",
]  # fmt: skip


def make_windows(genres, *, length=10.0, hop=5.0):
    """Overlapping windows, one per genre; lr and svc vote the window's genre, xgb Pop."""
    windows = []
    for i, genre in enumerate(genres):
        windows.append(
            {
                "start_s": i * hop,
                "end_s": i * hop + length,
                "genre": genre,
                "votes": {"lr": genre, "svc": genre, "xgb": "Pop"},
                "scores": {"lr": {genre: 0.7, "Pop": 0.2, "Blues": 0.1}, "xgb": {"Pop": 0.6}},
            }
        )
    return windows


def make_track(path="/music/song.mp3", windows=(), *, track_id=None, duration=20.0):
    genres = [w["genre"] for w in windows]
    shares = {g: genres.count(g) / len(genres) for g in genres} if genres else {}
    return {
        "track_id": track_id,
        "path": path,
        "status": "ok",
        "error": None,
        "duration_s": duration,
        "genre": max(shares, key=shares.get) if shares else None,
        "shares": shares,
        "track_genre": "Jazz",
        "n_windows": len(windows),
        "model": "out/model",
    }


def page_data(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="timeline-data">(.*?)</script>', page)
    return json.loads(found.group(1))


WINDOWS = make_windows(["Rock", "Jazz", "Hip-Hop"])  # 0-10, 5-15, 10-20 s


# --- rendering ---------------------------------------------------------------------------


def test_text_is_escaped_in_the_page_and_its_json():
    path = "/music/<script>alert(1)</script> & co.mp3"
    windows = make_windows(["Rock", "R&B </script><b>"])
    page = render_page(make_track(path, windows), windows, models=MODELS, audio_src=None)
    assert "<script>alert" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co.mp3" in page
    assert "R&amp;B &lt;/script&gt;&lt;b&gt;" in page
    # the JSON block holds no "<" at all, yet reads back the very strings
    assert page.count("</script>") == page.count("<script")
    assert page_data(page)["windows"][1]["genre"] == "R&B </script><b>"


def test_every_window_is_in_the_json():
    windows = make_windows(["Rock", "Jazz", None, "Rock"], length=10, hop=2.5)
    windows[2]["scores"] = {"lr": {"Rock": float("nan")}}
    page = render_page(make_track(windows=windows), windows, models=MODELS, audio_src="a.mp3")
    data = page_data(page)
    assert len(data["windows"]) == 4
    for shown, window in zip(data["windows"], windows, strict=True):
        assert (shown["start_s"], shown["end_s"]) == (window["start_s"], window["end_s"])
        assert (shown["genre"], shown["votes"]) == (window["genre"], window["votes"])
    assert data["windows"][0]["scores"] == windows[0]["scores"]
    assert data["windows"][2]["scores"] == {"lr": {"Rock": None}}  # NaN is no JSON
    assert data["models"] == MODELS and data["span_s"] == 20.0
    assert all(f'<tr data-model="{m}">' in page for m in MODELS)


def test_the_legend_has_fmas_16_genres_then_the_others():
    assert list(GENRE_COLORS) == FMA_GENRES
    colours = list(GENRE_COLORS.values())
    assert len(set(colours)) == 16 and all(re.fullmatch(r"#[0-9A-F]{6}", c) for c in colours)
    page = render_page(make_track(windows=WINDOWS), WINDOWS, models=MODELS, audio_src=None)
    legend = re.search(r'<ul id="legend".*?</ul>', page).group(0)
    assert re.findall(r'data-genre="([^"]+)"', legend) == FMA_GENRES
    present = re.findall(r'data-genre="([^"]+)" class="present"', legend)
    assert present == ["Blues", "Hip-Hop", "Jazz", "Pop", "Rock"]  # with the votes and scores

    other = make_windows(["Rock", "Vaporwave"])
    page = render_page(make_track(windows=other), other, models=MODELS, audio_src=None)
    legend = re.search(r'<ul id="legend".*?</ul>', page).group(0)
    assert re.findall(r'data-genre="([^"]+)"', legend) == [*FMA_GENRES, "Vaporwave"]
    assert genre_color("Vaporwave") == genre_color("Vaporwave") not in colours
    assert genre_color("Vaporwave") in legend


def test_an_error_page_shows_the_error_and_no_timeline():
    track = {**make_track(), "status": "error", "error": "cannot decode <frame> & more"}
    page = render_page(track, [], models=MODELS, audio_src="song.mp3")
    assert 'id="error"' in page and "cannot decode &lt;frame&gt; &amp; more" in page
    assert 'id="strip"' not in page and "<audio" not in page and "<script" not in page


def test_a_page_without_audio_still_has_its_timeline():
    page = render_page(make_track(windows=WINDOWS), WINDOWS, models=MODELS, audio_src=None)
    assert re.search(r'<audio id="player"[^>]*>', page).group(0).find("src=") == -1
    assert 'id="audio-note"' in page and "No audio" in page and 'id="strip"' in page


def test_the_index_counts_and_lists_every_track():
    ok = make_track("/a/one.mp3", WINDOWS, track_id=2)
    other = make_track("/b/<two>.mp3", WINDOWS[:1])
    error = {**make_track("/c/bad.mp3"), "status": "error", "error": "empty <file>"}
    index = render_index([ok, other, error], title="Timelines & co")
    assert "<h1>Timelines &amp; co</h1>" in index
    counts = dict(re.findall(r'<span id="count-(\w+)">(\d+)</span>', index))
    assert counts == {"files": "3", "ok": "2", "errors": "1"}
    assert index.count('<tr class="ok">') == 2 and index.count('<tr class="error">') == 1
    for track in (ok, other, error):
        assert f'href="{page_name(track)}"' in index
    assert "&lt;two&gt;.mp3" in index and "empty &lt;file&gt;" in index
    row = re.search(r'<tr class="ok">.*?</tr>', index).group(0)
    assert "Rock" in row and "33%" in row and "Jazz" in row and "0:20" in row


def test_page_names_are_safe_and_unique_per_path():
    assert page_name({"track_id": 2, "path": "/x/000002.mp3"}) == "2.html"
    paths = ["/a/song.mp3", "/b/song.mp3", "s3://bucket/sóng <1>.mp3", "/a/.mp3"]
    names = [page_name({"track_id": None, "path": p}) for p in paths]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+\.html", n) for n in names)
    assert names[0].startswith("song-") and names == [
        page_name({"track_id": None, "path": p}) for p in paths
    ]


def test_window_at_takes_the_nearest_centre_and_the_earlier_on_ties():
    # centres 5, 10, 15: the window of 0-10 s is current until 7.5 s, though 5-15 s starts at 5
    assert [window_at(WINDOWS, t) for t in (0, 5, 7.4, 7.5, 7.6, 12.5, 12.6, 99)] == [
        0, 0, 0, 0, 1, 1, 2, 2,
    ]  # fmt: skip
    same_centre = [{"start_s": 0, "end_s": 10}, {"start_s": 2.5, "end_s": 7.5}]
    assert window_at(same_centre, 5) == 0 and window_at([], 3) == -1


def test_the_strip_is_coloured_by_the_window_under_the_playhead():
    windows = make_windows(["Rock", "Jazz", "Pop", "Folk"], length=10, hop=3)
    windows[3]["end_s"] = 16  # a short last window: centres 5, 8, 11, 12.5
    page = render_page(make_track(windows=windows), windows, models=MODELS, audio_src=None)
    cells = re.findall(r'data-window="(\d+)"[^>]*style="left:([\d.]+)%;width:([\d.]+)%', page)
    assert sum(float(width) for _, _, width in cells) == pytest.approx(100)
    for index, left, width in cells:
        middle = (float(left) + float(width) / 2) / 100 * 20
        assert window_at(windows, middle) == int(index)


def test_pages_are_self_contained():
    page = render_page(make_track(windows=WINDOWS), WINDOWS, models=MODELS, audio_src="a.mp3")
    embedded = render_page(
        make_track(windows=WINDOWS), WINDOWS, models=MODELS, audio_src=audio_data_uri(b"ID3")
    )
    index = render_index([make_track(windows=WINDOWS)])
    for html in (page, embedded, index):
        assert "http://" not in html.lower() and "https://" not in html.lower()
        assert "<link" not in html and not re.search(r"<script[^>]*\ssrc=", html)
    assert 'src="data:audio/mpeg;base64,SUQz"' in embedded


def test_audio_urls_are_relative_and_encoded(tmp_path):
    audio = tmp_path / "audio" / "a song #1.mp3"
    assert audio_url(audio, tmp_path / "pages") == "../audio/a%20song%20%231.mp3"


# --- in Chromium -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the module; missing, the tests fail (they do not skip)."""
    with tb.chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """A 20 s MP3 (a tone per 5 s) in audio/, and its page in pages/ (relative src)."""
    root = tmp_path_factory.mktemp("timeline")
    sr = 22050
    t = np.arange(20 * sr) / sr
    y = 0.3 * np.sin(2 * np.pi * np.repeat([220, 330, 440, 550], 5 * sr) * t)
    mp3 = root / "audio" / "song one.mp3"
    mp3.parent.mkdir()
    sf.write(mp3, y.astype(np.float32), sr, format="MP3")
    track = make_track(str(mp3), WINDOWS)
    page = root / "pages" / page_name(track)
    page.parent.mkdir()
    page.write_text(
        render_page(track, WINDOWS, models=MODELS, audio_src=audio_url(mp3, page.parent))
    )
    return {"mp3": mp3, "page": page, "track": track}


def wait_for_time(page, t, tolerance=0.01):
    """Until the strip says its playhead is at ``t``; then what the page shows."""
    page.wait_for_function(
        """([t, tol]) => Math.abs(Number(document.getElementById("strip")
            .getAttribute("aria-valuenow")) - t) <= tol""",
        arg=[t, tolerance],
        timeout=5000,
    )
    return tb.shown(page)


def playhead_time(page) -> float:
    """The time where the playhead is drawn, from its position on the strip."""
    strip = page.locator("#strip").bounding_box()
    head = page.locator("#playhead").bounding_box()
    inner = strip["width"] - 2  # the strip's border: 1 px each side
    return (head["x"] + head["width"] / 2 - strip["x"] - 1) / inner * 20


def assert_shows_window_at(page, state):
    window = WINDOWS[window_at(WINDOWS, state["time_s"])]
    assert state["current_genre"] == window["genre"]
    assert state["current_window"] == f"{window['start_s']:g}–{window['end_s']:g} s"
    row = page.locator('#votes tr[data-model="xgb"]')
    assert row.locator(".vote").text_content() == "Pop"
    assert row.locator(".scores").text_content() == "Pop 60%"
    assert page.locator('#votes tr[data-model="svc"] .scores').text_content() == "no scores"
    assert playhead_time(page) == pytest.approx(state["time_s"], abs=0.1)


def test_the_page_follows_the_audio(chromium, song):
    page = tb.open_page(chromium, song["page"])
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    assert tb.shown(page)["audio_duration"] == pytest.approx(20, abs=0.2)  # the MP3 decoded
    genres = []
    for t in (2.0, 6.0, 9.0, 13.5, 19.0):
        page.evaluate('(t) => { document.getElementById("player").currentTime = t; }', t)
        state = wait_for_time(page, t)
        assert_shows_window_at(page, state)
        genres.append(state["current_genre"])
    assert genres == ["Rock", "Rock", "Jazz", "Hip-Hop", "Hip-Hop"]
    # playing: the display follows into the next window
    assert tb.seek(page, 7.2)["current_genre"] == "Rock"
    page.evaluate('document.getElementById("player").play()')
    page.wait_for_function(
        'Number(document.getElementById("strip").getAttribute("aria-valuenow")) > 7.6',
        timeout=5000,
    )
    page.evaluate('document.getElementById("player").pause()')
    assert_shows_window_at(page, tb.shown(page))
    assert tb.shown(page)["current_genre"] == "Jazz"
    assert errors == []
    page.close()


def test_a_click_and_the_keys_seek(chromium, song):
    page = tb.open_page(chromium, song["page"])
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    strip = page.locator("#strip").bounding_box()
    page.locator("#strip").click(position={"x": strip["width"] * 0.8, "y": strip["height"] / 2})
    state = wait_for_time(page, 16, tolerance=0.1)
    assert_shows_window_at(page, state)
    assert state["current_genre"] == "Hip-Hop"
    audio_time = 'document.getElementById("player").currentTime'
    assert page.evaluate(audio_time) == pytest.approx(state["time_s"])
    # the strip has the focus now; Left/Right go to the previous/next window's centre
    assert page.evaluate("document.activeElement.id") == "strip"
    for key, t, genre in [
        ("ArrowLeft", 10, "Jazz"),
        ("ArrowLeft", 5, "Rock"),
        ("ArrowLeft", 0, "Rock"),
        ("ArrowRight", 10, "Jazz"),
        ("ArrowRight", 15, "Hip-Hop"),
        ("ArrowRight", 20, "Hip-Hop"),
        ("Home", 0, "Rock"),
        ("End", 20, "Hip-Hop"),
    ]:
        page.keyboard.press(key)
        state = wait_for_time(page, t)
        assert_shows_window_at(page, state)
        assert state["current_genre"] == genre
        assert page.evaluate(audio_time) == pytest.approx(t, abs=0.05)
        slider = page.locator("#strip")
        assert float(slider.get_attribute("aria-valuenow")) == t
        assert genre in slider.get_attribute("aria-valuetext")
    assert errors == []
    page.close()


def test_embedded_audio_plays_and_no_audio_still_seeks(chromium, song, tmp_path):
    track = song["track"]
    embedded = tmp_path / "embedded.html"
    src = audio_data_uri(song["mp3"].read_bytes())
    embedded.write_text(render_page(track, WINDOWS, models=MODELS, audio_src=src))
    page = tb.open_page(chromium, embedded)
    assert tb.shown(page)["audio_duration"] == pytest.approx(20, abs=0.2)
    assert tb.seek(page, 9)["current_genre"] == "Jazz"
    page.close()

    silent = tmp_path / "silent.html"
    silent.write_text(render_page(track, WINDOWS, models=MODELS, audio_src=None))
    page = tb.open_page(chromium, silent)
    state = tb.seek(page, 13.5)
    assert state["audio_duration"] is None
    assert_shows_window_at(page, state)
    page.locator("#strip").press("ArrowLeft")
    assert wait_for_time(page, 10)["current_genre"] == "Jazz"
    page.close()


def test_the_screenshot_command(song, tmp_path):
    png = tmp_path / "shot.png"
    command = [sys.executable, "-m", "fmagenre.timeline.browser", "screenshot"]
    result = subprocess.run(
        [*command, str(song["page"]), str(png)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    printed, shown = result.stdout.splitlines()
    assert printed == str(png)
    shown = json.loads(shown)
    assert shown["time_s"] == 10 and shown["current_genre"] == "Jazz"  # the middle
    assert math.isfinite(shown["audio_duration"])
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 800 and height >= 400 and len(data) > 10_000


def test_a_missing_chromium_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(tb, "CHROMIUM_CANDIDATES", ("/nonexistent/chromium",))
    monkeypatch.delenv("FMAGENRE_CHROMIUM", raising=False)
    with pytest.raises(tb.BrowserUnavailable, match="apt-get install chromium"):
        tb.find_chromium()
    monkeypatch.setenv("FMAGENRE_CHROMIUM", "/nonexistent/chrome")
    with pytest.raises(tb.BrowserUnavailable, match="FMAGENRE_CHROMIUM"):
        tb.find_chromium()
