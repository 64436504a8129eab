"""What a step tells the job: step outputs, the job summary and annotations."""

from __future__ import annotations

import contextlib
import json
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlci.gha import env


def _text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def heredoc(name: str, text: str) -> str:
    """`name<<DELIM` … `DELIM`, with a random delimiter that does not occur in the value (a
    value holding the delimiter line would end it early and let the rest set other outputs)."""
    while True:
        delim = f"MLCI_EOF_{secrets.token_hex(16)}"
        if delim not in text:
            return f"{name}<<{delim}\n{text}\n{delim}\n"


def set_outputs(values: dict[str, Any]) -> None:
    """Append to $GITHUB_OUTPUT (multiline-safe); outside Actions print them."""
    path = env.github("OUTPUT")
    if not path:
        for k, v in values.items():
            print(f"output {k}={_text(v)}")
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.writelines(heredoc(k, _text(v)) for k, v in values.items())


def append_summary(text: str) -> bool:
    """Append to the job summary unless the same text is already there; False outside Actions."""
    path = env.github("STEP_SUMMARY")
    if not path:
        return False
    p = Path(path)
    if p.is_file() and text.strip() and text.strip() in p.read_text(encoding="utf-8",
                                                                     errors="replace"):
        return True
    with p.open("a", encoding="utf-8") as fh:
        fh.write(text.rstrip("\n") + "\n")
    return True


def _escape(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def warning(title: str, message: str) -> None:
    """A `::warning` annotation on stderr (workflow-command escaped: one line, no injection)."""
    t = _escape(title).replace(":", "%3A").replace(",", "%2C")
    print(f"::warning title={t}::{_escape(message)}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def group(title: str) -> Iterator[None]:
    """A collapsible `::group::` of the log around a block, closed even when it raises (on
    stderr: the stream progress lines take, so the two keep their order)."""
    print(f"::group::{_escape(title)}", file=sys.stderr, flush=True)
    try:
        yield
    finally:
        print("::endgroup::", file=sys.stderr, flush=True)


def in_actions() -> bool:
    return env.github("ACTIONS") == "true"
