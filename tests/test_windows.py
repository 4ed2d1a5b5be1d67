"""The window rule and windowed extraction: same values as the recipe on each window's samples."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from fmagenre.audio.features import analyse, extract, extract_windows
from fmagenre.audio.windows import window_bounds, window_count
from fmagenre.synthetic.music import render

SR = 8000


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (30.0, [(0, 10), (5, 15), (10, 20), (15, 25), (20, 30)]),  # hops fit exactly
        (32.0, [(0, 10), (5, 15), (10, 20), (15, 25), (20, 30), (22, 32)]),  # last ends at end
        (10.0, [(0, 10)]),  # exactly one window
        (4.0, [(0, 4)]),  # shorter than a window: the whole track
    ],
)
def test_windows_start_every_hop_and_the_last_ends_at_the_end(seconds, expected):
    bounds = window_bounds(round(seconds * SR), SR, window=10, hop=5)
    assert [(a / SR, b / SR) for a, b in bounds] == expected
    assert window_count(seconds, window=10, hop=5) == len(expected)


@pytest.mark.parametrize("seconds", [0.5, 9.99, 10.0, 10.01, 17.3, 20.0, 61.7, 600.0])
@pytest.mark.parametrize(("window", "hop"), [(10, 5), (10, 10), (3, 1), (2.5, 0.7)])
def test_window_count_matches_the_bounds_and_every_sample_is_covered(seconds, window, hop):
    n = round(seconds * SR)
    bounds = window_bounds(n, SR, window=window, hop=hop)
    assert len(bounds) == window_count(seconds, window=window, hop=hop)
    covered = np.zeros(n, dtype=bool)
    for a, b in bounds:
        assert 0 <= a < b <= n
        covered[a:b] = True
    assert covered.all()
    assert len({a for a, _ in bounds}) == len(bounds)


@pytest.mark.parametrize(("window", "hop"), [(0, 1), (-1, 1), (5, 0), (5, 6)])
def test_bad_windows_are_refused(window, hop):
    with pytest.raises(ValueError, match=r"window|hop"):
        window_bounds(100, SR, window=window, hop=hop)


def test_each_window_gets_the_recipe_of_its_own_samples():
    sr = 22050
    y = render("Jazz", duration=12.0, sr=sr, seed=3).astype(np.float32)
    result = extract_windows(y, sr, window=5, hop=2.5)
    assert result.values.shape == (4, 518)
    for k, (start, end) in enumerate(zip(result.start_s, result.end_s, strict=True)):
        expected = extract(y[round(start * sr) : round(end * sr)], sr)
        np.testing.assert_array_equal(result.values[k], expected)
    assert result.start_s.tolist() == [0.0, 2.5, 5.0, 7.0]


def test_analyse_with_windows_decodes_once_and_keeps_the_whole_track(tmp_path):
    sr = 16000
    path = tmp_path / "track.mp3"
    sf.write(path, render("Rock", duration=7.0, sr=sr, seed=1), sr, format="MP3")
    plain = analyse(str(path))
    windowed = analyse(str(path), window=3, hop=2)
    np.testing.assert_array_equal(plain.features, windowed.features)
    assert plain.windows is None
    assert len(windowed.windows.start_s) == window_count(windowed.analysed_s, window=3, hop=2)
    assert windowed.windows.end_s[-1] == pytest.approx(windowed.analysed_s)


def test_a_bad_file_has_no_windows(tmp_path):
    path = tmp_path / "bad.mp3"
    path.write_text("not audio")
    result = analyse(str(path), window=3, hop=2)
    assert (result.status, result.error_reason, result.windows) == ("error", "not_audio", None)
