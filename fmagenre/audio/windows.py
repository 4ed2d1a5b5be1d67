"""Windows of a signal: the rule that cuts a track into successive, possibly overlapping parts.

Windows of ``window`` seconds start every ``hop`` seconds from the start, as long as they fit;
when audio remains after the last one, one more window ends at the track's end, so that every
sample is covered; a track no longer than one window is one window, the whole track. For a
track of ``d`` seconds longer than ``window`` there are ``ceil((d - window) / hop) + 1``
windows; window ``k`` starts at ``min(k * hop, d - window)``. Bounds are whole samples.
"""

from __future__ import annotations

import math


def check_window(window: float, hop: float) -> None:
    """Raise ValueError unless ``0 < hop <= window``."""
    if not window > 0:
        raise ValueError(f"window must be more than 0 seconds, got {window}")
    if not 0 < hop <= window:
        raise ValueError(f"hop must be more than 0 and at most the window ({window} s), got {hop}")


def window_bounds(n_samples: int, sr: int, *, window: float, hop: float) -> list[tuple[int, int]]:
    """``(start, stop)`` sample indices of each window of ``n_samples`` samples at ``sr`` Hz.

    Raises
    ------
    ValueError
        When ``hop`` is not in ``(0, window]`` or there are no samples.
    """
    check_window(window, hop)
    if n_samples < 1:
        raise ValueError(f"no samples to cut into windows (n_samples={n_samples})")
    size, step = max(1, round(window * sr)), max(1, round(hop * sr))
    if n_samples <= size:
        return [(0, n_samples)]
    last = n_samples - size
    count = math.ceil(last / step) + 1
    return [(min(k * step, last), min(k * step, last) + size) for k in range(count)]


def window_count(duration_s: float, *, window: float, hop: float) -> int:
    """Windows of a track of ``duration_s`` seconds (to the nearest sample of the rule)."""
    check_window(window, hop)
    if duration_s <= window:
        return 1
    return math.ceil((duration_s - window) / hop - 1e-9) + 1
