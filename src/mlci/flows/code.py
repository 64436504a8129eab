"""The code trigger: validate → train → evaluate → report, in one process (imports paid once).

A failed check does not stop the report: the report explains the failure and the result
carries the failing exit code. A usage or input error (exit 2) propagates before the report
is written, so the previous report stays.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import EXIT_VERDICT, VerdictFailed
from mlci.progress import step

if TYPE_CHECKING:
    from mlci.config import Config

INPUTS = ("train", "golden", "expectations")


def load(config_path: Path) -> Config:
    """The config, after pulling DVC-tracked inputs that are missing from the workspace (a
    checkout holds the `.dvc` files, not the data). Every command that reads the data loads
    its config here."""
    from mlci.config import load_config
    from mlci.data import dvc

    draft = load_config(config_path, check_files=False, resolve=False)
    paths = {f"data.{k}": draft.resolve(getattr(draft.data, k)) for k in INPUTS}
    missing = dvc.absent_tracked(paths)
    if missing:
        step("dvc pull " + " ".join(p.name for p in missing.values()), dvc.pull_missing,
             missing, draft.root)
    return load_config(config_path)


@dataclass
class RunResult:
    code: int
    report: str
    heading: str
    validation: dict[str, Any] | None = None
    run: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None
    messages: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


Scope = Callable[[str], AbstractContextManager[object]]


def run(cfg: Config, out_dir: Path, *, baseline: str = "auto", docs: bool = True,
        register: bool = True,
        on_stage: Callable[[str, dict[str, Any]], None] | None = None,
        scope: Scope | None = None) -> RunResult:
    """Run every stage; `on_stage(name, record)` is called after each one that finished, inside
    `scope(name)` around the stage (e.g. a log group of the CI system)."""
    from mlci.data.validate import validate
    from mlci.evaluate import evaluate
    from mlci.registry.tracking import tracking_uri
    from mlci.registry.trust import refuse_untrusted_write
    from mlci.train import train

    if register:  # before any work: a pull request's run must not write to a shared registry
        refuse_untrusted_write("register a model version", store=tracking_uri(cfg, out_dir),
                               out_dir=out_dir)
    notify = on_stage or (lambda name, record: None)
    timings: dict[str, float] = {}

    def stage(name: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        with (scope or _no_scope)(name):
            t = time.perf_counter()
            record = step(name, fn, *args, **kw)
            timings[name] = time.perf_counter() - t
            if name != "report":
                notify(name, record)
        return record

    result = RunResult(0, "", "")
    result.validation = stage("validate", validate, cfg, out_dir, docs=docs)
    blocked = not result.validation["success"] and cfg.validation.block_training
    if blocked:
        result.code = EXIT_VERDICT
    else:
        try:
            result.run = stage("train", train, cfg, out_dir, register=register)
            result.evaluation = stage("evaluate", evaluate, cfg, out_dir, baseline=baseline)
            if result.evaluation["verdict"] != "pass":
                result.code = EXIT_VERDICT
        except VerdictFailed as exc:
            result.messages.append(exc.message)
            result.code = EXIT_VERDICT
    result.report, result.heading = stage("report", write_report, cfg.name, out_dir,
                                          cfg.report.max_chars, cfg.report.title)
    result.seconds = {k: round(v, 3) for k, v in timings.items()}
    return result


def _no_scope(name: str) -> AbstractContextManager[object]:
    return contextlib.nullcontext()


def write_report(cfg_name: str, out_dir: Path, max_chars: int,
                 title: str | None, extra: list[str] | None = None) -> tuple[str, str]:
    """report.md from the stage files, appended to the job summary in CI."""
    from mlci.io import atomic_write_text
    from mlci.report.markdown import build, write_step_summary

    text = build(out_dir, cfg_name, max_chars=max_chars, title=title, extra=extra)
    path = out_dir / "report.md"
    atomic_write_text(path, text)
    write_step_summary(text)
    return str(path), text.splitlines()[0]
