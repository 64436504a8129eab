"""Durations as users write them: `90`, `1.5`, `30s`, `1m`, `1m30s`, `2h`, `250ms`.

A bare number is seconds. Every command, environment variable and action input that takes a
time reads it through `parse_duration`, so `MLCI_BAKE=1m` means the same everywhere.
"""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d)")
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")


def parse_duration(text: str | float | int) -> float:
    """Seconds in `text`; `ValueError` naming the accepted forms when it is not a duration."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        s = str(text).strip().lower().replace(" ", "")
        if _NUMBER.fullmatch(s):
            value = float(s)
        else:
            parts = _PART.findall(s)
            if not parts or "".join(n + u for n, u in parts) != s:
                raise ValueError(f"{text!r} is not a duration (e.g. 30, 30s, 1m, 1m30s, 2h, 250ms)")
            value = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a duration: it must be finite and not negative")
    return value
