"""Self-contained HTML reports: sections of text, tables and PNG plots embedded as base64.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no
global state), so reports can be built on a headless driver.
"""

from __future__ import annotations

import base64
import html
import io

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGE_PREFIX = "data:image/png;base64,"

_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 90%; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: .2em .6em; text-align: right; }
img { max-width: 100%; }
.note { color: #666; }
"""


def new_figure(width: float = 8.0, height: float = 4.5) -> Figure:
    """A figure of ``width`` x ``height`` inches on the Agg canvas."""
    if width <= 0 or height <= 0:
        raise ValueError(f"figure size must be positive, got {width} x {height}")
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure: Figure, *, dpi: int = 100) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


class HtmlReport:
    """An HTML document built section by section; :meth:`render` gives the whole page.

    Parameters
    ----------
    title : str
        Page title and first heading.
    """

    def __init__(self, title: str):
        if not title:
            raise ValueError("a report needs a title")
        self.title = title
        self._sections: list[tuple[str, list[str]]] = []

    def section(self, heading: str) -> None:
        """Start a section (an ``<h2>``, listed in the table of contents)."""
        self._sections.append((heading, []))

    def _add(self, block: str) -> None:
        if not self._sections:
            raise ValueError("start a section before adding content")
        self._sections[-1][1].append(block)

    def text(self, text: str, *, note: bool = False) -> None:
        """A paragraph of plain text; ``note`` greys it (for what could not be shown)."""
        css = ' class="note"' if note else ""
        self._add(f"<p{css}>{html.escape(text)}</p>")

    def table(self, frame: pd.DataFrame, *, float_format: str = "{:,.3f}") -> None:
        """A pandas DataFrame as a table (index shown when it is named)."""
        self._add(
            frame.to_html(
                index=frame.index.name is not None,
                float_format=float_format.format,
                border=0,
                na_rep="",
            )
        )

    def image(self, png: bytes, *, alt: str) -> None:
        """PNG bytes embedded as a base64 ``data:`` URI."""
        if not png.startswith(PNG_SIGNATURE):
            raise ValueError("image data is not a PNG")
        data = base64.b64encode(png).decode("ascii")
        self._add(f'<img src="{IMAGE_PREFIX}{data}" alt="{html.escape(alt)}">')

    def figure(self, figure: Figure, *, alt: str) -> None:
        """A matplotlib figure, embedded as PNG."""
        self.image(png_bytes(figure), alt=alt)

    def render(self) -> str:
        """The page: title, table of contents, then the sections in order."""
        title = html.escape(self.title)
        toc = "".join(
            f'<li><a href="#s{i}">{html.escape(heading)}</a></li>'
            for i, (heading, _) in enumerate(self._sections, start=1)
        )
        body = "".join(
            f'<h2 id="s{i}">{html.escape(heading)}</h2>\n' + "\n".join(blocks) + "\n"
            for i, (heading, blocks) in enumerate(self._sections, start=1)
        )
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{title}</title><style>{_STYLE}</style></head>\n<body>\n<h1>{title}</h1>\n"
            f"<ul>{toc}</ul>\n{body}</body></html>\n"
        )
