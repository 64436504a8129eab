"""`mlci history`: the audit trail of alias moves and refusals for a model."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mlci.commands._options import ALIASES, common, json_option
from mlci.commands.rollback import optional_config


@click.command("history")
@common
@json_option
@click.argument("name")
@click.option("--alias", default=None, envvar="MLCI_ALIAS", shell_complete=ALIASES,
              help="Only this alias (env MLCI_ALIAS).")
def command(config_path: Path, out_dir: Path, as_json: bool, name: str, alias: str | None) -> int:
    """Print every promotion, refusal, rollback and canary decision for NAME, oldest first,
    then any move not yet confirmed (pending)."""
    from mlci.registry import audit, tracking
    from mlci.registry.aliases import require_model

    cfg = optional_config(config_path)
    client = tracking.client(cfg, out_dir)
    require_model(client, name)
    exp_id = audit.experiment_id(client, name, out_dir, tracking.tracking_uri(cfg, out_dir),
                                 create=False)
    evs = audit.events(client, exp_id, alias)
    open_ = audit.pending(client, exp_id, alias)
    if as_json:
        click.echo(json.dumps([{**e.to_dict(), "pending": False} for e in evs]
                              + [{**e.to_dict(), "pending": True} for e in open_], indent=2))
        return 0
    if not evs and not open_:
        click.echo(f"no alias moves recorded for {name}")
        return 0
    click.echo(f"{'time (UTC)':<19}  {'action':<8} {'alias':<9} {'move':<9} "
               f"{'actor':<12} {'approver':<12} reason / checks")
    for e in evs:
        move = f"{e.from_version or 'none'}->{e.to_version or 'none'}"
        text = e.reason or ""
        if e.message and e.message != "all checks passed":
            text = f"{text} [{e.message}]" if text else e.message
        click.echo(f"{e.time[:19].replace('T', ' '):<19}  {e.action:<8} {e.alias:<9} {move:<9} "
                   f"{e.actor[:12]:<12} {(e.approver or '-')[:12]:<12} {text}")
        if e.ci_run_url:
            click.echo(f"{'':<21}{e.ci_run_url}")
    for e in open_:
        move = f"{e.from_version or 'none'}->{e.to_version or 'none'}"
        click.echo(f"pending: {e.action} {e.alias} {move} by {e.actor} since {e.time[:19]}Z "
                   "(not confirmed: a move in progress, or one whose process stopped; the "
                   "next promote/rollback/canary command on this model settles it)")
    return 0
