"""The genre-timeline pages: one self-contained HTML page per song, and an index of them.

A song's page plays its audio over a strip coloured by the genre predicted for each window
of it, shows the window under the playhead (its genre, each model's vote and top scores),
and seeks where the strip is clicked or with the keys (Left/Right or Down/Up: the centre of
the previous/next window, Home/End: the start/end; Space or Enter: play/pause). Everything
is inline (CSS, script, the window data as JSON): the page works offline, from ``file://``
too, in any browser of ES2017.

Windows overlap when the hop is shorter than the window, so "the window under the playhead"
at time ``t`` is defined as the window whose centre ``(start_s + end_s) / 2`` is nearest to
``t``, ties going to the earlier window (the lower index; windows are sorted by start).
:func:`window_at` and the page's script implement that rule identically, and the strip is
coloured by it: each window owns the stretch of time nearer its centre than any other's.

Pure Python: the Spark job that predicts the windows calls :func:`render_page` and
:func:`render_index` with plain values.
"""

from __future__ import annotations

import base64
import colorsys
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from itertools import pairwise
from pathlib import PurePosixPath
from urllib.parse import quote

#: The 16 top-level genres of FMA and their colours (mostly Okabe-Ito's and Paul Tol's
#: colour-blind-safe palettes).
GENRE_COLORS: dict[str, str] = {
    "Blues": "#332288",
    "Classical": "#DDCC77",
    "Country": "#A6761D",
    "Easy Listening": "#88CCEE",
    "Electronic": "#0072B2",
    "Experimental": "#AA4499",
    "Folk": "#117733",
    "Hip-Hop": "#F0E442",
    "Instrumental": "#44AA99",
    "International": "#E69F00",
    "Jazz": "#882255",
    "Old-Time / Historic": "#6F4E37",
    "Pop": "#CC79A7",
    "Rock": "#CC3311",
    "Soul-RnB": "#999933",
    "Spoken": "#BBBBBB",
}
#: The colour of a window without a prediction.
NO_GENRE_COLOR = "#F4F4F4"
#: How many of a model's scores the vote breakdown shows.
TOP_SCORES = 3


def genre_color(genre: str | None) -> str:
    """The colour of ``genre``: FMA's from :data:`GENRE_COLORS`, else one derived from its name.

    Parameters
    ----------
    genre : str or None
        A genre name; None for a window without a prediction.

    Returns
    -------
    str
        ``#RRGGBB``; the same for the same name in every run.
    """
    if genre is None:
        return NO_GENRE_COLOR
    if genre in GENRE_COLORS:
        return GENRE_COLORS[genre]
    digest = hashlib.sha256(genre.encode()).digest()
    hue = int.from_bytes(digest[:2], "big") / 65536
    lightness = 0.38 + digest[2] / 255 * 0.24
    rgb = colorsys.hls_to_rgb(hue, lightness, 0.55)
    return "#" + "".join(f"{round(c * 255):02X}" for c in rgb)


def window_at(windows: Sequence[Mapping], t: float) -> int:
    """The index of the window under the playhead at ``t``: nearest centre, ties to the earlier.

    Parameters
    ----------
    windows : sequence of mapping
        Windows with ``start_s`` and ``end_s``, sorted by start.
    t : float
        Time in the song, in seconds.

    Returns
    -------
    int
        The index in ``windows``; -1 when there is none.
    """
    best, best_distance = -1, math.inf
    for i, window in enumerate(windows):
        distance = abs((window["start_s"] + window["end_s"]) / 2 - t)
        if distance < best_distance:
            best, best_distance = i, distance
    return best


def page_name(track: Mapping) -> str:
    """The file name of a track's page: ``<track_id>.html``, else the file's stem and a hash.

    Parameters
    ----------
    track : mapping
        The track's row: ``track_id`` (int or None) and ``path``.

    Returns
    -------
    str
        A name safe in any file system and URL; without a track id, unique per path.
    """
    if track.get("track_id") is not None:
        return f"{int(track['track_id'])}.html"
    path = str(track["path"])
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePosixPath(path).stem).strip("._-")[:40]
    digest = hashlib.sha256(path.encode()).hexdigest()[:10]
    return f"{stem or 'track'}-{digest}.html"


