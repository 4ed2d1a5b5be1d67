"""Log-mel patches (fmagenre.audio.patches) and analyse(patches=...), with real librosa."""

from __future__ import annotations

import json

import librosa
import numpy as np
import pytest

from fmagenre.audio import decode
from fmagenre.audio.features import analyse
from fmagenre.audio.patches import (
    PatchError,
    PatchSettings,
    log_mel_patches,
    patches_from_bytes,
    patches_to_bytes,
)
from fmagenre.synthetic.music import render

SETTINGS = PatchSettings()


def _plain_db(y: np.ndarray, sr: int, settings: PatchSettings = SETTINGS) -> np.ndarray:
    """The plain recipe: resample the whole signal, mel spectrogram, dB (no reference)."""
    y = librosa.resample(y, orig_sr=sr, target_sr=settings.sample_rate, res_type="soxr_hq")
    mel = librosa.feature.melspectrogram(
        y=y,
        sr=settings.sample_rate,
        n_fft=settings.n_fft,
        hop_length=settings.hop,
        n_mels=settings.n_mels,
    )
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)


def _quantised(db: np.ndarray, settings: PatchSettings = SETTINGS) -> np.ndarray:
    step = (settings.db_max - settings.db_min) / 255
    return np.clip(np.rint((db - settings.db_min) / step), 0, 255).astype(np.int64)


def _offsets(patches: np.ndarray, reference: np.ndarray) -> list[int]:
    """Where each patch lies in the reference spectrogram: the best-matching first frame."""
    frames = patches.shape[2]
    found = []
    for patch in patches.astype(np.int64):
        errors = [
            np.abs(reference[:, f : f + frames] - patch).mean()
            for f in range(reference.shape[1] - frames + 1)
        ]
        found.append(int(np.argmin(errors)))
    return found


def test_defaults_shape_dtype_and_bounded_size():
    assert SETTINGS.patch_seconds == pytest.approx(2.972, abs=1e-3)
    assert SETTINGS.db_step == pytest.approx(0.5)
    for seconds in (3.5, 20.0):
        y = render("Rock", duration=seconds, sr=22050, seed=1)
        q = log_mel_patches(y, 22050, settings=SETTINGS)
        assert q.dtype == np.uint8 and q.shape == (16, 96, 128)
        assert len(patches_to_bytes(q)) == 16 * 96 * 128 == 196_608 <= 400_000
        assert 0 < q.mean() < 255  # music, neither clipped away at the top nor the bottom


@pytest.mark.parametrize(
    ("sr", "seconds", "style"),
    [(44100, 12.0, "Jazz"), (48000, 7.0, "Rock"), (22050, 4.0, "Folk"), (8000, 9.0, "Pop")],
)
def test_patches_are_the_plain_recipe_quantised_and_evenly_spaced(sr, seconds, style):
    y = render(style, duration=seconds, sr=sr, seed=sr)
    q = log_mel_patches(y, sr, settings=SETTINGS)
    reference = _quantised(_plain_db(y, sr))
    last = reference.shape[1] - SETTINGS.frames
    offsets = _offsets(q, reference)
    assert offsets[0] == 0 and offsets[-1] == last
    assert offsets == [round(k * last / 15) for k in range(16)]
    expected = np.stack([reference[:, f : f + SETTINGS.frames] for f in offsets])
    difference = np.abs(q.astype(np.int64) - expected)
    assert difference.max() <= 1
    assert (difference == 0).mean() > 0.999


def test_a_long_track_transforms_only_what_its_patches_cover():
    # 16 patches of 2.97 s over 80 s leave gaps: runs are resampled apart, same values.
    y = render("Electronic", duration=80.0, sr=16000, seed=2)
    q = log_mel_patches(y, 16000, settings=SETTINGS)
    reference = _quantised(_plain_db(y, 16000))
    last = reference.shape[1] - SETTINGS.frames
    expected = np.stack(
        [reference[:, f : f + 128] for f in (round(k * last / 15) for k in range(16))]
    )
    assert np.abs(q.astype(np.int64) - expected).max() <= 1


