"""Log-mel patches as stored in the feature table (a minimal stand-in: settings and bytes).

The extraction side of issue 21 (``log_mel_patches``, measured dB range) lands in this module
from its own branch; this stand-in holds only what the network needs, with the same names and
defaults, so that the two merge into one file.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["PatchError", "PatchSettings", "patches_from_bytes", "patches_to_bytes"]

REASONS = ("too_short", "silent")


@dataclass(frozen=True)
class PatchSettings:
    """How log-mel patches are computed and stored."""

    sample_rate: int = 22050
    n_fft: int = 2048
    hop: int = 512
    n_mels: int = 96
    frames: int = 128
    count: int = 16
    db_min: float = -80.0
    db_max: float = 47.5

    def __post_init__(self):
        for name in ("sample_rate", "n_fft", "hop", "n_mels", "frames", "count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.db_min < self.db_max:
            raise ValueError(f"db_min must be below db_max, got {self.db_min}..{self.db_max}")

    @property
    def patch_seconds(self) -> float:
        """Seconds one patch spans (2.97 s at the defaults)."""
        return self.frames * self.hop / self.sample_rate

    @property
    def patch_bytes(self) -> int:
        return self.n_mels * self.frames

    def window_count(self, seconds: float) -> int:
        """Patches of a timeline window of ``seconds``."""
        if not seconds > 0:
            raise ValueError(f"seconds must be more than 0, got {seconds}")
        return max(1, round(seconds / self.patch_seconds))

    def key(self) -> str:
        return (
            f"patches:sr={self.sample_rate},fft={self.n_fft},hop={self.hop},mels={self.n_mels},"
            f"frames={self.frames},count={self.count},db={self.db_min:g}..{self.db_max:g}"
        )

    @classmethod
    def from_key(cls, text: str) -> PatchSettings:
        """The settings of a :meth:`key` found in ``text``; ValueError when there is none."""
        found = re.search(
            r"patches:sr=(\d+),fft=(\d+),hop=(\d+),mels=(\d+),frames=(\d+),count=(\d+),"
            r"db=([-+.\deE]+)\.\.([-+.\deE]+)",
            text or "",
        )
        if found is None:
            raise ValueError(f"no patch settings in {text!r}")
        names = ("sample_rate", "n_fft", "hop", "n_mels", "frames", "count")
        values = dict(zip(names, map(int, found.groups()[:6]), strict=True))
        return cls(**values, db_min=float(found[7]), db_max=float(found[8]))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PatchSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown patch settings {', '.join(unknown)}")
        return cls(**data)


class PatchError(ValueError):
    """Audio that gives no patches; ``reason`` is ``too_short`` or ``silent``."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def patches_to_bytes(array: np.ndarray) -> bytes:
    """uint8 patches ``(n, n_mels, frames)`` as bytes, C order."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim != 3:
        raise ValueError(f"patches are uint8 (n, mels, frames), got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array).tobytes()


def patches_from_bytes(data: bytes, *, settings: PatchSettings) -> np.ndarray:
    """The uint8 patches ``(n, n_mels, frames)`` of :func:`patches_to_bytes`' bytes."""
    size = settings.patch_bytes
    if len(data) % size:
        raise ValueError(f"{len(data)} bytes are not a whole number of {size}-byte patches")
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, settings.n_mels, settings.frames)
