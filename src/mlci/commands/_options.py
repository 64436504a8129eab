"""Options shared by the commands. Every option can also come from MLCI_<OPTION>."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def config_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-c", "--config", "config_path", default="mlci.yaml", show_default=True,
        envvar="MLCI_CONFIG", type=click.Path(dir_okay=False, path_type=Path),
        help="Path of mlci.yaml (env MLCI_CONFIG).",
    )(f)


def out_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--out", "out_dir", default=".mlci", show_default=True, envvar="MLCI_OUT",
        type=click.Path(file_okay=False, path_type=Path),
        help="Folder for the files mlci writes (env MLCI_OUT).",
    )(f)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--json", "as_json", is_flag=True, envvar="MLCI_JSON",
        help="Print a machine-readable result (env MLCI_JSON).",
    )(f)


def common(f: Callable[..., Any]) -> Callable[..., Any]:
    return config_option(out_option(f))


class Duration(click.ParamType):
    """A duration option (`30`, `30s`, `1m`, `1m30s`, `2h`); the value is in seconds."""

    name = "duration"

    def __init__(self, minimum: float = 0.0) -> None:
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        from mlci.durations import parse_duration

        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if seconds < self.minimum:
            self.fail(f"{value!r} is shorter than the minimum of {self.minimum:g}s", param, ctx)
        return seconds
