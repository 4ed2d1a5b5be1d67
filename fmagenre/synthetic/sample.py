"""A small FMA-shaped corpus, generated deterministically in seconds.

``python -m fmagenre.synthetic.sample OUT_DIR`` writes::

    OUT_DIR/fma_full/000/000002.mp3 ...     # track id zero-padded to 6 digits, folder = first 3
    OUT_DIR/fma_metadata/tracks.csv         # FMA's 3-row header layout
    OUT_DIR/fma_metadata/genres.csv

The audio is synthetic music in ten styles named after FMA top genres (see
:mod:`fmagenre.synthetic.music`), at several sample rates (16 to 48 kHz), mono and stereo, 10-20 s
long.
About 40% of the tracks have an empty ``genre_top`` to be imputed from ``genres_all``; some
carry genres under two roots (a majority or a tie to break), and one has no genre at all.
Five files are bad on purpose: zero bytes, an MP3 cut mid-frame, a text file named ``.mp3``,
digital silence, and a 0.3 s clip (which extracts fine).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from fmagenre.synthetic.metadata_writer import write_fma_metadata
from fmagenre.synthetic.music import STYLES, render

#: FMA's ids of the top-level genres that the synthetic styles imitate.
TOP_GENRES: dict[str, int] = {
    "Blues": 3,
    "Jazz": 4,
    "Classical": 5,
    "Country": 9,
    "Pop": 10,
    "Rock": 12,
    "Electronic": 15,
    "Folk": 17,
    "Hip-Hop": 21,
    "Experimental": 38,
}
#: One sub-genre per top genre: (id, parent, title), FMA's ids.
SUB_GENRES: tuple[tuple[int, int, str], ...] = (
    (25, 12, "Punk"),
    (181, 15, "Techno"),
    (187, 4, "Free-Jazz"),
    (539, 21, "Rap"),
    (49, 17, "Singer-Songwriter"),
    (1, 38, "Avant-Garde"),
    (76, 10, "Experimental Pop"),
    (61, 5, "Symphony"),
)
SAMPLE_RATES = (44100, 44100, 48000, 22050, 32000, 16000)
BITRATES = (320_000, 256_000, 192_000, 128_000, 96_000)


@dataclass(frozen=True)
class SampleTrack:
    """One generated track."""

    track_id: int
    path: Path
    #: Synthetic style, i.e. the true top genre (also for tracks whose genre_top is blank).
    genre: str
    sample_rate: int
    channels: int
    duration: float


@dataclass
class Sample:
    """Where a generated corpus lies and what it holds."""

    root: Path
    tracks: list[SampleTrack] = field(default_factory=list)
    #: Bad files by the error reason they must give ('short' is a clip that extracts fine).
    bad_files: dict[str, Path] = field(default_factory=dict)

    @property
    def audio_dir(self) -> Path:
        return self.root / "fma_full"

    @property
    def metadata_dir(self) -> Path:
        return self.root / "fma_metadata"


def audio_path(audio_dir: Path, track_id: int) -> Path:
    """FMA's layout: ``000/000002.mp3`` for track 2."""
    name = f"{track_id:06d}"
    return audio_dir / name[:3] / f"{name}.mp3"


def _genres_of(
    index: int, style: str, styles: list[str], rng: np.random.Generator
) -> tuple[list[int], bool]:
    """(track genres, whether genre_top is left blank) for the index-th track of a style.

    A second root, when there is one, is another of the generated ``styles``.
    """
    top = TOP_GENRES[style]
    subs = [g for g, parent, _ in SUB_GENRES if parent == top]
    own = [subs[0]] if subs and index % 2 else [top]
    blank = bool(rng.random() < 0.4)
    others = [gid for name, gid in TOP_GENRES.items() if name in styles and name != style]
    if index % 4 == 3 and others:  # a second root: majority stays with the style if it has two
        other = others[index % len(others)]
        own = sorted({top, *own, other}) if subs else [top, other]
    return own, blank


