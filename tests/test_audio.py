import io
import struct

import librosa
import numpy as np
import pytest
import soundfile as sf

from fmagenre.audio import decode as audio
from fmagenre.synthetic.music import render


def _encode(y, sr, fmt, channels=2):
    data = y if channels == 1 else np.stack([y, 0.5 * y], axis=1)
    buf = io.BytesIO()
    sf.write(buf, data, sr, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def mp3_bytes():
    return _encode(render("Jazz", duration=3.0, sr=44100, seed=1), 44100, "MP3")


@pytest.mark.parametrize("fmt", ["MP3", "WAV", "FLAC", "OGG"])
def test_decode_matches_librosa_load(tmp_path, fmt):
    data = _encode(render("Folk", duration=2.0, sr=32000, seed=3), 32000, fmt)
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(data)
    decoded = audio.decode(data)
    expected, sr = librosa.load(path, sr=None, mono=True)
    assert decoded.sr == sr == 32000
    assert decoded.channels == 2
    assert decoded.format == fmt.lower()
    assert decoded.y.dtype == np.float32
    np.testing.assert_array_equal(decoded.y, expected)
    assert decoded.duration_s == pytest.approx(expected.size / sr)


def test_path_and_bytes_give_the_same_signal(tmp_path, mp3_bytes):
    path = tmp_path / "a.mp3"
    path.write_bytes(mp3_bytes)
    np.testing.assert_array_equal(audio.decode(path).y, audio.decode(mp3_bytes).y)


def test_max_duration_caps_what_is_decoded(mp3_bytes):
    whole = audio.decode(mp3_bytes, max_duration=0)
    capped = audio.decode(mp3_bytes, max_duration=1.5)
    assert capped.analysed_s == pytest.approx(1.5)
    assert capped.duration_s == pytest.approx(whole.duration_s)
    np.testing.assert_array_equal(capped.y, whole.y[: capped.y.size])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"just some text, not audio\n" * 10, "not_audio"),
        (b"\x00\x00\x00\x18ftypM4A " + bytes(200), "unsupported_format"),
    ],
)
def test_bad_bytes_raise_typed_error(data, reason):
    with pytest.raises(audio.AudioDecodeError) as info:
        audio.decode(data)
    assert info.value.reason == reason
    assert str(info.value).startswith(f"{reason}: ")


def test_every_cut_of_an_mp3_is_reported_truncated(mp3_bytes):
    for cut in range(600, len(mp3_bytes) - 1, 1499):
        with pytest.raises(audio.AudioDecodeError) as info:
            audio.decode(mp3_bytes[:cut])
        assert info.value.reason == "truncated", cut


def test_mp3_cut_at_a_frame_boundary_is_caught_by_its_info_header(mp3_bytes):
    frames, pos = [], 0
    while pos < len(mp3_bytes):
        length, _ = audio._mp3_frame(mp3_bytes, pos)
        frames.append(pos)
        pos += length
    with pytest.raises(audio.AudioDecodeError, match="header declares"):
        audio.decode(mp3_bytes[: frames[len(frames) // 2]])


def test_truncated_wav_is_reported():
    data = _encode(render("Rock", duration=1.0, sr=22050), 22050, "WAV")
    with pytest.raises(audio.AudioDecodeError) as info:
        audio.decode(data[: len(data) // 2])
    assert info.value.reason == "truncated"


def test_id3_tag_with_cover_art_is_skipped(mp3_bytes):
    def syncsafe(n):
        return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])

    picture = b"\x00image/jpeg\x00\x03\x00" + bytes(range(256)) * 400
    frame = b"APIC" + struct.pack(">I", len(picture)) + b"\x00\x00" + picture
    tagged = b"ID3\x03\x00\x00" + syncsafe(len(frame)) + frame + mp3_bytes
    np.testing.assert_array_equal(audio.decode(tagged).y, audio.decode(mp3_bytes).y)


def test_unreadable_path(tmp_path):
    with pytest.raises(audio.AudioDecodeError) as info:
        audio.decode(tmp_path / "missing.mp3")
    assert info.value.reason == "unreadable"


@pytest.mark.parametrize("sr", [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000])
def test_mp3_sample_rates_decode_at_native_rate(sr):
    decoded = audio.decode(_encode(render("Pop", duration=1.0, sr=sr), sr, "MP3", channels=1))
    assert decoded.sr == sr
    assert decoded.channels == 1
    assert decoded.analysed_s == pytest.approx(1.0, abs=0.1)


def test_unknown_reason_is_refused():
    with pytest.raises(ValueError, match="unknown reason"):
        audio.AudioDecodeError("broken", "x")


@pytest.mark.parametrize(
    ("mode", "level", "sr"),
    [
        ("CONSTANT", 0.99, 8000),  # about 8 kbps, the lowest
        ("CONSTANT", 0.0, 48000),  # highest: 320 kbps
        ("VARIABLE", 0.5, 44100),
        ("AVERAGE", 0.7, 22050),
    ],
)
def test_cbr_vbr_and_bit_rates_decode_whole(mode, level, sr):
    y = render("Blues", duration=2.0, sr=sr, seed=5)
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="MP3", bitrate_mode=mode, compression_level=level)
    decoded = audio.decode(buf.getvalue())
    assert decoded.sr == sr
    assert decoded.analysed_s == pytest.approx(2.0, abs=0.2)  # encoder padding at 8 kHz
    assert np.max(np.abs(decoded.y)) > 0.1
