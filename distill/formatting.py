"""How numbers read wherever a person sees them (messages, cards, the report): durations, shares, sizes.

One spelling each, so that the run summary, the README cards and the report agree to the character.
"""

from __future__ import annotations

import math
from typing import Any

# A duration reads in seconds up to 90 s, in minutes up to 90 min, in hours beyond.
MINUTES_FROM = 90.0
HOURS_FROM = 5400.0


def duration(seconds: float | None) -> str:
    """A measured time: `42.0 s`, `3.5 min`, `1.2 h`; `-` when unknown."""
    if seconds is None:
        return "-"
    if seconds < MINUTES_FROM:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < HOURS_FROM else f"{seconds / 3600:.1f} h"


def span(lo: float, hi: float) -> str:
    """An estimate as a range people read at a glance: `40-75 s`, `3-5 min`, `1.5-2.5 h`."""
    if hi < MINUTES_FROM:
        return f"{lo:.0f}-{hi:.0f} s" if round(lo) != round(hi) else f"{hi:.0f} s"
    if hi < HOURS_FROM:
        a, b = max(1, round(lo / 60)), max(1, math.ceil(hi / 60))
        return f"{a} min" if a >= b else f"{a}-{b} min"
    return f"{lo / 3600:.1f}-{hi / 3600:.1f} h"


def pct(share: Any, digits: int = 1, missing: str = "-") -> str:
    """A share in [0, 1] as a percentage (`83.7%`); `missing` for anything that is not a number."""
    if isinstance(share, bool) or not isinstance(share, (int, float)):
        return missing
    return f"{100 * share:.{digits}f}%"


def megabytes(n_bytes: float | None) -> str:
    """A file size: `22.9 MB` (10^6 bytes, as file managers show it); `-` when unknown or zero."""
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes else "-"
