"""`mlci validate`: Great Expectations on the training and golden data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlci.commands._options import common, json_option
from mlci.progress import step


def json_result(report: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """What `--json` prints (and `mlci run --json` under `stages.validate`)."""
    return {"success": report["success"], "report": str(out_dir / "validation.json")}


def print_table(report: dict[str, Any], err: bool = False) -> None:
    click.echo(f"{'data':<8} {'rows':>8} {'checks':>7} {'failed':>7}  result", err=err)
    for name, d in report["datasets"].items():
        s = d["statistics"]
        click.echo(f"{name:<8} {d['rows']:>8} {s['evaluated_expectations']:>7} "
                   f"{s['unsuccessful_expectations']:>7}  {'pass' if d['success'] else 'FAIL'}",
                   err=err)
    for name, d in report["datasets"].items():
        for r in d["results"]:
            if not r["success"]:
                where = f"[{r['column']}]" if r["column"] else ""
                detail = r.get("observed") or r.get("error") or \
                    f"unexpected={r.get('unexpected_count')}"
                click.echo(f"  {name}: {r['expectation']}{where} {detail}", err=err)


@click.command("validate")
@common
@json_option
@click.option("--no-docs", is_flag=True, envvar="MLCI_NO_DOCS", help="Skip Data Docs HTML.")
def command(config_path: Path, out_dir: Path, as_json: bool, no_docs: bool) -> int:
    """Validate data; exit 1 when it fails. Writes validation.json and data-docs/."""
    from mlci.data.validate import validate
    from mlci.flows.code import load

    cfg = load(config_path)
    report = step("validate", validate, cfg, out_dir, docs=not no_docs)
    if as_json:
        import json

        click.echo(json.dumps(json_result(report, out_dir)))
    else:
        print_table(report)
    if not report["success"]:
        click.echo(f"mlci: data validation failed: {first_failure(report)}", err=True)
    return 0 if report["success"] else 1


def first_failure(report: dict[str, Any]) -> str:
    """The first failed expectation in one line, with what was observed."""
    from mlci.data.validate import failed_expectations

    failed = failed_expectations(report)
    name, r = failed[0]
    where = f"[{r['column']}]" if r["column"] else ""
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    return f"{name}: {r['expectation']}{where}: {r.get('observed')}{more}"