def generate_sample(
    out_dir: str | Path,
    *,
    tracks_per_genre: int = 4,
    min_duration: float = 10.0,
    max_duration: float = 20.0,
    genres: Sequence[str] | None = None,
    seed: int = 0,
) -> Sample:
    """Write the sample corpus under ``out_dir`` and describe it.

    Parameters
    ----------
    out_dir : str or Path
        Created if missing; files already there are overwritten.
    tracks_per_genre : int
        Good tracks per style.
    min_duration, max_duration : float
        Range of track lengths in seconds.
    genres : sequence of str or None
        Styles to generate (keys of :data:`fmagenre.synthetic.music.STYLES`); None for all ten. The
        bad
        files are labelled with the first.
    seed : int
        Same seed, same bytes.
    """
    if tracks_per_genre < 1 or not 0 < min_duration <= max_duration:
        raise ValueError(
            "need tracks_per_genre >= 1 and 0 < min_duration <= max_duration, got "
            f"{tracks_per_genre}, {min_duration}, {max_duration}"
        )
    styles = list(STYLES if genres is None else genres)
    unknown = [name for name in styles if name not in STYLES]
    if unknown or not styles or len(set(styles)) != len(styles):
        raise ValueError(f"genres must be distinct names among {', '.join(STYLES)}, got {styles}")
    rng = np.random.default_rng(seed)
    sample = Sample(Path(out_dir))
    metadata = []
    track_id = 2  # FMA's first track id
    for index in range(tracks_per_genre):
        for style in styles:
            sr = SAMPLE_RATES[(track_id + index) % len(SAMPLE_RATES)]
            channels = 1 + track_id % 2
            duration = float(np.round(rng.uniform(min_duration, max_duration), 2))
            y = render(style, duration=duration, sr=sr, seed=seed * 100_003 + track_id)
            path = audio_path(sample.audio_dir, track_id)
            _write_mp3(path, y, sr, channels)
            sample.tracks.append(SampleTrack(track_id, path, style, sr, channels, duration))
            genres, blank = _genres_of(index, style, styles, rng)
            metadata.append(_track_meta(track_id, style, genres, None if blank else style, rng))
            track_id += int(rng.integers(1, 4))  # FMA's ids have gaps
    # The last good track has no genre at all: the labels job drops it.
    metadata[-1].update(genres=[], genre_top=None)

    bad_ids = {}
    for reason in ("empty", "truncated", "not_audio", "silent", "short"):
        track_id += 1
        bad_ids[reason] = track_id
        sample.bad_files[reason] = audio_path(sample.audio_dir, track_id)
        label = styles[0]
        metadata.append(_track_meta(track_id, label, [TOP_GENRES[label]], label, rng))
    _write_bad_files(sample.bad_files, seed)

    genre_rows = [(gid, 0, title) for title, gid in TOP_GENRES.items()] + list(SUB_GENRES)
    write_fma_metadata(sample.metadata_dir, metadata, genre_rows)
    return sample


def _track_meta(track_id, style, genres, genre_top, rng) -> dict:
    split = rng.choice(["training"] * 8 + ["validation", "test"])
    return {
        "track_id": track_id,
        "title": f"{style} study {track_id}",
        "artist": f"Synth {style} Ensemble",
        "album": f"{style} Sketches",
        "genres": list(genres),
        "genre_top": genre_top,
        "duration": int(rng.integers(10, 21)),
        "bit_rate": int(rng.choice(BITRATES)),
        "split": str(split),
        "subset": str(rng.choice(["small", "medium", "large"])),
    }


def _write_mp3(path: Path, y: np.ndarray, sr: int, channels: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = y if channels == 1 else np.stack([y, np.roll(y, sr // 100) * 0.8], axis=1)
    sf.write(path, data, sr, format="MP3")


def _write_bad_files(bad: dict[str, Path], seed: int) -> None:
    for path in bad.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    bad["empty"].write_bytes(b"")
    bad["not_audio"].write_text("This is not audio, only a text file named .mp3\n" * 20)
    _write_mp3(bad["silent"], np.zeros(22050 * 3, dtype=np.float32), 22050, 1)
    _write_mp3(bad["short"], render("Pop", duration=0.3, sr=44100, seed=seed), 44100, 1)
    whole = bad["truncated"]
    _write_mp3(whole, render("Rock", duration=4.0, sr=44100, seed=seed), 44100, 2)
    data = whole.read_bytes()
    whole.write_bytes(data[: len(data) * 3 // 5 + 7])  # cut inside a frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fmagenre.synthetic.sample",
        description="Write a small FMA-shaped corpus (MP3s + fma_metadata) for trying the jobs.",
    )
    parser.add_argument("out_dir", help="folder to write (created if missing)")
    parser.add_argument("--tracks-per-genre", type=int, default=4, help="default %(default)s")
    parser.add_argument("--min-duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--max-duration", type=float, default=20.0, help="seconds")
    parser.add_argument(
        "--genres",
        metavar="LIST",
        help=f"comma-separated styles to generate, among {', '.join(STYLES)}; default all",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        sample = generate_sample(
            args.out_dir,
            tracks_per_genre=args.tracks_per_genre,
            min_duration=args.min_duration,
            max_duration=args.max_duration,
            genres=args.genres.split(",") if args.genres else None,
            seed=args.seed,
        )
    except ValueError as exc:
        parser.error(str(exc))
    seconds = sum(t.duration for t in sample.tracks)
    print(
        f"wrote {len(sample.tracks)} tracks ({seconds:.0f} s of audio) and "
        f"{len(sample.bad_files)} bad files under {sample.audio_dir}, metadata in "
        f"{sample.metadata_dir} ({time.perf_counter() - start:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
