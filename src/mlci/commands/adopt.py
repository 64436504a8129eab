"""`mlci adopt`: bring a version registered outside mlci under the gate (see flows.adopt)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mlci.commands._options import common, json_option


@click.command("adopt")
@common
@json_option
@click.option("--version", required=True, envvar="MLCI_VERSION",
              help="The registered version to adopt (env MLCI_VERSION).")
@click.option("--reason", default=None, envvar="MLCI_REASON",
              help="Why; recorded in the audit trail (env MLCI_REASON).")
@click.option("--baseline", default="auto", show_default=True, envvar="MLCI_BASELINE",
              help="What to compare with, as for `mlci evaluate` (env MLCI_BASELINE).")
def command(config_path: Path, out_dir: Path, as_json: bool, version: str,
            reason: str | None, baseline: str) -> int:
    """Validate the data, digest VERSION's files, evaluate it on the golden set and record
    its origin, so the gate can decide on it; audited. Exit 1 when its gate fails."""
    from mlci.flows.adopt import adopt
    from mlci.flows.code import load

    cfg = load(config_path)
    r = adopt(cfg, out_dir, version, reason=reason, baseline=baseline)
    if as_json:
        click.echo(json.dumps(r, default=str))
    else:
        for c in r["checks"]:
            click.echo(f"  [{'pass' if c['passed'] else 'FAIL'}] {c['check']}")
        click.echo(f"adopted {cfg.name}/{r['version']}: validation "
                   f"{'passed' if r['validation'] else 'failed'}, gate {r['verdict']}")
    return 0 if r["verdict"] == "pass" and r["validation"] else 1
