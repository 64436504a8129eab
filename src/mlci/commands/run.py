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
    """Run the code-trigger pipeline and write the report. In GitHub Actions each stage is a
    group of the log; with --json the result carries each stage's own --json record."""
    import json

    from mlci.commands import evaluate, train, validate
    from mlci.flows import code
    from mlci.gha import outputs

    cfg = code.load(config_path)
    grouped = outputs.in_actions()
    stages: dict[str, dict[str, Any]] = {}

    def show(stage: str, record: dict[str, Any]) -> None:
        stages[stage] = (validate.json_result(record, out_dir) if stage == "validate"
                         else train.json_result(record) if stage == "train"
                         else evaluate.json_result(record))
        # stdout carries the one JSON result; a log group is opened on stderr
        err = as_json or grouped
        if stage == "train":
            train.print_trained(record, err=err)
        elif as_json and not grouped:
            return
        elif stage == "validate":
            validate.print_table(record, err=err)
        elif stage == "evaluate":
            evaluate.print_result(record, err=err)

    try:
        res = code.run(cfg, out_dir, baseline=baseline, docs=not no_docs,
                       register=not no_register, on_stage=show,
                       scope=(lambda name: outputs.group(f"mlci {name}")) if grouped else None)
    except Exception:
        if as_json:  # the stages that finished keep their results (the error line follows)
            click.echo(json.dumps({"stages": stages}))
        raise
    for message in res.messages:
        click.echo(f"mlci: {message}", err=True)
    if as_json:
        click.echo(json.dumps({"exit_code": res.code, "report": res.report,
                               "verdict": "fail" if res.code else "pass",
                               "heading": res.heading, "seconds": res.seconds,
                               "stages": stages}))
    else:
        click.echo(f"{res.heading}\nwrote {res.report}")
    if res.code and res.run is None and res.validation and not res.validation["success"]:
        click.echo(f"mlci: data validation failed: {validate.first_failure(res.validation)}",
                   err=True)
    elif res.code:
        click.echo("mlci: " + res.heading.split(": ", 1)[-1], err=True)
    return res.code
