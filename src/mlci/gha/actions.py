"""The table behind `python -m mlci.gha <action>`: for each composite action, the `mlci`
arguments its inputs (`MLCI_*`) become, and the step outputs its result becomes.

One row per action; the runner in `__main__` is the same for all of them: check the config,
run the command with `--json`, write the outputs (multiline-safe), optionally append a report to
the job summary, and exit with mlci's own status (0 passed, 1 verdict failed, 2 usage or input
error, 3 internal). An input named by `soft_fail` set to 'false' turns exit 1 into a warning.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlci.gha import env, outputs

Result = dict[str, Any]
Runner = Callable[[list[str]], tuple[int, Result]]


def out_dir() -> Path:
    return Path(env.value("OUT", ".mlci"))


def config_path() -> Path:
    return Path(env.value("CONFIG", "mlci.yaml"))


def read(name: str) -> Result:
    try:
        data = json.loads((out_dir() / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def existing(path: Path) -> str:
    return str(path.resolve()) if path.is_file() else ""


def opt(flag: str, name: str) -> list[str]:
    """`[flag, value]` when the input is set, else nothing (the command's default applies)."""
    v = env.value(name)
    return [flag, v] if v else []


def switch(flag: str, name: str) -> list[str]:
    return [flag] if env.flag(name) else []


@dataclass(frozen=True)
class Action:
    argv: Callable[[], list[str]]
    outputs: Callable[[int, Result], Result]
    needs_config: bool = True
    soft_fail: str = ""           # input that, set to 'false', turns exit 1 into a warning
    summary: Callable[[], Path] | None = None  # report appended to the job summary
    error_outputs: Result | None = None        # what the outputs say when mlci cannot start
    # after an error (exit 2 or 3): more work on the result, e.g. the report of what ran
    on_error: Callable[[Result, Runner], Result] | None = None


# ------------------------------------------------------------------------------ rows


def _validate(code: int, d: Result) -> Result:
    if not d:
        return {}
    return {"passed": "true" if d.get("success") else "false",
            "report": str(Path(d.get("report", "")).resolve()) if d.get("report") else ""}


def _train(code: int, d: Result) -> Result:
    if not d:
        return {}
    return {"run-id": d.get("run_id", ""), "model-uri": d.get("model_uri", ""),
            "model-version": str(d.get("model_version") or "")}


def _evaluate(code: int, d: Result) -> Result:
    if not d:
        return {}
    return {"verdict": d.get("verdict", ""), "metrics": d.get("metrics", {}),
            "failed": d.get("failed", [])}


def _report(code: int, d: Result) -> Result:
    return {"report-path": str((out_dir() / "report.md").resolve())} if code == 0 else {}


def _comment(code: int, d: Result) -> Result:
    return {"comment-url": d.get("url", "")} if d else {}


RUN_STAGES = (("validate", _validate), ("train", _train), ("evaluate", _evaluate))
STAGE_OUTPUTS: Result = {"passed": "", "report": "", "run-id": "", "model-uri": "",
                         "model-version": "", "verdict": "", "metrics": "", "failed": ""}


def _run(code: int, d: Result) -> Result:
    """Every stage's outputs, named as the stage's own action names them (the validation's
    `report` is `validation-report`), from the stages that finished: one step gives what the
    validate, train, evaluate and report steps of a step-by-step job give."""
    stages = d.get("stages") or {}
    values = dict(STAGE_OUTPUTS)
    for name, outputs_of in RUN_STAGES:
        values.update(outputs_of(code, stages.get(name) or {}))
    values["validation-report"] = values.pop("report")
    if code not in (0, 1):
        values["verdict"] = "error"
    elif not values["verdict"]:  # validation failed and blocked training
        values["verdict"] = "fail"
    values["report-path"] = str(Path(d["report"]).resolve()) if d.get("report") else ""
    values["exit-code"] = str(code)
    return values


def _report_anyway(d: Result, mlci: Runner) -> Result:
    """A stage stopped on an error: write the report of what ran, as the report step of a
    step-by-step job does (`if: !cancelled()`). A config that cannot load gets none."""
    if d.get("report"):
        return d
    code, _ = mlci(["report"])
    return {**d, "report": str(out_dir() / "report.md")} if code == 0 else d


def _promote_argv() -> list[str]:
    args = ["promote", "--json", "--to", env.value("TO", "staging"), *opt("--version", "VERSION")]
    if env.flag("FORCE"):
        args += ["--force", "--reason", env.value("REASON")]
    return args


def _promote(code: int, d: Result) -> Result:
    return {"version": str(d.get("version", "")), "alias": d.get("alias", "")} if d else {}


def config_name() -> str:
    """`name:` of the config, read as plain YAML (the rollback needs only the model's name)."""
    import yaml

    try:
        cfg = yaml.safe_load(config_path().read_text(encoding="utf-8"))
        return str(cfg["name"])
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        print("mlci: error: no model name: set the `model` input or `name:` in the config",
              file=sys.stderr)
        raise SystemExit(2) from None


def _rollback_argv() -> list[str]:
    return ["rollback", env.value("MODEL") or config_name(), "--json", "--reason",
            env.value("REASON"), *opt("--version", "VERSION")]


def _rollback(code: int, d: Result) -> Result:
    return {"version": str(d.get("version", ""))} if d else {}


def _monitor_report() -> Path:
    return out_dir() / ("watch.md" if env.flag("WATCH") else "monitor.md")


def _monitor_argv() -> list[str]:
    args = ["monitor", "--json", "--window", env.value("WINDOW"), *opt("--since", "SINCE"),
            *switch("--dispatch", "DISPATCH")]
    if env.flag("WATCH"):
        return [*args, "--watch"]
    return [*args, *opt("--export", "EXPORT"), *opt("--source-url", "SOURCE_URL")]


def _monitor(code: int, d: Result) -> Result:
    if not d:
        return {}
    actions = d.get("actions") or []
    return {"drift": "true" if d.get("drifted_columns") else "false",
            "alert": "true" if d.get("alert") else "false",
            "dispatched": "true" if any(str(a).startswith("dispatched ") for a in actions)
            else "false",
            "drifted-columns": d.get("drifted_columns", []),
            "summary": str(d.get("summary", "")),
            "report-path": existing(_monitor_report())}


def _canary(code: int, d: Result) -> Result:
    return {"decision": d.get("decision") or ("error" if code >= 2 else ""),
            "canary-id": d.get("canary_id") or "", "champion": d.get("champion") or "",
            "challenger": d.get("challenger") or "", "summary": d.get("reason") or "",
            "report-path": existing(out_dir() / "canary" / "report.md")}


def _data_update_argv() -> list[str]:
    if not env.value("SOURCE"):
        print("mlci: error: no source: set the `source` input (a workflow_dispatch input, the "
              "repository_dispatch payload's `source`, or a repository variable)",
              file=sys.stderr)
        raise SystemExit(2)
    return ["data", "update", "--json", "--push" if env.flag("PUSH", True) else "--no-push"]


def _data_update(code: int, d: Result) -> Result:
    for w in d.get("warnings") or []:  # an annotation on the run, not a line lost in the log
        outputs.warning("mlci data update", w)
    report = d.get("report") or ""
    drifted = d.get("drifted_columns") or []
    if code == 1 and not drifted:  # a refusal's JSON carries no drift; the record keeps it
        drifted = (read("data_update.json").get("drift") or {}).get("drifted_columns") or []
    return {"status": d.get("status") or "error",
            "model-version": str(d.get("model_version") or ""),
            "drifted-columns": drifted,
            "report-path": str(Path(report).resolve()) if report else ""}


DATA_UPDATE_ERROR: Result = {"status": "error", "model-version": "", "drifted-columns": [],
                             "report-path": ""}

ACTIONS: dict[str, Action] = {
    "validate": Action(lambda: ["validate", "--json", *switch("--no-docs", "NO_DOCS")],
                       _validate),
    "train": Action(lambda: ["train", "--json"], _train),
    "evaluate": Action(lambda: ["evaluate", "--json", "--baseline", env.value("BASELINE", "auto")],
                       _evaluate, soft_fail="FAIL_ON_GATE"),
    "report": Action(lambda: ["report"], _report),
    "comment": Action(lambda: ["comment", "--json"], _comment, needs_config=False),
    "run": Action(lambda: ["run", "--json", "--baseline", env.value("BASELINE", "auto"),
                           *switch("--no-docs", "NO_DOCS")], _run, on_error=_report_anyway),
    "promote": Action(_promote_argv, _promote),
    "rollback": Action(_rollback_argv, _rollback),
    "monitor": Action(_monitor_argv, _monitor, soft_fail="FAIL_ON_ALERT",
                      summary=_monitor_report),
    "canary": Action(lambda: ["canary", "run", "--json"], _canary,
                     error_outputs={"decision": "error"}),
    "data-update": Action(_data_update_argv, _data_update, error_outputs=DATA_UPDATE_ERROR),
}
