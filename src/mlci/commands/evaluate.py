"""`mlci evaluate`: golden-set metrics, champion comparison, and the gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlci.commands._options import BASELINES, common, json_option
from mlci.progress import step


def json_result(e: dict[str, Any]) -> dict[str, Any]:
    """What `--json` prints (and `mlci run --json` under `stages.evaluate`)."""
    return {"verdict": e["verdict"], "metrics": e["metrics"], "failed": e["failed"]}


def print_result(e: dict[str, Any], err: bool = False) -> None:
    comp = e.get("comparison") or {}
    click.echo(f"baseline: {e['baseline']['label']}", err=err)
    click.echo(f"{'metric':<18} {'candidate':>10} {'champion':>10} {'delta':>9}", err=err)
    for k, v in e["metrics"].items():
        c = comp.get(k) or {}
        champ = c.get("champion")
        delta = c.get("delta")
        click.echo(f"{k:<18} {_f(v):>10} {_f(champ):>10} "
                   f"{f'{delta:+.4f}' if delta is not None else '-':>9}", err=err)
    for c in e["checks"]:
        mark = {True: "pass", False: "FAIL", None: "n/a"}[c["passed"]]
        click.echo(f"  [{mark}] {c['check']}", err=err)
    click.echo(f"verdict: {e['verdict']}", err=err)


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}"


@click.command("evaluate")
@common
@json_option
@click.option("--baseline", default="auto", show_default=True, envvar="MLCI_BASELINE",
              shell_complete=BASELINES,
              help="auto | registry | git:<ref> | file:<path> | none.")
def command(config_path: Path, out_dir: Path, as_json: bool, baseline: str) -> int:
    """Evaluate the candidate; exit 1 when the gate fails."""
    from mlci.evaluate import evaluate
    from mlci.flows.code import load

    cfg = load(config_path)
    e = step("evaluate", evaluate, cfg, out_dir, baseline=baseline)
    if as_json:
        import json

        click.echo(json.dumps(json_result(e)))
    else:
        print_result(e)
    return 0 if e["verdict"] == "pass" else 1
