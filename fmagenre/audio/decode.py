"""Decode audio files or bytes to mono float32 at the file's native sample rate.

soundfile (libsndfile, whose wheels carry MP3 support) decodes MP3, WAV, FLAC and OGG with no
ffmpeg. Formats it cannot read (AAC/M4A, WMA...) go to audioread when it and ffmpeg are
installed. Every failure raises :class:`AudioDecodeError` with a machine-readable ``reason``:

``empty``
    zero bytes.
``truncated``
    the file ends inside an MP3 frame, or holds fewer MP3 frames than its Xing/Info header
    declares, or fewer WAV bytes than its data chunk declares.
``not_audio``
    no known audio signature and libsndfile does not recognise it (a text file named .mp3).
``unsupported_format``
    an audio container that this machine has no decoder for (install ffmpeg).
``corrupt``
    recognised, but the decoder failed or produced no samples.
``unreadable``
    the path could not be read.

Long files are protected by ``max_duration``: only the first ``max_duration`` seconds are
decoded (and analysed); :class:`DecodedAudio` reports both the true and the analysed duration.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

#: Default cap on the analysed duration, in seconds. FMA's full tracks average 270 s and the
#: longest run for about 3 hours; 10 minutes keeps one extraction under 1 GiB of memory.
DEFAULT_MAX_DURATION = 600.0

REASONS = ("empty", "truncated", "not_audio", "unsupported_format", "corrupt", "unreadable")


class AudioDecodeError(ValueError):
    """Audio that cannot be decoded; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str):
        if reason not in REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class DecodedAudio:
    """A decoded signal and what is known about its source."""

    #: Mono samples, float32, at ``sr``.
    y: np.ndarray
    #: Native sample rate in Hz.
    sr: int
    #: Duration of the whole file in seconds.
    duration_s: float
    #: Seconds decoded into ``y`` (at most the ``max_duration`` cap).
    analysed_s: float
    #: Channels in the file (``y`` is their mean).
    channels: int
    #: Container detected from the first bytes: mp3, wav, flac, ogg, aiff, mp4... or "unknown".
    format: str


def sniff_format(head: bytes) -> str:
    """Container of a file from its first bytes ("unknown" when nothing matches)."""
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:4] == b"\x30\x26\xb2\x75":
        return "wma"
    return "unknown"


# MPEG audio frame header tables: bitrates in kbit/s by (version is MPEG-1, layer), rates in Hz.
_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_frame(data: bytes, pos: int) -> tuple[int, int] | None:
    """(frame length in bytes, samples per frame) of a valid MPEG audio header at ``pos``."""
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return None
    b1, b2 = data[pos + 1], data[pos + 2]
    version, layer_bits = (b1 >> 3) & 3, (b1 >> 1) & 3
    bitrate_idx, rate_idx, padding = b2 >> 4, (b2 >> 2) & 3, (b2 >> 1) & 1
    if version == 1 or layer_bits == 0 or bitrate_idx in (0, 15) or rate_idx == 3:
        return None
    layer = 4 - layer_bits
    mpeg1 = version == 3
    bitrate = _BITRATES[(mpeg1, layer)][bitrate_idx] * 1000
    rate = _RATES[version][rate_idx]
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4, 384
    if layer == 3 and not mpeg1:
        return 72 * bitrate // rate + padding, 576
    return 144 * bitrate // rate + padding, 1152


def _declared_frames(data: bytes, pos: int) -> int | None:
    """Frame count of a Xing/Info (LAME) or VBRI header in the frame at ``pos``, if any."""
    frame = data[pos : pos + 200]
    for tag in (b"Xing", b"Info"):
        at = frame.find(tag)
        if at > 0 and at + 12 <= len(frame):
            flags = struct.unpack(">I", frame[at + 4 : at + 8])[0]
            if flags & 1:
                return struct.unpack(">I", frame[at + 8 : at + 12])[0]
            return None
    at = frame.find(b"VBRI")
    if at > 0 and at + 18 <= len(frame):
        return struct.unpack(">I", frame[at + 14 : at + 18])[0]
    return None


def check_mp3_integrity(data: bytes) -> str | None:
    """Why an MP3 stream is truncated, or None when its frames are whole.

    Walks the frame headers from the first frame after any ID3v2 tag. A final frame that runs
    past the end of the data, or fewer frames than a Xing/Info/VBRI header declares, means the
    file was cut. Junk between frames is skipped, as decoders do.
    """
    pos = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
        pos = 10 + size + (10 if data[5] & 0x10 else 0)
    end = len(data)
    if data[end - 128 : end - 125] == b"TAG":
        end -= 128
    frames, declared = 0, None
    first = True
    while pos < end:
        frame = _mp3_frame(data, pos)
        if frame is None:
            nxt = data.find(b"\xff", pos + 1, end)
            if nxt < 0:
                break  # trailing junk or tags
            pos = nxt
            continue
        length, _ = frame
        if pos + length > end:
            if first:
                return None  # a lone sync-like byte pair, not a frame: let the decoder judge
            return f"the last MP3 frame needs {pos + length - end} more bytes than the file has"
        if first:
            declared = _declared_frames(data, pos)
            first = False
            if declared is not None:
                pos += length
                continue  # the info frame itself carries no audio
        frames += 1
        pos += length
    if declared is not None and frames < declared:
        return f"{frames} MP3 frames where the header declares {declared}"
    return None


