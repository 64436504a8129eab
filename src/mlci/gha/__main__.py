"""`python -m mlci.gha <action>`: the one glue every composite action's `run:` calls.

The step's inputs arrive as `MLCI_*` variables (never interpolated into shell code). The row of
`mlci.gha.actions.ACTIONS` for the action says which `mlci` command they become and which step
outputs its JSON result becomes. The command runs as a child of this interpreter
(`-c "from mlci.cli import main; main()"`, not the venv's `bin/mlci`, so a venv restored from a
cache at another path still works), with empty inputs dropped so that defaults apply and
MLCI_TRACKING_URI handed to MLflow as MLFLOW_TRACKING_URI. The exit status is mlci's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlci.gha import env, outputs
from mlci.gha.actions import ACTIONS, Action, config_path

CLI = "from mlci.cli import main; main()"


def child_env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not (k.startswith("MLCI_") and not v.strip())}
    if env.value("TRACKING_URI"):
        e["MLFLOW_TRACKING_URI"] = env.value("TRACKING_URI")
    e.pop("MLCI_TRACKING_URI", None)
    e.pop("MLCI_JSON", None)
    return e


def json_result(text: str) -> dict[str, Any]:
    """The JSON objects among the lines of stdout, merged in order (a later key wins): a
    command's result, or what it finished before an error and the error's own object."""
    merged: dict[str, Any] = {}
    for line in text.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict):
            merged.update(data)
    return merged


def mlci(args: list[str]) -> tuple[int, dict[str, Any]]:
    """Run mlci; stderr passes through, stdout is echoed and its JSON result parsed."""
    p = subprocess.run([sys.executable, "-c", CLI, *args], env=child_env(),
                       stdout=subprocess.PIPE, text=True)
    out = p.stdout.strip()
    if out:
        print(out, flush=True)
    return p.returncode, json_result(out)


def refuse(action: Action, message: str) -> int:
    print(f"mlci: error: {message}", file=sys.stderr)
    if action.error_outputs:
        outputs.set_outputs(action.error_outputs)
    return 2


def run(name: str) -> int:
    action = ACTIONS[name]
    if action.needs_config and not config_path().is_file():
        return refuse(action, f"config not found: {config_path()} (in {Path.cwd()}); set the "
                              "`config` or `working-directory` input")
    try:
        args = action.argv()  # refuses a bad input before any work
    except SystemExit as exc:  # an input the row refused, already explained on stderr
        if action.error_outputs:
            outputs.set_outputs(action.error_outputs)
        return int(exc.code or 2)
    code, result = mlci(args)
    if code >= 2 and action.on_error:
        result = action.on_error(result, mlci)
    values = action.outputs(code, result)
    if values:
        outputs.set_outputs(values)
    if action.summary and action.summary().is_file():
        outputs.append_summary(action.summary().read_text(encoding="utf-8"))
    if code == 1 and action.soft_fail and not env.flag(action.soft_fail, True):
        outputs.warning(f"mlci {name}", str(result.get("summary") or "the check failed")
                        + f" ({action.soft_fail.lower().replace('_', '-')} is off)")
        return 0
    return code


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ACTIONS:
        print(f"python -m mlci.gha: error: expected one of {', '.join(ACTIONS)}",
              file=sys.stderr)
        return 2
    return run(args[0])


if __name__ == "__main__":
    sys.exit(main())
