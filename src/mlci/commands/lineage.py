"""`mlci lineage`: where a registered model version came from."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mlci.commands._options import common, json_option
from mlci.commands.rollback import optional_config


@click.command("lineage")
@common
@json_option
@click.argument("ref", metavar="NAME@ALIAS|NAME/VERSION")
@click.option("--md", "as_md", is_flag=True, envvar="MLCI_MD",
              help="Print the markdown block the PR report embeds (env MLCI_MD).")
def command(config_path: Path, out_dir: Path, as_json: bool, ref: str, as_md: bool) -> int:
    """Commit, data hashes, validation, evaluation, CI run, approval and rollback of a version.

    Also writes <out>/lineage.json.
    """
    from mlci.errors import MlciError
    from mlci.io import atomic_write_json
    from mlci.registry import audit, tracking
    from mlci.registry.lineage import lineage, parse_ref, to_markdown, to_text

    if as_json and as_md:
        raise MlciError("give at most one of --json and --md")
    name, _, _ = parse_ref(ref)
    cfg = optional_config(config_path)
    client = tracking.client(cfg, out_dir)
    uri = tracking.tracking_uri(cfg, out_dir)
    exp_id = audit.experiment_id(client, name, out_dir, uri, create=False)
    d = lineage(client, ref, exp_id, uri)
    atomic_write_json(out_dir / "lineage.json", d)
    if as_json:
        click.echo(json.dumps(d, indent=2))
    elif as_md:
        click.echo(to_markdown(d), nl=False)
    else:
        click.echo(to_text(d), nl=False)
    return 0
