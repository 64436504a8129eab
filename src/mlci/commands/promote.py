"""`mlci promote`: move `staging` or `champion` to a version on its recorded evidence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mlci.commands._options import common, complete_from, json_option


def _print(r: dict[str, Any]) -> None:
    for c in r.get("checks", []):
        mark = {True: "pass", False: "FAIL", None: "n/a"}[c["passed"]]
        click.echo(f"  [{mark}] {c['check']}")
    for n in r.get("notes", []):
        click.echo(f"  note: {n}")


def _public(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("version", "alias", "from_version", "changed", "action", "failed",
            "evidence_digest", "event_id", "notes")
    out = {k: r.get(k) for k in keys if k in r}
    out["checks"] = [{"check": c["check"], "passed": c["passed"]} for c in r.get("checks", [])]
    return out


@click.command("promote")
@common
@json_option
@click.option("--to", "alias", required=True, envvar="MLCI_TO", metavar="staging|champion",
              shell_complete=complete_from("staging", "champion"),
              help="Alias to move (case-sensitive) (env MLCI_TO).")
@click.option("--version", "version", default=None, envvar="MLCI_VERSION",
              help="Model version; default: the one in <out>/run.json, else the candidate "
                   "alias (env MLCI_VERSION).")
@click.option("--force", is_flag=True, envvar="MLCI_FORCE",
              help="Move even if a check fails; needs --reason (env MLCI_FORCE).")
@click.option("--reason", default=None, envvar="MLCI_REASON",
              help="Why; recorded in the audit trail (env MLCI_REASON).")
def command(config_path: Path, out_dir: Path, as_json: bool, alias: str, version: str | None,
            force: bool, reason: str | None) -> int:
    """Move a registry alias when validation, the gate and the champion comparison allow it.

    Exit 1 when refused (the failed checks are named), 2 on bad input.
    """
    from mlci.config import load_config
    from mlci.evaluate import rescore
    from mlci.registry.aliases import check_alias
    from mlci.registry.gate import Refused, promote

    check_alias(alias)
    cfg = load_config(config_path)
    try:
        r = promote(cfg, out_dir, alias, version, force=force, reason=reason, rescore=rescore)
    except Refused as exc:
        if as_json:
            click.echo(json.dumps(_public(exc.result)))
        else:
            _print(exc.result)
        raise
    if as_json:
        click.echo(json.dumps(_public(r)))
        return 0
    _print(r)
    name = cfg.name
    if r["changed"]:
        was = f" (was {r['from_version']})" if r["from_version"] else ""
        forced = " by --force" if r.get("action") == "force" else ""
        click.echo(f"moved {name}@{alias} to {r['version']}{was}{forced}")
    else:
        click.echo(f"{name}@{alias} is already {r['version']}; nothing to do")
    return 0
