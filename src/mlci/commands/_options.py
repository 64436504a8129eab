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


def complete_from(*values: str) -> Callable[..., list[str]]:
    """Shell completion for an option whose values are a fixed list plus free forms
    (`--baseline git:<ref>`), so it cannot be a click.Choice."""
    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
        return [v for v in values if v.startswith(incomplete)]

    return complete


ALIASES = complete_from("champion", "challenger", "staging", "candidate")
BASELINES = complete_from("auto", "registry", "none", "git:", "file:")


def docs_url(page: str) -> str:
    """Where a docs page lives, from the installed package's Documentation URL (the wheel
    ships no docs/); empty when the metadata has none."""
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        urls = metadata("mlci").get_all("Project-URL") or []
    except PackageNotFoundError:
        return ""
    docs = [u.split(",", 1)[1].strip() for u in urls if u.lower().startswith("documentation,")]
    return f"{docs[0].rstrip('/')}/{page}" if docs else ""


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
