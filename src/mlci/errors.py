"""Exit codes and the exceptions that map onto them.

0 done and passed, 1 a verdict failed, 2 usage/config/input error, 3 unexpected internal error.
"""

from __future__ import annotations

import re

import click

EXIT_OK = 0
EXIT_VERDICT = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^\s/@:]*)"
                       r"(?P<pw>:[^\s/@]*)?@")


def redact(text: str) -> str:
    """`text` with the credentials of any URL in it hidden: `scheme://user:***@host`
    (a bare `scheme://token@host` becomes `scheme://***@host`). Tracking URIs carry
    passwords, and errors end up in CI logs."""
    def hide(m: re.Match) -> str:
        user = f"{m['user']}:***" if m["pw"] is not None else "***"
        return f"{m['scheme']}{user}@"

    return _USERINFO.sub(hide, text)


class MlciError(click.ClickException):
    """A usage, config or input error: one line on stderr, exit 2."""

    exit_code = EXIT_USAGE

    def show(self, file=None) -> None:  # noqa: D102 - one line, no "Usage:" block
        click.echo(f"mlci: error: {redact(self.format_message())}", err=True, file=file)


class VerdictFailed(Exception):
    """A check ran and said no (data invalid, gate failed, promotion refused): exit 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none)."""
    s = str(exc).strip()
    return s.splitlines()[0] if s else type(exc).__name__


# -- what an MLflow error means (no MLflow import: these read the exception's fields) --------

_ALIAS_NOT_FOUND = re.compile(r"alias \S+ not found", re.IGNORECASE)


def mlflow_code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", "") or "")


def is_absent(exc: BaseException) -> bool:
    """Only RESOURCE_DOES_NOT_EXIST means "not there" (and MLflow's SQLite store answers a
    missing alias with INVALID_PARAMETER_VALUE "Registered model alias X not found").
    PERMISSION_DENIED, timeouts and server errors are errors, never an absence."""
    code = mlflow_code(exc)
    if "RESOURCE_DOES_NOT_EXIST" in code:
        return True
    return "INVALID_PARAMETER_VALUE" in code and bool(_ALIAS_NOT_FOUND.search(str(exc)))


def registry_error(what: str, exc: BaseException) -> MlciError:
    code = mlflow_code(exc) or type(exc).__name__
    return MlciError(f"cannot read {what} from the registry ({code}: {first_line(exc)}); "
                     "nothing was changed")