def audio_url(audio_path: str | os.PathLike, page_dir: str | os.PathLike) -> str:
    """The relative URL of a local audio file for a page written in ``page_dir``.

    Parameters
    ----------
    audio_path, page_dir : str or path-like
        The audio file and the folder of the page.

    Returns
    -------
    str
        A percent-encoded relative URL, for :func:`render_page`'s ``audio_src``.
    """
    relative = os.path.relpath(audio_path, page_dir)
    return quote(relative.replace(os.sep, "/"))


def audio_data_uri(data: bytes, mime: str = "audio/mpeg") -> str:
    """The audio bytes as a ``data:`` URI, to embed the audio in the page itself.

    Parameters
    ----------
    data : bytes
        The encoded audio file.
    mime : str
        Its media type.

    Returns
    -------
    str
        ``data:<mime>;base64,...``.
    """
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def render_page(
    track: Mapping,
    windows: Sequence[Mapping],
    *,
    models: Sequence[str],
    audio_src: str | None,
    neighbours: Sequence[Mapping] | None = None,
) -> str:
    """The HTML page of one track: player, genre strip, current window, votes and summary.

    Parameters
    ----------
    track : mapping
        The track's row: ``track_id``, ``path``, ``status`` ("ok" or "error"), ``error``,
        ``duration_s``, ``genre`` (majority of the windows), ``shares`` (genre to fraction of
        the windows), ``track_genre`` (whole-track prediction), ``n_windows`` and ``model``.
    windows : sequence of mapping
        The windows sorted by start: ``start_s``, ``end_s``, ``genre`` (the ensemble's),
        ``votes`` (model to genre or None) and ``scores`` (model to genre to probability; a
        model without probabilities is absent).
    models : sequence of str
        The ensemble's models, in the order the vote breakdown lists them.
    audio_src : str or None
        The ``src`` of the audio player (a relative URL or a ``data:`` URI); None when the
        page has no audio: the timeline is shown all the same.
    neighbours : sequence of mapping or None
        The track's nearest tracks by rank (``jobs/similar.py``'s rows: ``rank``,
        ``track_id``, ``path``, ``genre``, ``distance``; ``page``: the file name of the
        neighbour's page beside this one, or None), listed under "Tracks like this one";
        None: no such section.

    Returns
    -------
    str
        A self-contained HTML document.
    """
    name = _file_name(track)
    parts = [f"<h1>{escape(name)}</h1>", _track_line(track)]
    if track.get("status") != "ok":
        error = track.get("error") or "unknown error"
        parts.append(
            f'<section id="error" role="alert"><h2>Not analysed</h2>'
            f'<p class="error-text">{escape(str(error))}</p></section>'
        )
        return _document(f"{name}: not analysed", "\n".join(parts))
    windows = [_window(w) for w in windows]
    span = _span(track, windows)
    models = list(dict.fromkeys([*models, *_models_in(windows)]))
    genres = _genres_in(track, windows)
    data = {
        "span_s": span,
        "models": models,
        "colors": {g: genre_color(g) for g in [*GENRE_COLORS, *genres]},
        "no_genre_color": NO_GENRE_COLOR,
        "windows": windows,
    }
    parts += [
        _summary(track),
        _player(track, audio_src),
        _strip(windows, span),
        _now(models, bool(windows)),
        _legend(genres),
        *([] if neighbours is None else [_neighbours(neighbours)]),
        f'<script type="application/json" id="timeline-data">{_json(data)}</script>',
        f"<script>{_SCRIPT}</script>",
    ]
    return _document(f"{name}: genre timeline", "\n".join(parts))


