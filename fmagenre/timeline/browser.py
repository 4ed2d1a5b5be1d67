"""Headless Chromium for the timeline pages: screenshots, and the tests' real browser.

Chromium is the system's (Debian's ``chromium`` plays MP3), driven by Playwright for Python
(the ``dev`` extra); Playwright's own browsers are never downloaded. ``FMAGENRE_CHROMIUM``
names another Chromium binary.

``python -m fmagenre.timeline.browser screenshot PAGE.html OUT.png [--at SECONDS]`` saves a
page's screenshot with its playhead at a time (the middle of the track by default).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fmagenre.errors import InputError

#: Where Chromium is looked for when ``FMAGENRE_CHROMIUM`` is not set: a path, then names on PATH.
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
#: Headless flags: no sandbox (root, containers), no GPU, and no background network traffic
#: (on a closed network it floods the log with refused connections).
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
)
#: How long a page may take to load its audio's metadata, in seconds.
METADATA_TIMEOUT_S = 10.0

# What the page shows: its current genre and window, and the audio's duration (None: unknown).
_SHOWN = """() => {
  const audio = document.getElementById("player");
  const text = (id) => { const e = document.getElementById(id); return e ? e.textContent : null; };
  return {
    current_genre: text("current-genre"),
    current_window: text("current-window"),
    time_s: window.genreTimeline ? window.genreTimeline.time() : null,
    audio_duration: audio && isFinite(audio.duration) ? audio.duration : null,
  };
}"""


class BrowserUnavailable(InputError):
    """No headless browser to drive: Chromium or Playwright for Python is missing."""


def find_chromium() -> str:
    """The Chromium binary: ``FMAGENRE_CHROMIUM``, else the first of :data:`CHROMIUM_CANDIDATES`.

    Returns
    -------
    str
        The path of the binary.

    Raises
    ------
    BrowserUnavailable
        When ``FMAGENRE_CHROMIUM`` names no executable, or no candidate is installed.
    """
    named = os.environ.get("FMAGENRE_CHROMIUM")
    if named:
        found = shutil.which(named)
        if found is None:
            raise BrowserUnavailable(f"FMAGENRE_CHROMIUM={named} is not an executable")
        return found
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found is not None:
            return found
    raise BrowserUnavailable(
        "no Chromium found (looked for " + ", ".join(CHROMIUM_CANDIDATES) + "): install it "
        "with 'apt-get install chromium' (or 'make chromium'), or set FMAGENRE_CHROMIUM to "
        "a Chromium binary"
    )


@contextmanager
def chromium() -> Iterator:
    """A headless Chromium (a Playwright ``Browser``), closed on exit.

    Yields
    ------
    playwright.sync_api.Browser
        The system's Chromium, launched with :data:`CHROMIUM_ARGS`.

    Raises
    ------
    BrowserUnavailable
        When Playwright or Chromium is missing.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        raise BrowserUnavailable(
            "Playwright for Python is missing: pip install 'playwright>=1.45,<2' (the dev "
            "extra; its own browsers are not needed)"
        ) from error
    executable = find_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, page_path: str | os.PathLike, *, viewport_width: int = 1100):
    """Open a timeline page and wait for its script and, if it has audio, its metadata.

    Parameters
    ----------
    browser : playwright.sync_api.Browser
        From :func:`chromium`.
    page_path : str or path-like
        The HTML file.
    viewport_width : int
        The page's width in pixels.

    Returns
    -------
    playwright.sync_api.Page
        The loaded page; its audio's metadata are loaded unless it failed or timed out.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = browser.new_page(viewport={"width": viewport_width, "height": 800})
    page.goto(Path(page_path).resolve().as_uri())
    page.wait_for_function(
        '() => !document.getElementById("timeline-data") || document.documentElement.dataset.ready'
    )
    try:
        page.wait_for_function(
            """() => { const a = document.getElementById("player");
                return !a || !a.getAttribute("src") || a.readyState >= 1 || a.error !== null; }""",
            timeout=METADATA_TIMEOUT_S * 1000,
        )
    except PlaywrightTimeout:
        pass  # the timeline works without the audio
    return page


def shown(page) -> dict:
    """What a page shows now: ``current_genre``, ``current_window``, ``time_s``, ``audio_duration``.

    Parameters
    ----------
    page : playwright.sync_api.Page
        From :func:`open_page`.

    Returns
    -------
    dict
        The texts of ``#current-genre`` and ``#current-window``, the playhead's time and the
        audio's duration in seconds (None when unknown).
    """
    return page.evaluate(_SHOWN)


def seek(page, t: float) -> dict:
    """Move a page's playhead (and audio) to ``t`` seconds and return what it shows then.

    Parameters
    ----------
    page : playwright.sync_api.Page
        From :func:`open_page`.
    t : float
        The time, in seconds.

    Returns
    -------
    dict
        As :func:`shown`, once the audio has finished seeking.
    """
    page.evaluate("(t) => window.genreTimeline.seek(t)", t)
    page.wait_for_function('() => !document.getElementById("player").seeking')
    return shown(page)


def screenshot(
    page_path: str | os.PathLike, png_path: str | os.PathLike, *, at_s: float | None = None
) -> dict:
    """Save a PNG of a timeline page with its playhead at ``at_s``.

    Parameters
    ----------
    page_path : str or path-like
        The HTML file (from :func:`fmagenre.timeline.pages.render_page`).
    png_path : str or path-like
        Where to write the PNG (the whole page).
    at_s : float, optional
        The playhead's time in seconds; the middle of the track by default.

    Returns
    -------
    dict
        What the page shows: ``current_genre``, ``current_window``, ``time_s`` and
        ``audio_duration`` (None when the audio could not be loaded).
    """
    with chromium() as browser:
        page = open_page(browser, page_path)
        if page.evaluate("() => !window.genreTimeline"):
            page.screenshot(path=str(png_path), full_page=True)  # an error page
            return shown(page)
        if at_s is None:
            span = 'JSON.parse(document.getElementById("timeline-data").textContent).span_s'
            at_s = page.evaluate(span) / 2
        result = seek(page, float(at_s))
        page.screenshot(path=str(png_path), full_page=True)
        return result


def main(argv: list[str] | None = None) -> int:
    """``python -m fmagenre.timeline.browser screenshot PAGE.html OUT.png [--at SECONDS]``."""
    parser = argparse.ArgumentParser(
        prog="python -m fmagenre.timeline.browser",
        description="Drive a genre-timeline page in the system's headless Chromium.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    shot = commands.add_parser(
        "screenshot", help="save a PNG of a page with its playhead at a time"
    )
    shot.add_argument("page", help="the timeline page (HTML)")
    shot.add_argument("png", help="the PNG to write")
    shot.add_argument(
        "--at", type=float, default=None, metavar="SECONDS", help="playhead time (default: middle)"
    )
    args = parser.parse_args(argv)
    if not Path(args.page).is_file():
        parser.error(f"no such page: {args.page}")
    try:
        result = screenshot(args.page, args.png, at_s=args.at)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(args.png)
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
