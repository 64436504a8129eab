"""`mlci train`: fit, log to MLflow, register the version, set the `candidate` alias."""

from __future__ import annotations

from pathlib import Path

import click

from mlci.commands._options import common, json_option


@click.command("train")
@common
@json_option
@click.option("--skip-validation", is_flag=True, envvar="MLCI_SKIP_VALIDATION",
              help="Train even without a passing validation.json.")
def command(config_path: Path, out_dir: Path, as_json: bool, skip_validation: bool) -> int:
    """Train the configured model and register it as the candidate."""
    from mlci.config import load_config
    from mlci.train import train

    cfg = load_config(config_path)
    rec = train(cfg, out_dir, skip_validation=skip_validation)
    if as_json:
        import json

        click.echo(json.dumps({k: rec[k] for k in ("run_id", "model_uri", "model_version",
                                                   "artifact_uri")}))
    else:
        click.echo(f"registered {rec['model_uri']} (run {rec['run_id']}) as candidate")
    return 0