def _check_wav_integrity(data: bytes) -> str | None:
    """Why a WAV file is truncated (data chunk larger than the bytes present), or None."""
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if chunk == b"data":
            have = len(data) - pos - 8
            if size != 0xFFFFFFFF and have < size:
                return f"the WAV data chunk declares {size} bytes but {have} are present"
            return None
        pos += 8 + size + (size & 1)
    return None


def _read_source(source: str | os.PathLike | bytes) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise AudioDecodeError("unreadable", f"{source}: {exc.strerror or exc}") from exc


def _decode_soundfile(data: bytes, max_frames_s: float) -> tuple[np.ndarray, int, int, int]:
    """(samples (n, channels) float32, sample rate, total frames, channels) via libsndfile."""
    with sf.SoundFile(io.BytesIO(data)) as f:
        sr, channels, total = f.samplerate, f.channels, f.frames
        want = total if max_frames_s <= 0 else min(total, round(max_frames_s * sr))
        samples = f.read(frames=want, dtype="float32", always_2d=True)
    return samples, sr, total, channels


def _decode_audioread(data: bytes, max_duration: float) -> tuple[np.ndarray, int, int, int]:
    """Fallback through audioread (ffmpeg) for containers libsndfile does not read."""
    import audioread

    with tempfile.NamedTemporaryFile(suffix=".audio") as tmp:
        tmp.write(data)
        tmp.flush()
        with audioread.audio_open(tmp.name) as f:
            sr, channels = f.samplerate, f.channels
            limit = None if max_duration <= 0 else int(max_duration * sr) * channels
            chunks, got = [], 0
            for buf in f:
                chunk = np.frombuffer(buf, dtype="<i2")
                chunks.append(chunk)
                got += chunk.size
                if limit is not None and got >= limit:
                    break
            total = round(f.duration * sr)
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype="<i2")
    if limit is not None:
        pcm = pcm[:limit]
    samples = (pcm.astype(np.float32) / 32768.0).reshape(-1, channels)
    return samples, sr, max(total, samples.shape[0]), channels


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Mean of the channels of an (n, channels) array, as ``librosa.to_mono`` computes it."""
    if samples.shape[1] == 1:
        return np.ascontiguousarray(samples[:, 0])
    return np.mean(samples, axis=1, dtype=np.float32)


def decode(
    source: str | os.PathLike | bytes, *, max_duration: float = DEFAULT_MAX_DURATION
) -> DecodedAudio:
    """Decode a file or its bytes to mono float32 at the native sample rate.

    Parameters
    ----------
    source : str, path-like or bytes
        A local path, or the whole file's bytes (what Spark's binary file source gives).
    max_duration : float
        Decode at most this many seconds from the start; 0 or less decodes everything.

    Returns
    -------
    DecodedAudio

    Raises
    ------
    AudioDecodeError
        With ``reason`` saying why (see the module documentation).
    """
    data = _read_source(source)
    if not data:
        raise AudioDecodeError("empty", "the file has zero bytes")
    fmt = sniff_format(data[:16])
    problem = {"mp3": check_mp3_integrity, "wav": _check_wav_integrity}.get(fmt)
    why = problem(data) if problem else None
    if why:
        raise AudioDecodeError("truncated", why)
    try:
        samples, sr, total, channels = _decode_soundfile(data, max_duration)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        message = getattr(exc, "error_string", None) or str(exc)
        if fmt in ("mp4", "wma", "unknown") and _has_ffmpeg():
            try:
                samples, sr, total, channels = _decode_audioread(data, max_duration)
            except Exception as fallback:  # audioread raises many unrelated types
                raise AudioDecodeError(
                    "not_audio" if fmt == "unknown" else "corrupt",
                    f"neither libsndfile ({message}) nor ffmpeg ({fallback}) could decode it",
                ) from fallback
        elif fmt == "unknown":
            raise AudioDecodeError(
                "not_audio", f"no audio signature and libsndfile says: {message}"
            ) from exc
        elif fmt in ("mp4", "wma"):
            raise AudioDecodeError(
                "unsupported_format",
                f"{fmt} needs ffmpeg, which is not installed: install ffmpeg or convert to MP3",
            ) from exc
        else:
            raise AudioDecodeError("corrupt", f"{fmt} decoder failed: {message}") from exc
    if samples.shape[0] == 0:
        raise AudioDecodeError("corrupt", f"{fmt} file decoded to zero samples")
    y = to_mono(samples)
    return DecodedAudio(
        y=y,
        sr=int(sr),
        duration_s=float(max(total, y.size)) / sr,
        analysed_s=y.size / sr,
        channels=int(channels),
        format=fmt,
    )


def _has_ffmpeg() -> bool:
    try:
        import audioread  # noqa: F401
    except ImportError:
        return False
    return shutil.which("ffmpeg") is not None
