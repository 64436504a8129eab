"""`mlci rollback`: put the previous good champion back, now."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mlci.commands._options import common, json_option


def optional_config(config_path: Path):
    """The config when there is one (for `tracking_uri:`); these commands work without it."""
    from mlci.config import load_config

    return load_config(config_path) if config_path.is_file() else None


@click.command("rollback")
@common
@json_option
@click.argument("name")
@click.option("--version", "to", default=None, envvar="MLCI_VERSION",
              help="Version to put back; default: the previous champion in the audit trail "
                   "(env MLCI_VERSION).")
@click.option("--reason", required=True, envvar="MLCI_REASON",
              help="Why; recorded in the audit trail (env MLCI_REASON).")
def command(config_path: Path, out_dir: Path, as_json: bool, name: str, to: str | None,
            reason: str) -> int:
    """Move NAME@champion back to a version that passed its gate; print the version serving."""
    from mlci.registry.gate import Refused, rollback

    cfg = optional_config(config_path)
    try:
        r = rollback(cfg, out_dir, name, to, reason)
    except Refused as exc:
        if as_json:
            click.echo(json.dumps(exc.result))
        raise
    if as_json:
        click.echo(json.dumps({k: r.get(k) for k in ("version", "from_version", "rollback_of",
                                                     "changed", "event_id", "skipped")
                               if k in r}))
    elif r["changed"]:
        click.echo(f"rolled {name}@champion back from {r['from_version']} to {r['version']}")
        if r.get("skipped"):
            click.echo(f"  skipped: {', '.join(r['skipped'])}")
    else:
        click.echo(f"{name}@champion is already {r['version']}; nothing to do")
    return 0
