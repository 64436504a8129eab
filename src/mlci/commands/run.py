"""`mlci run`: validate → train → evaluate → report in one process (imports paid once).

A failed check does not stop the report: the report explains the failure, then the command
exits with the failing code.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from mlci.commands._options import common, json_option
from mlci.errors import EXIT_VERDICT, VerdictFailed


@click.command("run")
@common
@json_option
@click.option("--baseline", default="auto", show_default=True, envvar="MLCI_BASELINE",
              help="Champion baseline for evaluate: auto | registry | git:<ref> | file:<p> | none.")
@click.option("--no-docs", is_flag=True, envvar="MLCI_NO_DOCS", help="Skip Data Docs HTML.")
@click.option("--no-register", is_flag=True, envvar="MLCI_NO_REGISTER",
              help="Log the run but register no version (pull requests on a shared registry).")
def command(config_path: Path, out_dir: Path, as_json: bool, baseline: str, no_docs: bool,
            no_register: bool) -> int:
    """Run the code-trigger pipeline and write the report."""
    from mlci.commands.evaluate import print_result
    from mlci.commands.report import write_report
    from mlci.commands.validate import print_table
    from mlci.config import load_config

    cfg = load_config(config_path)
    timings: dict[str, float] = {}
    code = 0
    t = time.perf_counter()
    from mlci.data.validate import validate

    report = validate(cfg, out_dir, docs=not no_docs)
    timings["validate"] = time.perf_counter() - t
    if not as_json:
        print_table(report)
    if not report["success"]:
        code = EXIT_VERDICT
    else:
        try:
            t = time.perf_counter()
            from mlci.registry.trust import refuse_untrusted_write
            from mlci.train import train

            if not no_register:
                refuse_untrusted_write("register a model version")
            rec = train(cfg, out_dir, register=not no_register)
            timings["train"] = time.perf_counter() - t
            click.echo(f"registered {rec['model_uri']} as candidate" if rec["model_version"]
                       else f"logged {rec['model_uri']} (not registered)")
            t = time.perf_counter()
            from mlci.evaluate import evaluate

            e = evaluate(cfg, out_dir, baseline=baseline)
            timings["evaluate"] = time.perf_counter() - t
            if not as_json:
                print_result(e)
            if e["verdict"] != "pass":
                code = EXIT_VERDICT
        except VerdictFailed as exc:
            click.echo(f"mlci: {exc.message}", err=True)
            code = EXIT_VERDICT
    # A usage or input error (exit 2) propagates before this point: the previous report stays.
    t = time.perf_counter()
    path, first = write_report(cfg.name, out_dir, cfg.report.max_chars, cfg.report.title)
    timings["report"] = time.perf_counter() - t
    if as_json:
        import json

        click.echo(json.dumps({"exit_code": code,
                               "report": path, "verdict": "fail" if code else "pass",
                               "heading": first,
                               "seconds": {k: round(v, 3) for k, v in timings.items()}}))
    else:
        click.echo(f"{first}\nwrote {path}")
    if code:
        click.echo("mlci: " + first.split(": ", 1)[-1], err=True)
    return code