def test_a_region_is_analysed_as_if_it_were_the_track_and_count_is_honoured():
    y = render("Blues", duration=14.0, sr=44100, seed=4)
    start, stop = 44100 * 3 + 123, 44100 * 13
    region = log_mel_patches(y, 44100, settings=SETTINGS, count=3, start=start, stop=stop)
    alone = log_mel_patches(y[start:stop], 44100, settings=SETTINGS, count=3)
    assert region.shape == (3, 96, 128)
    np.testing.assert_array_equal(region, alone)
    single = log_mel_patches(y, 44100, settings=SETTINGS, count=1, start=start, stop=stop)
    reference = _quantised(_plain_db(y[start:stop], 44100))
    assert _offsets(single, reference) == [(reference.shape[1] - 128) // 2]  # centred
    assert SETTINGS.window_count(10.0) == 3 and SETTINGS.window_count(1.0) == 1


def test_too_short_means_less_than_one_patch_without_padding():
    need = SETTINGS.patch_samples  # at 22,050 Hz
    y = render("Pop", duration=4.0, sr=22050, seed=5)
    with pytest.raises(PatchError) as short:
        log_mel_patches(y[: need - 1], 22050, settings=SETTINGS)
    assert short.value.reason == "too_short" and str(short.value).startswith("too_short: ")
    assert log_mel_patches(y[:need], 22050, settings=SETTINGS).shape == (16, 96, 128)
    y44 = render("Pop", duration=4.0, sr=44100, seed=5)
    with pytest.raises(PatchError, match="too_short"):
        log_mel_patches(y44[: 2 * need - 2], 44100, settings=SETTINGS)
    assert log_mel_patches(y44[: 2 * need], 44100, settings=SETTINGS).shape[0] == 16


def test_silence_is_an_error_and_quiet_parts_are_zeros_never_nan():
    with pytest.raises(PatchError) as silent:
        log_mel_patches(np.zeros(22050 * 5, dtype=np.float32), 22050, settings=SETTINGS)
    assert silent.value.reason == "silent"
    y = render("Classical", duration=8.0, sr=22050, seed=6)
    y[: 22050 * 4] = 0
    q = log_mel_patches(y, 22050, settings=SETTINGS)
    assert (q[0] == 0).all() and q[-1].max() > 0


def test_bad_parameters_are_value_errors():
    y = render("Rock", duration=4.0, sr=22050, seed=1)
    for call in (
        lambda: log_mel_patches(y.reshape(2, -1), 22050, settings=SETTINGS),
        lambda: log_mel_patches(y, 0, settings=SETTINGS),
        lambda: log_mel_patches(y, 22050, settings=SETTINGS, count=0),
        lambda: log_mel_patches(y, 22050, settings=SETTINGS, start=10, stop=5),
        lambda: log_mel_patches(np.full(70000, np.nan), 22050, settings=SETTINGS),
    ):
        with pytest.raises(ValueError) as raised:
            call()
        assert not isinstance(raised.value, PatchError)
    with pytest.raises(ValueError, match="db_min must be below db_max"):
        PatchSettings(db_min=10, db_max=0)
    with pytest.raises(ValueError, match="count must be a positive integer"):
        PatchSettings(count=0)


def test_bytes_round_trip_and_bad_lengths():
    q = np.random.default_rng(0).integers(0, 256, (3, 96, 128), dtype=np.uint8)
    data = patches_to_bytes(q)
    assert len(data) == 3 * 96 * 128
    np.testing.assert_array_equal(patches_from_bytes(data, settings=SETTINGS), q)
    with pytest.raises(ValueError, match="not a whole number of patches"):
        patches_from_bytes(data[:-1], settings=SETTINGS)
    with pytest.raises(ValueError, match="uint8"):
        patches_to_bytes(q.astype(np.float32))


def test_settings_key_and_dict_round_trip():
    assert SETTINGS.key() == (
        "patches:sr=22050,fft=2048,hop=512,mels=96,frames=128,count=16,db=-80..47.5"
    )
    other = PatchSettings(count=4, n_mels=64, db_min=-90.5)
    assert PatchSettings.from_key("max_duration=600;fma_compat=true;" + other.key()) == other
    assert PatchSettings.from_dict(json.loads(json.dumps(other.to_dict()))) == other
    with pytest.raises(ValueError, match="unknown patch settings"):
        PatchSettings.from_dict({"mels": 96})
    with pytest.raises(ValueError, match="no patch settings"):
        PatchSettings.from_key("max_duration=600;fma_compat=true")


def test_analyse_gives_patches_of_the_same_decoding_and_reasons_for_bad_files(sample_corpus):
    track = sample_corpus.tracks[0]
    result = analyse(track.path, patches=SETTINGS, window=2.0, hop=1.5)
    decoded = decode.decode(track.path)
    np.testing.assert_array_equal(
        result.patches, log_mel_patches(decoded.y, decoded.sr, settings=SETTINGS)
    )
    assert result.status == "ok" and result.patch_error is None
    plain = analyse(track.path)
    np.testing.assert_array_equal(plain.features, result.features)
    assert plain.patches is None and plain.patch_error is None
    windows = result.windows
    assert len(windows.patches) == len(windows.patch_errors) == len(windows.start_s)
    # 2 s windows are shorter than one patch; the last window, the track's end, too.
    assert all(p is None for p in windows.patches)
    assert all(e.startswith("too_short: ") for e in windows.patch_errors)
    wide = analyse(track.path, patches=SETTINGS, window=3.0, hop=3.0).windows
    assert [p.shape for p in wide.patches] == [(1, 96, 128)] * len(wide.start_s)

    for reason, path in sample_corpus.bad_files.items():
        result = analyse(path, patches=SETTINGS)
        assert result.patches is None, reason
        if reason == "short":  # 0.3 s: features, but less than one patch
            assert result.status == "ok" and result.patch_error.startswith("too_short: ")
        else:
            assert result.status == "error" and result.patch_error == result.error
            assert result.patch_error.startswith(f"{reason}: ")
