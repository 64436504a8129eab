"""Durations as people write them in workflow files: `90`, `30s`, `1m`, `1h30m`, `1.5h`.

A bare number is seconds. Used for MLCI_COMMENT_MAX_WAIT; the shared parser the other commands
use can replace it without changing what is accepted."""

from __future__ import annotations

import re

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str) -> float:
    """Seconds in `text`; ValueError naming the text when it is not a duration."""
    s = text.strip().lower().replace(" ", "")
    try:
        value = float(s)
    except ValueError:
        pass
    else:
        if value < 0 or value != value:
            raise ValueError(f"not a duration: {text!r} (a negative or NaN number)")
        return value
    pos, total = 0, 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise ValueError(f"not a duration: {text!r} (write 90, 30s, 1m or 1h30m)")
    return total
