"""Glue between the composite actions and the `mlci` CLI.

Each action's shell step is two lines: `install.sh` prints the venv's interpreter, and that
interpreter runs this file with the action's name. Inputs arrive as `MLCI_*` environment
variables (never interpolated into shell code); this file turns them into `mlci` arguments,
runs the command with `--json`, and writes the step outputs to `$GITHUB_OUTPUT`.

The CLI is started as `<venv python> -c "from mlci.cli import main; main()"`, not through the
venv's `bin/mlci` script, so a venv restored from a cache at another path still works.

Exit status is mlci's own (0 passed, 1 verdict failed, 2 usage/input error, 3 internal).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

CLI = "from mlci.cli import main; main()"


def env(name: str, default: str = "") -> str:
    return os.environ.get(f"MLCI_{name}", "").strip() or default


def truthy(name: str, default: str = "false") -> bool:
    return env(name, default).lower() in ("1", "true", "yes", "on")


def child_env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not (k.startswith("MLCI_") and not v.strip())}
    if env("TRACKING_URI"):
        e["MLFLOW_TRACKING_URI"] = env("TRACKING_URI")
    e.pop("MLCI_TRACKING_URI", None)
    e.pop("MLCI_JSON", None)
    return e


def mlci(*args: str) -> tuple[int, dict[str, Any] | None]:
    """Run mlci; stderr passes through, stdout is echoed and parsed as JSON when it is."""
    p = subprocess.run([sys.executable, "-c", CLI, *args], env=child_env(),
                       stdout=subprocess.PIPE, text=True)
    out = p.stdout.strip()
    if out:
        print(out, flush=True)
    data = None
    for line in reversed(out.splitlines()):
        try:
            data = json.loads(line)
            break
        except ValueError:
            continue
    return p.returncode, data if isinstance(data, dict) else None


def set_outputs(values: dict[str, Any]) -> None:
    path = os.environ.get("GITHUB_OUTPUT")
    lines = []
    for k, v in values.items():
        text = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
        delim = f"MLCI_EOF_{uuid.uuid4().hex}"
        lines.append(f"{k}<<{delim}\n{text}\n{delim}\n")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.writelines(lines)
    else:
        for k, v in values.items():
            print(f"output {k}={v}")


def out_dir() -> Path:
    return Path(env("OUT", ".mlci"))


def read(name: str) -> dict[str, Any]:
    p = out_dir() / name
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def do_validate() -> int:
    code, data = mlci("validate", "--json", *(["--no-docs"] if truthy("NO_DOCS") else []))
    if data:
        set_outputs({"passed": "true" if data.get("success") else "false",
                     "report": str(Path(data.get("report", "")).resolve())})
    return code


def do_train() -> int:
    code, data = mlci("train", "--json")
    if data:
        set_outputs({"run-id": data.get("run_id", ""), "model-uri": data.get("model_uri", ""),
                     "model-version": str(data.get("model_version") or "")})
    return code


def do_evaluate() -> int:
    code, data = mlci("evaluate", "--json", "--baseline", env("BASELINE", "auto"))
    if data:
        set_outputs({"verdict": data.get("verdict", ""), "metrics": data.get("metrics", {}),
                     "failed": data.get("failed", [])})
    if code == 1 and not truthy("FAIL_ON_GATE", "true"):
        print("::warning title=mlci evaluate::the gate failed (fail-on-gate is off)")
        return 0
    return code


def do_report() -> int:
    code, _ = mlci("report")
    if code == 0:
        set_outputs({"report-path": str((out_dir() / "report.md").resolve())})
    return code


def do_comment() -> int:
    code, data = mlci("comment", "--json")
    if data:
        set_outputs({"comment-url": data.get("url", "")})
    return code


def do_run() -> int:
    code, data = mlci("run", "--json", "--baseline", env("BASELINE", "auto"))
    evaluation, run = read("evaluation.json"), read("run.json")
    report = out_dir() / "report.md"
    verdict = evaluation.get("verdict", "fail") if code in (0, 1) else "error"
    if code == 0 and not evaluation:
        verdict = "fail"
    set_outputs({"verdict": verdict, "run-id": run.get("run_id", ""),
                 "model-version": str(run.get("model_version") or ""),
                 "report-path": str(report.resolve()) if report.is_file() else "",
                 "exit-code": str(code)})
    return code


def do_promote() -> int:
    args = ["promote", "--json", "--to", env("TO", "staging")]
    if env("VERSION"):
        args += ["--version", env("VERSION")]
    if truthy("FORCE"):
        args += ["--force", "--reason", env("REASON")]
    code, data = mlci(*args)
    if data:
        set_outputs({"version": str(data.get("version", "")), "alias": data.get("alias", "")})
    return code


def do_rollback() -> int:
    name = env("MODEL") or _config_name()
    args = ["rollback", name, "--json", "--reason", env("REASON")]
    if env("VERSION"):
        args += ["--version", env("VERSION")]
    code, data = mlci(*args)
    if data:
        set_outputs({"version": str(data.get("version", ""))})
    return code


def do_monitor() -> int:
    watching = truthy("WATCH")
    args = ["monitor", "--json", "--window", env("WINDOW")]
    if env("SINCE"):
        args += ["--since", env("SINCE")]
    if truthy("DISPATCH"):
        args.append("--dispatch")
    if watching:
        args.append("--watch")
    else:
        if env("EXPORT"):
            args += ["--export", env("EXPORT")]
        if env("SOURCE_URL"):
            args += ["--source-url", env("SOURCE_URL")]
    code, data = mlci(*args)
    report = out_dir() / ("watch.md" if watching else "monitor.md")
    if data:
        actions = data.get("actions") or []
        set_outputs({"drift": "true" if data.get("drifted_columns") else "false",
                     "alert": "true" if data.get("alert") else "false",
                     "dispatched": "true" if any(str(a).startswith("dispatched ")
                                                 for a in actions) else "false",
                     "drifted-columns": data.get("drifted_columns", []),
                     "summary": str(data.get("summary", "")),
                     "report-path": str(report.resolve()) if report.is_file() else ""})
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary and report.is_file():
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(report.read_text(encoding="utf-8") + "\n")
    if code == 1 and not truthy("FAIL_ON_ALERT", "true"):
        print("::warning title=mlci monitor::" + str((data or {}).get("summary", "alert"))
              .replace("\n", " "))
        return 0
    return code


def _config_name() -> str:
    import yaml

    try:
        cfg = yaml.safe_load(Path(env("CONFIG", "mlci.yaml")).read_text(encoding="utf-8"))
        return str(cfg["name"])
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        print("mlci: error: no model name: set the `model` input or `name:` in the config",
              file=sys.stderr)
        raise SystemExit(2) from None


ACTIONS = {"validate": do_validate, "train": do_train, "evaluate": do_evaluate,
           "report": do_report, "comment": do_comment, "run": do_run, "promote": do_promote,
           "rollback": do_rollback, "monitor": do_monitor}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ACTIONS:
        print(f"action.py: error: expected one of {', '.join(ACTIONS)}", file=sys.stderr)
        return 2
    if not Path(os.environ.get("MLCI_CONFIG") or "mlci.yaml").is_file() \
            and argv[0] != "comment":
        print(f"mlci: error: config not found: {env('CONFIG', 'mlci.yaml')} "
              f"(in {Path.cwd()}); set the `config` or `working-directory` input",
              file=sys.stderr)
        return 2
    return ACTIONS[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
