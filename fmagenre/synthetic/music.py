"""Synthetic music: deterministic signals in styles that differ in timbre, rhythm and harmony.

Used to generate the sample corpus and the benchmark tracks. Each style is a small recipe of
instruments (oscillators, plucked strings, noise drums) playing chord progressions at a tempo;
the styles are separable by the 518 features, as real genres are (less cleanly).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Style:
    """How one synthetic genre sounds."""

    bpm: float
    #: Chord roots as MIDI notes, cycled one per bar.
    roots: tuple[int, ...]
    #: Chord intervals in semitones above the root.
    chord: tuple[int, ...]
    #: Lead/chord timbre: "saw", "square", "sine", "pluck", "organ", "noise".
    timbre: str
    #: Drum pattern per 16th step: "k" kick, "s" snare, "h" hat, "." rest.
    drums: str
    #: Clip level applied to the harmonic part (distortion), 1.0 = none.
    drive: float = 1.0
    #: Level of the bass line (roots two octaves down).
    bass: float = 0.5


STYLES: dict[str, Style] = {
    "Rock": Style(126, (52, 52, 57, 59), (0, 7, 12), "saw", "k.h.s.h.k.k.s.h.", drive=0.25),
    "Electronic": Style(128, (45, 45, 48, 43), (0, 3, 7), "square", "k.h.k.h.k.h.k.hh"),
    "Classical": Style(66, (60, 65, 67, 60), (0, 4, 7, 12), "organ", "", bass=0.3),
    "Hip-Hop": Style(88, (41, 41, 44, 39), (0, 3, 7, 10), "sine", "k..k..s.k.k...s.", bass=0.9),
    "Folk": Style(100, (55, 60, 62, 55), (0, 4, 7), "pluck", "", bass=0.2),
    "Jazz": Style(140, (62, 67, 60, 69), (0, 4, 7, 11, 14), "sine", "h..h.hh..h.hh..h"),
    "Experimental": Style(73, (37, 58, 44, 66), (0, 1, 6, 11), "noise", "k...........h..s"),
    "Pop": Style(104, (60, 67, 69, 65), (0, 4, 7), "square", "k...s...k.k.s...", bass=0.6),
    "Blues": Style(76, (45, 50, 45, 52), (0, 4, 7, 10), "pluck", "k..hs..hk..hs..h", drive=0.6),
    "Country": Style(112, (55, 60, 55, 62), (0, 4, 7, 12), "pluck", "k...s...k...s..."),
}


def _oscillator(timbre: str, phase: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One voice of a timbre from its running phase (in cycles)."""
    frac = phase % 1.0
    if timbre == "saw":
        return 2.0 * frac - 1.0
    if timbre == "square":
        return np.where(frac < 0.5, 1.0, -1.0)
    if timbre == "organ":
        return sum(np.sin(2 * np.pi * k * phase) / k for k in (1, 2, 3, 4, 6))
    if timbre == "noise":
        return np.sin(2 * np.pi * phase + 3.0 * np.sin(2 * np.pi * 2.01 * phase)) + 0.3 * (
            rng.standard_normal(phase.shape)
        )
    return np.sin(2 * np.pi * phase)  # "sine" and "pluck" (shaped by its envelope)


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


def _drum(kind: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    if kind == "k":
        return np.sin(2 * np.pi * (50 * t + 60 * (1 - np.exp(-t * 30)) / 30)) * np.exp(-t * 18)
    noise = rng.standard_normal(n)
    if kind == "s":
        return 0.6 * noise * np.exp(-t * 25) + 0.3 * np.sin(2 * np.pi * 190 * t) * np.exp(-t * 20)
    hat = np.diff(noise, prepend=0.0)  # crude high-pass
    return 0.25 * hat * np.exp(-t * 90)


def render(style: Style | str, *, duration: float, sr: int, seed: int = 0) -> np.ndarray:
    """Render ``duration`` seconds of a style at ``sr`` Hz as float32 in [-1, 1].

    Parameters
    ----------
    style : Style or str
        A :class:`Style` or the name of one in :data:`STYLES`.
    duration : float
        Length in seconds (> 0).
    sr : int
        Sample rate in Hz (>= 4000).
    seed : int
        Seed for the small random variations (transposition, tempo, noise).
    """
    if isinstance(style, str):
        style = STYLES[style]
    if duration <= 0 or sr < 4000:
        raise ValueError(f"need duration > 0 and sr >= 4000, got {duration}, {sr}")
    rng = np.random.default_rng(seed)
    n = round(duration * sr)
    out = np.zeros(n)
    transpose = int(rng.integers(-2, 3))
    bpm = style.bpm * rng.uniform(0.97, 1.03)
    beat = 60.0 / bpm
    bar = round(4 * beat * sr)
    step = bar // 16
    t_bar = np.arange(bar) / sr
    envelope = np.exp(-t_bar * 3.0) if style.timbre == "pluck" else np.minimum(1, t_bar * 50)
    for b, start in enumerate(range(0, n, bar)):
        seg = min(bar, n - start)
        root = style.roots[b % len(style.roots)] + transpose
        chord = np.zeros(seg)
        for k, interval in enumerate(style.chord):
            f = _midi_hz(root + interval) * (1 + 0.002 * k)
            chord += _oscillator(style.timbre, f * t_bar[:seg], rng)
        chord *= envelope[:seg] / len(style.chord)
        if style.drive < 1.0:
            chord = np.clip(chord, -style.drive, style.drive) / style.drive
        bass = np.sin(2 * np.pi * _midi_hz(root - 24) * t_bar[:seg]) * style.bass
        out[start : start + seg] += 0.5 * chord + 0.4 * bass
        for s, hit in enumerate(style.drums):
            pos = start + s * step
            if hit == "." or pos >= n:
                continue
            length = min(n - pos, int(0.25 * sr))
            out[pos : pos + length] += 0.6 * _drum(hit, length, sr, rng)
    out += 0.003 * rng.standard_normal(n)
    return (0.9 * out / max(1e-9, np.max(np.abs(out)))).astype(np.float32)