def render_index(tracks: Sequence[Mapping], *, title: str = "Genre timelines") -> str:
    """The index of the tracks' pages: counts, then one row per track, errors included.

    Parameters
    ----------
    tracks : sequence of mapping
        The tracks' rows, as :func:`render_page` takes them, in the order to list them.
    title : str
        The page's title.

    Returns
    -------
    str
        A self-contained HTML document linking to each track's :func:`page_name`.
    """
    n_ok = sum(t.get("status") == "ok" for t in tracks)
    rows = []
    for track in tracks:
        link = f'<a href="{escape(quote(page_name(track)))}">{escape(_file_name(track))}</a>'
        if track.get("track_id") is not None:
            link += f' <span class="id">#{escape(str(track["track_id"]))}</span>'
        if track.get("status") != "ok":
            error = escape(str(track.get("error") or "unknown error"))
            rows.append(
                f'<tr class="error"><td>{link}</td><td colspan="5" class="error-text">'
                f"{error}</td></tr>"
            )
            continue
        genre, shares = track.get("genre"), track.get("shares") or {}
        share = shares.get(genre) if genre is not None else None
        share_text = _percent(share) if share is not None else "—"
        rows.append(
            f'<tr class="ok"><td>{link}</td><td>{_genre_label(genre)}</td>'
            f'<td class="num">{share_text} {_share_bar(shares)}</td>'
            f"<td>{_genre_label(track.get('track_genre'))}</td>"
            f'<td class="num">{escape(str(track.get("n_windows", 0)))}</td>'
            f'<td class="num">{_clock(track.get("duration_s"))}</td></tr>'
        )
    body = (
        f"<h1>{escape(title)}</h1>\n"
        f'<p id="counts"><span id="count-files">{len(tracks)}</span> files: '
        f'<span id="count-ok">{n_ok}</span> ok, '
        f'<span id="count-errors">{len(tracks) - n_ok}</span> errors</p>\n'
        '<table id="tracks"><thead><tr><th>file</th><th>majority of windows</th>'
        "<th>share</th><th>whole track</th><th>windows</th><th>duration</th></tr></thead>\n"
        "<tbody>\n" + "\n".join(rows) + "\n</tbody></table>\n" + _legend(_genres_in_tracks(tracks))
    )
    return _document(title, body)


def _window(window: Mapping) -> dict:
    """The JSON-ready copy of a window."""
    return _plain(
        {
            "start_s": float(window["start_s"]),
            "end_s": float(window["end_s"]),
            "genre": window.get("genre"),
            "votes": window.get("votes") or {},
            "scores": window.get("scores") or {},
        }
    )


