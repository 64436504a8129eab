"""`mlci run`: validate → train → evaluate → report in one process (see `mlci.flows.code`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlci.commands._options import BASELINES, common, json_option


@click.command("run")
@common
@json_option
@click.option("--baseline", default="auto", show_default=True, envvar="MLCI_BASELINE",
              shell_complete=BASELINES,
              help="Champion baseline for evaluate: auto | registry | git:<ref> | file:<p> | none.")
@click.option("--no-docs", is_flag=True, envvar="MLCI_NO_DOCS", help="Skip Data Docs HTML.")
@click.option("--no-register", is_flag=True, envvar="MLCI_NO_REGISTER",
              help="Log the run but register no version (pull requests on a shared registry).")
def command(config_path: Path, out_dir: Path, as_json: bool, baseline: str, no_docs: bool,
            no_register: bool) -> int:
    """Run the code-trigger pipeline and write the report."""
    from mlci.commands.evaluate import print_result
    from mlci.commands.train import print_trained
    from mlci.commands.validate import first_failure, print_table
    from mlci.flows import code

    cfg = code.load(config_path)

    def show(stage: str, record: dict[str, Any]) -> None:
        if stage == "train":
            print_trained(record, err=as_json)
        elif as_json:
            return
        elif stage == "validate":
            print_table(record)
        elif stage == "evaluate":
            print_result(record)

    res = code.run(cfg, out_dir, baseline=baseline, docs=not no_docs, register=not no_register,
                   on_stage=show)
    for message in res.messages:
        click.echo(f"mlci: {message}", err=True)
    if as_json:
        import json

        click.echo(json.dumps({"exit_code": res.code, "report": res.report,
                               "verdict": "fail" if res.code else "pass",
                               "heading": res.heading, "seconds": res.seconds}))
    else:
        click.echo(f"{res.heading}\nwrote {res.report}")
    if res.code and res.run is None and res.validation and not res.validation["success"]:
        click.echo(f"mlci: data validation failed: {first_failure(res.validation)}", err=True)
    elif res.code:
        click.echo("mlci: " + res.heading.split(": ", 1)[-1], err=True)
    return res.code
