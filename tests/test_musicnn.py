"""musicnn's MSD_musicnn in NumPy (fmagenre.audio.musicnn) against the original TensorFlow model.

The fixture ``tests/data/musicnn/reference.npz`` holds, for three 16 kHz WAVs, the input
patches that musicnn 0.1.0 computed (librosa 0.8.1, NumPy 1.16) and what its TF 1.15 graph
gave for them (README.md there says how it was made).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from fmagenre.audio import musicnn
from fmagenre.audio.musicnn_convert import EXPECTED, crc32c, main

DATA = Path(__file__).parent / "data" / "musicnn"
NAMES = ("rock", "classical", "hiphop")
#: One float16 rounding step of the mel power, in log10(10000 x + 1): at most 2^-10 / ln 10.
FLOAT16_STEP = 2.0**-10 / math.log(10)


@pytest.fixture(scope="module")
def reference():
    with np.load(DATA / "reference.npz") as data:
        return {name: data[name] for name in data.files}


def _wav(name: str) -> tuple[np.ndarray, int]:
    y, sr = sf.read(DATA / f"{name}.wav", dtype="float32")
    return y, sr


@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_the_original_graph(reference, name):
    # Measured: 4.2e-6 on the embeddings, 6e-7 on the tags (float32 sums in another order).
    embeddings, tags = musicnn.forward(reference[f"{name}/patches"])
    np.testing.assert_allclose(embeddings, reference[f"{name}/penultimate"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(tags, reference[f"{name}/taggram"], rtol=0, atol=1e-4)
    assert embeddings.dtype == tags.dtype == np.float32


def test_forward_batches_give_the_same_values(reference):
    inputs = reference["hiphop/patches"]
    one = musicnn.forward(inputs, batch=1)
    two = musicnn.forward(inputs, batch=2)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_log_mel_matches_the_original_preprocessing(reference, name):
    # librosa 0.11 against 0.8.1: the float32 mel powers differ in their last bits, so a power
    # that lies near the middle between two float16 values can round to the other one. That
    # moves a value by one float16 step at most (measured: 4.2e-4, on at most 0.011% of the
    # values; every other value within 5e-7). Zero padding instead of reflection at the ends
    # would give 1.06.
    y, sr = _wav(name)
    mine = musicnn.patches(musicnn.log_mel(y, sr))
    original = reference[f"{name}/patches"]
    assert mine.shape == original.shape and mine.dtype == np.float32
    gap = np.abs(mine - original)
    assert gap.max() <= FLOAT16_STEP * 1.01
    assert np.mean(gap > 1e-5) <= 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_patch_outputs_end_to_end(reference, name):
    # Measured: 1e-5 on the embeddings, 7e-6 on the summary.
    y, sr = _wav(name)
    out = musicnn.patch_outputs(y, sr)
    count = len(reference[f"{name}/penultimate"])
    np.testing.assert_allclose(out.starts, np.arange(count) * 187 * 256 / 16000)
    np.testing.assert_allclose(out.embeddings, reference[f"{name}/penultimate"], atol=1e-4)
    np.testing.assert_allclose(out.tags, reference[f"{name}/taggram"], atol=1e-4)
    original = musicnn.summary(reference[f"{name}/penultimate"], reference[f"{name}/taggram"])
    np.testing.assert_allclose(musicnn.summary(out.embeddings, out.tags), original, atol=1e-4)


def test_summary_values():
    rng = np.random.default_rng(0)
    embeddings, tags = rng.normal(size=(5, 200)), rng.uniform(size=(5, 50))
    values = musicnn.summary(embeddings, tags)
    assert values.shape == (musicnn.SUMMARY_SIZE,) == (450,) and values.dtype == np.float32
    np.testing.assert_allclose(values[:200], embeddings.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(values[200:400], embeddings.std(axis=0, ddof=0), rtol=1e-6)
    np.testing.assert_allclose(values[400:], tags.mean(axis=0), rtol=1e-6)


def test_too_short_and_the_shortest():
    shortest = musicnn.MIN_SAMPLES  # 47,616 samples: 187 centred frames
    y = np.random.default_rng(1).uniform(-0.5, 0.5, shortest).astype(np.float32)
    out = musicnn.patch_outputs(y, 16000)
    assert out.embeddings.shape == (1, 200) and out.tags.shape == (1, 50)
    with pytest.raises(musicnn.MusicnnError, match="too_short") as caught:
        musicnn.patch_outputs(y[:-1], 16000)
    assert caught.value.reason == "too_short"
    with pytest.raises(musicnn.MusicnnError):
        musicnn.patch_outputs(np.zeros(44100 * 2), 44100)
    with pytest.raises(musicnn.MusicnnError):
        musicnn.patches(np.zeros((186, 96), dtype=np.float32))


def test_silence_gives_numbers():
    out = musicnn.patch_outputs(np.zeros(16000 * 7), 16000)
    assert out.embeddings.shape == (2, 200)
    assert np.isfinite(out.embeddings).all() and np.isfinite(out.tags).all()


@pytest.mark.parametrize(
    ("y", "sr", "match"),
    [
        (np.zeros((2, 50000)), 16000, "1-D floating"),
        (np.zeros(50000, dtype=np.int16), 16000, "1-D floating"),
        (np.zeros(50000), 0, "sr must be"),
        (np.zeros(50000), 16000.0, "sr must be"),
        (np.zeros(50000), True, "sr must be"),
        (np.full(50000, np.nan), 16000, "NaN"),
    ],
)
def test_signal_arguments(y, sr, match):
    with pytest.raises(ValueError, match=match):
        musicnn.patch_outputs(y, sr)
    with pytest.raises(ValueError, match=match):
        musicnn.log_mel(y, sr)


def test_other_arguments():
    good = np.zeros((1, 187, 96), dtype=np.float32)
    with pytest.raises(ValueError, match=r"patches must be \(n, 187, 96\)"):
        musicnn.forward(np.zeros((1, 186, 96), dtype=np.float32))
    with pytest.raises(ValueError, match="floating"):
        musicnn.forward(good.astype(np.int32))
    with pytest.raises(ValueError, match="batch"):
        musicnn.forward(good, batch=0)
    with pytest.raises(ValueError, match="batch"):
        musicnn.patch_outputs(np.zeros(50000), 16000, batch=0)
    with pytest.raises(ValueError, match="spectrogram"):
        musicnn.patches(np.zeros((200, 95)))
    with pytest.raises(ValueError, match="embeddings"):
        musicnn.summary(np.zeros((0, 200)), np.zeros((0, 50)))
    with pytest.raises(ValueError, match="tags"):
        musicnn.summary(np.zeros((2, 200)), np.zeros((3, 50)))


def test_shipped_weights(reference):
    weights = musicnn.weights()
    assert list(weights) == list(EXPECTED)
    assert len(weights) == 64
    assert sum(a.size for a in weights.values()) == 792_079
    for name, (_, shape) in EXPECTED.items():
        assert weights[name].shape == shape and weights[name].dtype == np.float32
    assert musicnn.TAGS == tuple(reference["tags"])
    license_text = (musicnn.WEIGHTS_PATH.parent / "LICENSE.md").read_text()
    assert "Permission to use, copy, modify, and/or distribute this software" in license_text


def test_converter_checks(tmp_path, capsys):
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert main([str(tmp_path / "missing.whl"), str(tmp_path / "out.npz")]) == 2
    (tmp_path / "not.whl").write_bytes(b"not a wheel")
    assert main([str(tmp_path / "not.whl"), str(tmp_path / "out.npz")]) == 2
    assert "neither a checkpoint directory nor a wheel" in capsys.readouterr().err
