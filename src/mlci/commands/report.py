"""`mlci report`: report.md from the stage files; appended to the job summary in CI."""

from __future__ import annotations

from pathlib import Path

import click

from mlci.commands._options import common


def write_report(cfg_name: str, out_dir: Path, max_chars: int,
                 title: str | None) -> tuple[str, str]:
    from mlci.io import atomic_write_text
    from mlci.report.markdown import build, write_step_summary

    text = build(out_dir, cfg_name, max_chars=max_chars, title=title)
    path = out_dir / "report.md"
    atomic_write_text(path, text)
    write_step_summary(text)
    return str(path), text.splitlines()[0]


@click.command("report")
@common
def command(config_path: Path, out_dir: Path) -> int:
    """Write report.md (verdict first) and exit 1 when the verdict is a failure."""
    from mlci.config import load_config

    cfg = load_config(config_path, check_files=False)
    path, first = write_report(cfg.name, out_dir, cfg.report.max_chars, cfg.report.title)
    click.echo(f"{first}\nwrote {path}")
    return 0
