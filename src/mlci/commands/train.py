"""`mlci train`: fit, log to MLflow, register the version, set the `candidate` alias."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlci.commands._options import common, json_option
from mlci.progress import step


def json_result(rec: dict[str, Any]) -> dict[str, Any]:
    """What `--json` prints (and `mlci run --json` under `stages.train`)."""
    return {k: rec[k] for k in ("run_id", "model_uri", "model_version", "artifact_uri")}


def print_trained(rec: dict[str, Any], err: bool = False) -> None:
    for note in (rec.get("preprocessing") or {}).get("notes") or []:
        click.echo(f"mlci: preprocessing: {note}", err=True)
    click.echo(f"registered {rec['model_uri']} (run {rec['run_id']}) as candidate"
               if rec["model_version"] else f"logged {rec['model_uri']} (not registered)",
               err=err)


@click.command("train")
@common
@json_option
@click.option("--skip-validation", is_flag=True, envvar="MLCI_SKIP_VALIDATION",
              help="Train even without a passing validation.json.")
@click.option("--no-register", is_flag=True, envvar="MLCI_NO_REGISTER",
              help="Log the run but register no version (pull requests on a shared registry).")
def command(config_path: Path, out_dir: Path, as_json: bool, skip_validation: bool,
            no_register: bool) -> int:
    """Train the configured model and register it as the candidate."""
    from mlci.flows.code import load
    from mlci.train import train

    cfg = load(config_path)
    if not no_register:
        from mlci.registry.tracking import tracking_uri
        from mlci.registry.trust import refuse_untrusted_write

        refuse_untrusted_write("register a model version", store=tracking_uri(cfg, out_dir),
                               out_dir=out_dir)
    rec = step("train", train, cfg, out_dir, skip_validation=skip_validation,
               register=not no_register)
    if as_json:
        import json

        click.echo(json.dumps(json_result(rec)))
    else:
        print_trained(rec)
    return 0
