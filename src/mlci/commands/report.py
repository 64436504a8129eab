"""`mlci report`: report.md from the stage files; appended to the job summary in CI."""

from __future__ import annotations

from pathlib import Path

import click

from mlci.commands._options import common


def metrics_diff_section(ref: str, root: Path) -> list[str]:
    """`dvc metrics diff <ref> --md`: the DVC pipeline's view of the change against a branch."""
    from mlci.data import dvc

    table = dvc.run(["metrics", "diff", ref, "--md"], cwd=root).strip()
    return [f"### Metrics against `{ref}` (dvc metrics diff)", "",
            table or "_No metric changed._", ""]


@click.command("report")
@common
@click.option("--metrics-diff", "metrics_ref", default=None, envvar="MLCI_METRICS_DIFF",
              help="Add `dvc metrics diff REF --md` (DVC pipeline mode), e.g. main.")
def command(config_path: Path, out_dir: Path, metrics_ref: str | None) -> int:
    """Write report.md (verdict first) and append it to the job summary; exit 0 (the
    verdict's exit code belongs to the stage that failed)."""
    from mlci.config import load_config
    from mlci.flows.code import write_report

    cfg = load_config(config_path, check_files=False, resolve=False)
    extra = metrics_diff_section(metrics_ref, cfg.root) if metrics_ref else None
    path, first = write_report(cfg.name, out_dir, cfg.report.max_chars, cfg.report.title, extra)
    click.echo(f"{first}\nwrote {path}")
    return 0
