"""`mlci export`: put a registered version's model where a server loads it (a KServe
`storageUri`), after the trust check every load makes."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mlci.commands._options import common, json_option


@click.command("export")
@common
@json_option
@click.option("--version", required=True, envvar="MLCI_VERSION",
              help="The registered version to export (env MLCI_VERSION).")
@click.option("--to", "dest", required=True, envvar="MLCI_TO",
              help="Destination folder: a path or an fsspec URL (s3://…, gs://…); "
                   "`{version}` is replaced by the version, as in --kserve-storage-uri "
                   "(env MLCI_TO).")
@click.option("--model", default=None, envvar="MLCI_MODEL",
              help="Registered model name (default: the config's name; env MLCI_MODEL).")
def command(config_path: Path, out_dir: Path, as_json: bool, version: str, dest: str,
            model: str | None) -> int:
    """Copy VERSION's MLflow model folder to --to (checked against the digest training
    recorded, never over other files); exit 2 when refused."""
    from mlci.commands.rollback import optional_config
    from mlci.errors import MlciError
    from mlci.registry import models, tracking
    from mlci.registry.aliases import get_version

    cfg = optional_config(config_path)
    name = model or (cfg.name if cfg is not None else None)
    if not name:
        raise MlciError("no model name: give --model NAME or a config")
    client = tracking.client(cfg, out_dir)
    v = str(get_version(client, name, version).version)
    target = dest.replace("{version}", v)
    try:
        r = models.export(client, name, v, target)
    except (OSError, ValueError, ImportError) as exc:
        raise MlciError(f"--to {target}: {str(exc).splitlines()[0] if str(exc) else exc}") \
            from None
    if as_json:
        click.echo(json.dumps(r))
    else:
        click.echo(f"{'exported' if r['copied'] else 'already at'} {target}: {name}/{v} "
                   f"({r['digest'][:19]}…)")
    return 0
