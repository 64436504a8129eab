"""Progress of long steps, always on stderr so stdout stays the command's result.

On a terminal a step is one line redrawn in place (label, count or bar, detail, elapsed); in
a CI log (not a terminal) it is one line when it ends (`train: done in 3.1s`), plus a line
every `heartbeat` seconds while it lasts, so a log shows where time went without
carriage-return noise. A step that stops on bad input or a failed verdict adds nothing: the
command's own one-line error says it. `MLCI_PROGRESS` overrides the choice: `tty`, `plain` or
`off`.

    with Progress("training") as p:      # or step("training", fn, ...), @stage("training")
        p.update(3, total=10, detail="fold 3")
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")
TTY, PLAIN, OFF = "tty", "plain", "off"


def _said_elsewhere() -> tuple[type[BaseException], ...]:
    import click

    from mlci.errors import VerdictFailed

    return (click.ClickException, click.exceptions.Exit, VerdictFailed, SystemExit)


_SAID_ELSEWHERE = _said_elsewhere()


def mode(stream: IO[str]) -> str:
    forced = os.environ.get("MLCI_PROGRESS", "").strip().lower()
    if forced in (TTY, PLAIN, OFF):
        return forced
    try:
        return TTY if stream.isatty() else PLAIN
    except (AttributeError, ValueError):  # a closed or replaced stream
        return PLAIN


def _secs(s: float) -> str:
    return f"{s:.1f}s" if s < 60 else f"{int(s // 60)}m{int(s % 60):02d}s"


class Progress:
    """One long step; a context manager that reports its start, progress and end."""

    def __init__(self, label: str, total: int | None = None, *, stream: IO[str] | None = None,
                 clock: Callable[[], float] = time.monotonic, heartbeat: float = 30.0,
                 tick: float | None = None) -> None:
        self.label, self.total, self.clock, self.heartbeat = label, total, clock, heartbeat
        self.tick = tick  # on a terminal, redraw the elapsed time this often
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.stream = stream if stream is not None else sys.stderr
        self.mode = mode(self.stream)
        self.done: int | None = None
        self.detail = ""
        self._failed: str | None = None
        self._start = self._said = 0.0

    def _put(self, text: str, end: str = "\n") -> None:
        if self.mode == OFF:
            return
        with self._lock:
            self.stream.write(text + end)
            self.stream.flush()

    def _ticker(self) -> None:
        """A live elapsed time on a terminal; a heartbeat line in a log (long waits show)."""
        every = self.tick if self.mode == TTY else self.heartbeat
        while not self._stop.wait(every):
            if self.mode == TTY:
                self._put("\r\x1b[2K" + self._line(), end="")
            else:
                self._said = self.clock()
                self._put(self._line())

    def _line(self) -> str:
        parts = [self.label]
        if self.done is not None and self.total:
            filled = int(20 * min(self.done, self.total) / self.total)
            parts.append(f"[{'#' * filled}{'.' * (20 - filled)}] {self.done}/{self.total}")
        elif self.done is not None:
            parts.append(str(self.done))
        if self.detail:
            parts.append(self.detail)
        parts.append(_secs(self.clock() - self._start))
        return "  ".join(parts)

    def __enter__(self) -> Progress:
        self._start = self._said = self.clock()
        if self.mode == TTY:
            self._put("\r\x1b[2K" + self._line(), end="")
        if self.tick and self.mode != OFF:
            threading.Thread(target=self._ticker, daemon=True).start()
        return self

    def update(self, done: int | None = None, *, total: int | None = None,
               detail: str = "") -> None:
        if done is not None:
            self.done = done
        if total is not None:
            self.total = total
        self.detail = detail
        if self.mode == TTY:
            self._put("\r\x1b[2K" + self._line(), end="")
        elif self.clock() - self._said >= self.heartbeat:
            self._said = self.clock()
            self._put(self._line())

    def fail(self, why: str) -> None:
        self._failed = why

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        self._stop.set()
        took = _secs(self.clock() - self._start)
        clear = "\r\x1b[2K" if self.mode == TTY else ""
        if self._failed is None and isinstance(exc, _SAID_ELSEWHERE):
            if clear:
                self._put(clear, end="")
            return  # bad input or a failed verdict: its own one line says it all
        why = self._failed or (str(exc).splitlines()[0] if exc is not None and str(exc)
                               else kind.__name__ if kind else None)
        self._put(clear + (f"{self.label}: failed after {took} ({why})" if why
                           else f"{self.label}: done in {took}"))


def step(label: str, fn: Callable[..., R], *args: Any, **kw: Any) -> R:
    """Run `fn(*args, **kw)` as one reported step. Whatever it prints goes to stderr: stdout
    carries the command's own result only (`--json` output stays parseable)."""
    with Progress(label, tick=1.0), contextlib.redirect_stdout(sys.stderr):
        return fn(*args, **kw)


def stage(label: str) -> Callable[[F], F]:
    """Decorate a function so each call is reported as one step named `label`."""
    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, **kw: Any) -> Any:
            with Progress(label):
                return fn(*args, **kw)
        return run  # type: ignore[return-value]
    return wrap
