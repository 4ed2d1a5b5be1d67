"""Errors a user can fix, and how their messages list names.

Every error whose message tells the user what to change (an option, a configuration, a path,
an input file, an existing output) derives from :class:`InputError`: the job runner
(:mod:`fmagenre.platform.jobs`) prints its first line and exits with status 2. Any layer may
import this module; it imports nothing of fmagenre.
"""

from __future__ import annotations

from collections.abc import Sequence


class InputError(Exception):
    """Input the user must change; the message says what is wrong and what to do."""


def shown_names(names: Sequence[str], limit: int = 10) -> str:
    """The first ``limit`` names, comma-separated, and how many there are when more."""
    names = list(names)
    shown = ", ".join(map(str, names[:limit]))
    return shown + (f" ... ({len(names)} in all)" if len(names) > limit else "")