def _plain(value):
    """``value`` as JSON values: numpy scalars as Python ones, non-finite floats as None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json(data) -> str:
    """JSON safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` left unescaped."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _span(track: Mapping, windows: Sequence[Mapping]) -> float:
    """The length of the strip: the track's duration, or the end of its last window."""
    duration = track.get("duration_s")
    duration = duration if duration is not None and math.isfinite(duration) else 0.0
    return max([duration, *(w["end_s"] for w in windows)]) or 1.0


def _models_in(windows: Iterable[Mapping]) -> list[str]:
    """Models that vote or score in ``windows``, sorted."""
    return sorted({m for w in windows for m in [*w["votes"], *w["scores"]]})


def _genres_in(track: Mapping, windows: Iterable[Mapping]) -> list[str]:
    """The genres a track's page names, sorted."""
    found = {track.get("genre"), track.get("track_genre"), *(track.get("shares") or {})}
    for w in windows:
        found |= {w["genre"], *w["votes"].values()}
        found |= {g for scores in w["scores"].values() for g in scores}
    return sorted(g for g in found if g is not None)


def _genres_in_tracks(tracks: Iterable[Mapping]) -> list[str]:
    """The genres of the index's rows, sorted."""
    found = set()
    for t in tracks:
        found |= {t.get("genre"), t.get("track_genre"), *(t.get("shares") or {})}
    return sorted(g for g in found if g is not None)


def _cells(windows: Sequence[Mapping], span: float) -> list[tuple[int, float, float]]:
    """``(window, from_s, to_s)``: the stretches of the strip where each window is current.

    The stretches lie between the midpoints of consecutive centres; of windows sharing a
    centre only the earliest ever is current (:func:`window_at`'s tie rule).
    """
    centre = [(w["start_s"] + w["end_s"]) / 2 for w in windows]
    order = sorted(range(len(windows)), key=lambda i: (centre[i], i))
    order = [i for k, i in enumerate(order) if k == 0 or centre[i] != centre[order[k - 1]]]
    bounds = [0.0, *((centre[a] + centre[b]) / 2 for a, b in pairwise(order)), span]
    cells = []
    for i, (lo, hi) in zip(order, pairwise(bounds), strict=False):
        lo, hi = min(max(lo, 0.0), span), min(max(hi, 0.0), span)
        if hi > lo:
            cells.append((i, lo, hi))
    return cells


def _strip(windows: Sequence[Mapping], span: float) -> str:
    """The timeline strip: a focusable slider of coloured stretches and the playhead."""
    cells = []
    for i, lo, hi in _cells(windows, span):
        w = windows[i]
        label = f"{_name(w['genre'])}: window {_seconds(w['start_s'])}–"
        label += f"{_seconds(w['end_s'])} s"
        cells.append(
            f'<div class="cell" data-window="{i}" title="{escape(label)}" style="left:'
            f"{100 * lo / span:.4f}%;width:{100 * (hi - lo) / span:.4f}%;"
            f'background:{genre_color(w["genre"])}"></div>'
        )
    return (
        '<div id="timeline"><div id="strip" role="slider" tabindex="0" '
        'aria-label="Genre timeline (arrow keys: previous or next window)" '
        f'aria-valuemin="0" aria-valuemax="{span:g}" aria-valuenow="0" aria-valuetext="0:00">'
        + "".join(cells)
        + '<div id="playhead" aria-hidden="true"></div></div>'
        f'<div class="axis" aria-hidden="true"><span>0:00</span><span>{_clock(span)}</span>'
        "</div></div>"
    )


def _now(models: Sequence[str], any_window: bool) -> str:
    """The current window's panel, which the script fills: genre, window, votes."""
    empty = "" if any_window else '<p class="note">No window of this track was classified.</p>'

    rows = "".join(
        f'<tr data-model="{escape(m)}"><th scope="row">{escape(m)}</th>'
        '<td class="vote"></td><td class="scores"></td></tr>'
        for m in models
    )
    return (
        f'<section id="now">{empty}<p class="time">at <span id="current-time">0:00</span></p>'
        '<p aria-live="polite"><span class="swatch" id="current-swatch"></span>'
        '<strong id="current-genre"></strong> <span id="current-agreement"></span>'
        ' <span class="muted">window <span id="current-window"></span></span></p>'
        '<table id="votes"><thead><tr><th>model</th><th>vote</th><th>top scores</th></tr>'
        f"</thead><tbody>{rows}</tbody></table>"
        "<noscript><p>The current window needs JavaScript.</p></noscript></section>"
    )


def _summary(track: Mapping) -> str:
    """The track's summary: majority genre and shares, whole-track genre, windows, duration."""
    shares = track.get("shares") or {}
    genre = track.get("genre")
    share = f" ({_percent(shares[genre])} of windows)" if genre in shares else ""
    listed = " · ".join(f"{escape(_name(g))} {_percent(f)}" for g, f in _sorted_shares(shares))
    return (
        '<section id="summary"><dl>'
        f'<div><dt>majority of windows</dt><dd id="majority-genre">{_genre_label(genre)}'
        f"{share}</dd></div>"
        f'<div><dt>whole track</dt><dd id="track-genre">'
        f"{_genre_label(track.get('track_genre'))}</dd></div>"
        f"<div><dt>windows</dt><dd>{escape(str(track.get('n_windows', 0)))}</dd></div>"
        f"<div><dt>duration</dt><dd>{_clock(track.get('duration_s'))}</dd></div></dl>"
        f'{_share_bar(shares, wide=True)}<p class="muted" id="shares">{listed}</p></section>'
    )


def _player(track: Mapping, audio_src: str | None) -> str:
    """The audio player, or the reason why there is none."""
    if audio_src is None:
        return (
            '<audio id="player" controls preload="none"></audio>'
            '<p id="audio-note" class="note">No audio: this page was written without its audio '
            f"file ({escape(str(track.get('path', '')))}). Click the strip or use the arrow "
            "keys to explore the timeline.</p>"
        )
    return (
        f'<audio id="player" controls preload="metadata" src="{escape(audio_src)}"></audio>'
        '<p id="audio-note" class="note" hidden></p>'
    )


def _neighbours(neighbours: Sequence[Mapping]) -> str:
    """The nearest tracks: rank, file (linked to its page where there is one), genre,
    distance."""
    if not neighbours:
        items = '<p class="muted">No indexed track near this one.</p>'
    else:
        rows = []
        for n in sorted(neighbours, key=lambda n: n["rank"]):
            name = escape(_file_name(n))
            if n.get("page"):
                name = f'<a href="{escape(n["page"])}">{name}</a>'
            track = "" if n.get("track_id") is None else f"track {int(n['track_id'])} · "
            rows.append(
                f'<li data-rank="{int(n["rank"])}">{name} <span class="muted">{track}'
                f"distance {float(n['distance']):.3g}</span> {_genre_label(n.get('genre'))}</li>"
            )
        items = f"<ol>{''.join(rows)}</ol>"
    return f'<section id="similar"><h2>Tracks like this one</h2>{items}</section>'


def _legend(genres: Iterable[str]) -> str:
    """FMA's 16 genres and their colours, then the other genres of the page."""
    present = set(genres)
    items = []
    for genre in [*GENRE_COLORS, *sorted(present - set(GENRE_COLORS))]:
        css = ' class="present"' if genre in present else ""
        items.append(f'<li data-genre="{escape(genre)}"{css}>{_genre_label(genre)}</li>')
    return f'<ul id="legend" aria-label="genre colours">{"".join(items)}</ul>'


def _share_bar(shares: Mapping[str, float], *, wide: bool = False) -> str:
    """The shares of the windows' genres as one small stacked bar."""
    parts = "".join(
        f'<span style="width:{100 * f:.3f}%;background:{genre_color(g)}" '
        f'title="{escape(_name(g))} {_percent(f)}"></span>'
        for g, f in _sorted_shares(shares)
    )
    text = ", ".join(f"{_name(g)} {_percent(f)}" for g, f in _sorted_shares(shares))
    css = "bar wide" if wide else "bar"
    return f'<span class="{css}" role="img" aria-label="{escape(text)}">{parts}</span>'


def _sorted_shares(shares: Mapping[str, float]) -> list[tuple[str, float]]:
    """Shares from the largest, then by genre."""
    items = ((g, float(f)) for g, f in shares.items())
    return sorted(items, key=lambda gf: (-gf[1], gf[0] is None, gf[0] or ""))


def _name(genre: str | None) -> str:
    return "no prediction" if genre is None else genre


def _genre_label(genre: str | None) -> str:
    """A colour swatch and the genre's name."""
    if genre is None:
        return '<span class="muted">—</span>'
    return (
        f'<span class="swatch" style="background:{genre_color(genre)}"></span>'
        f'<span class="genre">{escape(genre)}</span>'
    )


def _track_line(track: Mapping) -> str:
    """Track id, path and model under the title."""
    items = []
    if track.get("track_id") is not None:
        items.append(f"track {escape(str(track['track_id']))}")
    items.append(f'<span class="path">{escape(str(track.get("path", "")))}</span>')
    if track.get("model"):
        items.append(f"model {escape(str(track['model']))}")
    return f'<p class="muted">{" · ".join(items)}</p>'


def _file_name(track: Mapping) -> str:
    """The last part of the track's path."""
    path = str(track.get("path", ""))
    return PurePosixPath(path).name or path or "track"


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.0f}%"


def _seconds(seconds: float) -> str:
    """``12.5``, ``10``: as the script writes times of windows."""
    text = f"{seconds:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _clock(seconds: float | None) -> str:
    """``m:ss``; a dash when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:64em;padding:0 1em;
color:#222;background:#fff}
h1{font-size:1.4em;margin:0 0 .2em;overflow-wrap:anywhere}
.muted{color:#666}.path{overflow-wrap:anywhere}.note{color:#8a5a00}.id{color:#666}
.swatch{display:inline-block;width:.9em;height:.9em;border:1px solid #0004;
vertical-align:-.1em;margin-right:.3em;border-radius:2px}
dl{display:flex;flex-wrap:wrap;gap:.4em 2em;margin:.6em 0}dt{font-size:.8em;color:#666}
dd{margin:0;font-weight:600}
.bar{display:inline-flex;width:6em;height:.7em;border:1px solid #0003;vertical-align:middle;
overflow:hidden}.bar.wide{display:flex;width:100%;height:.9em}.bar span{height:100%}
audio{width:100%;margin:.8em 0 .4em}
#strip{position:relative;height:3em;border:1px solid #0005;cursor:pointer;background:#fafafa;
touch-action:none}
#strip:focus-visible,#strip:focus{outline:3px solid #1a73e8;outline-offset:2px}
.cell{position:absolute;top:0;bottom:0}
.cell.current{box-shadow:inset 0 0 0 3px #000a}
#playhead{position:absolute;top:-4px;bottom:-4px;width:3px;margin-left:-1.5px;left:0;
background:#000;box-shadow:0 0 0 1px #fff;pointer-events:none}
.axis{display:flex;justify-content:space-between;font-size:.8em;color:#666}
#now{margin:.8em 0}#now p{margin:.2em 0}#current-genre{font-size:1.3em}
table{border-collapse:collapse;margin:.4em 0}
th,td{text-align:left;padding:.25em .8em .25em 0;border-bottom:1px solid #eee;
vertical-align:top}
td.num{text-align:right;white-space:nowrap}tr.error td{color:#a00}
#error{border-left:4px solid #a00;padding:.2em 1em}.error-text{white-space:pre-wrap}
#legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.3em 1.2em;font-size:.9em;
color:#666}#legend li.present{color:#222;font-weight:600}
"""

# Plain ES2017: no modules, no optional chaining; textContent only (no markup from data).
_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("timeline-data").textContent);
  var windows = data.windows, span = data.span_s;
  var audio = document.getElementById("player");
  var strip = document.getElementById("strip");
  var playhead = document.getElementById("playhead");
  var note = document.getElementById("audio-note");
  var el = function (id) { return document.getElementById(id); };
  var shown = -2, time = 0, rows = {};
  Array.prototype.forEach.call(el("votes").querySelectorAll("tr[data-model]"), function (row) {
    rows[row.getAttribute("data-model")] = row;
  });

  function centre(w) { return (w.start_s + w.end_s) / 2; }
  // The window under the playhead: nearest centre, ties to the earlier (pages.window_at).
  function windowAt(t) {
    var best = -1, bestDistance = Infinity;
    for (var i = 0; i < windows.length; i++) {
      var distance = Math.abs(centre(windows[i]) - t);
      if (distance < bestDistance) { best = i; bestDistance = distance; }
    }
    return best;
  }
  function seconds(x) { return x.toFixed(1).replace(/\.0$/, ""); }
  function clock(x) {
    var s = Math.floor(x), m = Math.floor(s / 60);
    s = s % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }
  function colour(genre) {
    var known = genre !== null && Object.prototype.hasOwnProperty.call(data.colors, genre);
    return known ? data.colors[genre] : data.no_genre_color;
  }
  function label(genre) {
    var box = document.createElement("span"), swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour(genre);
    box.appendChild(swatch);
    box.appendChild(document.createTextNode(genre === null || genre === undefined ? "—" : genre));
    return box;
  }
  function topScores(scores) {
    if (!scores) { return "no scores"; }
    return Object.keys(scores).sort(function (a, b) { return scores[b] - scores[a]; })
      .slice(0, 3).map(function (g) {
        return g + " " + (scores[g] === null ? "?" : Math.round(100 * scores[g]) + "%");
      }).join(" · ");
  }
  function showWindow(i) {
    var cells = strip.querySelectorAll(".cell");
    for (var c = 0; c < cells.length; c++) {
      cells[c].classList.toggle("current", Number(cells[c].getAttribute("data-window")) === i);
    }
    var w = windows[i], genre = w.genre === null ? "no prediction" : w.genre;
    el("current-genre").textContent = genre;
    el("current-swatch").style.background = colour(w.genre);
    el("current-window").textContent = seconds(w.start_s) + "–" + seconds(w.end_s) + " s";
    var agree = 0, n = 0;
    data.models.forEach(function (m) {
      var vote = w.votes[m];
      var row = rows[m];
      if (vote !== undefined) { n += 1; agree += vote === w.genre && vote !== null ? 1 : 0; }
      if (!row) { return; }
      var cell = row.querySelector(".vote");
      cell.textContent = "";
      cell.appendChild(label(vote));
      row.querySelector(".scores").textContent = topScores(w.scores[m]);
    });
    el("current-agreement").textContent = n ? "(" + agree + " of " + n + " votes)" : "";
  }
  function show(t) {
    time = Math.min(Math.max(isFinite(t) ? t : 0, 0), span);
    playhead.style.left = (100 * time / span) + "%";
    el("current-time").textContent = clock(time);
    var i = windowAt(time);
    if (i !== shown && i >= 0) { shown = i; showWindow(i); }
    strip.setAttribute("aria-valuenow", String(Math.round(time * 100) / 100));
    var genre = i >= 0 ? ", " + el("current-genre").textContent : "";
    strip.setAttribute("aria-valuetext", clock(time) + genre);
  }
  // Move there: the audio when it has a source, the display at once (with or without audio).
  function seek(t) {
    t = Math.min(Math.max(t, 0), span);
    if (audio.getAttribute("src")) {
      try { audio.currentTime = isFinite(audio.duration) ? Math.min(t, audio.duration) : t; }
      catch (e) { /* no media yet: the display still moves */ }
    }
    show(t);
  }
  // The centre of the next (step 1) or previous (-1) window; past the last one, the end.
  function neighbour(step) {
    var i = windowAt(time), here = i >= 0 ? centre(windows[i]) : time;
    var target = step > 0 ? span : 0;
    windows.forEach(function (w) {
      var c = centre(w);
      if (step > 0 && c > here && c < target) { target = c; }
      if (step < 0 && c < here && c > target) { target = c; }
    });
    return target;
  }
  strip.addEventListener("click", function (e) {
    var r = strip.getBoundingClientRect();
    seek((e.clientX - r.left) / r.width * span);
  });
  strip.addEventListener("keydown", function (e) {
    var target = null;
    if (e.key === "ArrowRight" || e.key === "ArrowUp") { target = neighbour(1); }
    else if (e.key === "ArrowLeft" || e.key === "ArrowDown") { target = neighbour(-1); }
    else if (e.key === "Home") { target = 0; }
    else if (e.key === "End") { target = span; }
    else if ((e.key === " " || e.key === "Enter") && audio.getAttribute("src")) {
      e.preventDefault();
      if (audio.paused) { audio.play().catch(function () {}); } else { audio.pause(); }
      return;
    }
    if (target === null) { return; }
    e.preventDefault();
    seek(target);
  });
  ["timeupdate", "seeked", "loadedmetadata"].forEach(function (name) {
    audio.addEventListener(name, function () { show(audio.currentTime); });
  });
  function failed() {
    note.hidden = false;
    note.textContent = "The audio could not be played (" +
      (audio.error && audio.error.message ? audio.error.message : "unsupported or missing file") +
      "). Click the strip or use the arrow keys to explore the timeline.";
  }
  audio.addEventListener("error", failed);
  if (audio.error) { failed(); }
  window.genreTimeline = { seek: seek, windowAt: windowAt, time: function () { return time; } };
  show(audio.getAttribute("src") ? audio.currentTime : 0);
  document.documentElement.setAttribute("data-ready", "1");
})();
"""
