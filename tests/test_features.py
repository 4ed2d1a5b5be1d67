import json

import numpy as np
import pandas as pd
import pytest

from fmagenre.audio import features
from fmagenre.audio.names import FAMILY_SIZES, STATISTICS, family_of, feature_index, flat_names
from fmagenre.audio.reference import reference_extract_file, reference_features
from fmagenre.synthetic.music import render


def _assert_close_to_reference(ours, reference):
    ours, reference = np.asarray(ours, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
    ok = ~np.isnan(reference)
    relative = np.abs(ours[ok] - reference[ok]) / (np.abs(reference[ok]) + 1e-3)
    worst = int(np.argmax(relative))
    assert relative.max() <= 1e-4, (flat_names()[np.flatnonzero(ok)[worst]], relative.max())


def test_names_are_fmas_sorted_triples():
    index = feature_index()
    assert len(index) == features.N_FEATURES == 518
    assert list(index) == sorted(index)
    assert index[0] == ("chroma_cens", "kurtosis", "01")
    assert index[-1] == ("zcr", "std", "01")
    assert index.names == ["feature", "statistics", "number"]
    assert ("mfcc", "mean", "20") in index and ("mfcc", "mean", "21") not in index
    assert flat_names()[list(index).index(("mfcc", "mean", "01"))] == "mfcc_mean_01"
    counts = pd.Series([f for f, _, _ in index]).value_counts()
    assert counts.to_dict() == {f: n * len(STATISTICS) for f, n in FAMILY_SIZES.items()}


def test_family_of_flat_names():
    assert {family_of(name) for name in flat_names()} == set(FAMILY_SIZES)
    assert family_of("spectral_contrast_mean_03") == "spectral_contrast"
    with pytest.raises(KeyError):
        family_of("spectral_mean_01")


@pytest.mark.parametrize(
    ("style", "sr", "duration"),
    [
        ("Rock", 44100, 8.0),
        ("Classical", 22050, 6.0),
        ("Jazz", 48000, 5.0),
        ("Experimental", 32000, 5.0),
        ("Electronic", 11025, 5.0),
        ("Folk", 8000, 5.0),
    ],
)
@pytest.mark.parametrize("fma_compat", [True, False])
def test_values_equal_the_plain_recipe(style, sr, duration, fma_compat):
    y = render(style, duration=duration, sr=sr, seed=sr)
    ours = features.extract(y, sr, fma_compat=fma_compat)
    assert ours.dtype == np.float32 and ours.shape == (518,)
    _assert_close_to_reference(ours, reference_features(y, sr, fma_compat=fma_compat))


def test_fma_compat_changes_only_the_spectral_axis():
    y = render("Pop", duration=4.0, sr=44100, seed=1)
    compat, true_sr = features.extract(y, 44100), features.extract(y, 44100, fma_compat=False)
    names = np.array(flat_names())
    centroid_mean = list(names).index("spectral_centroid_mean_01")
    assert true_sr[centroid_mean] == pytest.approx(2 * compat[centroid_mean], rel=1e-5)
    mfcc = np.char.startswith(names.astype(str), "mfcc_")
    np.testing.assert_array_equal(compat[mfcc], true_sr[mfcc])


def test_extract_file_on_an_mp3_equals_the_reference(sample_corpus):
    path = sample_corpus.tracks[0].path
    ours = features.extract_file(path)
    assert ours.index.equals(feature_index())
    _assert_close_to_reference(ours.to_numpy(), reference_extract_file(str(path)).to_numpy())
    pd.testing.assert_series_equal(features.extract_file(path.read_bytes()), ours)


def test_silence_gives_nan_only_for_undefined_statistics():
    values = features.extract(np.zeros(22050, dtype=np.float32), 22050)
    names = np.array(flat_names())
    nan_names = set(names[np.isnan(values)])
    assert nan_names, "constant rows have undefined skew and kurtosis"
    assert all("_skew_" in n or "_kurtosis_" in n for n in nan_names)


@pytest.mark.parametrize("n_samples", [1, 100, 6615])
def test_tiny_clips_do_not_crash(n_samples):
    y = render("Rock", duration=1.0, sr=22050)[:n_samples]
    values = features.extract(y, 22050)
    _assert_close_to_reference(values, reference_features(y, 22050))


@pytest.mark.parametrize(
    ("y", "sr", "message"),
    [
        (np.zeros((2, 100), dtype=np.float32), 22050, "mono"),
        (np.zeros(0, dtype=np.float32), 22050, "empty"),
        (np.zeros(100, dtype=np.int16), 22050, "floating"),
        (np.zeros(100, dtype=np.float32), 3000, "at least 4000"),
        (np.full(100, np.nan, dtype=np.float32), 22050, "NaN"),
    ],
)
def test_bad_arguments_are_refused_first(y, sr, message):
    with pytest.raises(ValueError, match=message):
        features.extract(y, sr)


def test_analyse_turns_every_bad_file_into_a_reason(sample_corpus):
    for reason, path in sample_corpus.bad_files.items():
        result = features.analyse(path)
        if reason == "short":
            assert result.status == "ok" and result.analysed_s == pytest.approx(0.3, abs=0.06)
            continue
        assert result.status == "error", reason
        assert result.error_reason == reason
        assert result.error.startswith(f"{reason}: ")
        assert result.features is None


def test_analyse_reports_durations(sample_corpus):
    track = sample_corpus.tracks[1]
    result = features.analyse(track.path, max_duration=2.0)
    assert result.status == "ok"
    assert result.sample_rate == track.sample_rate
    assert result.channels == track.channels
    assert result.analysed_s == pytest.approx(2.0)
    assert result.duration_s == pytest.approx(track.duration, abs=0.1)
    assert result.extractor_version == features.EXTRACTOR_VERSION


def test_cli_prints_one_row_per_file(sample_corpus, capsys):
    good = sample_corpus.tracks[2].path
    bad = sample_corpus.bad_files["empty"]
    assert features.main([str(good), str(bad), "--format", "json"]) == 1
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["status"] for r in rows] == ["ok", "error"]
    assert set(flat_names()) <= set(rows[0])
    assert rows[0]["mfcc_mean_01"] == pytest.approx(
        float(features.extract_file(good)["mfcc"]["mean"]["01"])
    )
    assert rows[1]["mfcc_mean_01"] is None
    assert "empty" in err

    assert features.main([str(good)]) == 0
    csv_out = capsys.readouterr().out.splitlines()
    assert len(csv_out) == 2 and csv_out[0].startswith("path,status,error,chroma_cens_kurtosis_01")
