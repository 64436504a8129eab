"""Exit codes and the exceptions that map onto them.

0 done and passed, 1 a verdict failed, 2 usage/config/input error, 3 unexpected internal error.
"""

from __future__ import annotations

import click

EXIT_OK = 0
EXIT_VERDICT = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class MlciError(click.ClickException):
    """A usage, config or input error: one line on stderr, exit 2."""

    exit_code = EXIT_USAGE

    def show(self, file=None) -> None:  # noqa: D102 - one line, no "Usage:" block
        click.echo(f"mlci: error: {self.format_message()}", err=True, file=file)


class VerdictFailed(Exception):
    """A check ran and said no (data invalid, gate failed, promotion refused): exit 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
