"""Benchmark the code trigger as the workflows run it, against `mlci run` on Iris.

A workflow runs each action's glue, `python -m mlci.gha <action>`, as a fresh interpreter with
the action's inputs as `MLCI_*` variables. Two shapes:

  steps        the step-by-step actions: validate, train, evaluate, report (each a cold
               interpreter), then the report action's job-summary step (`comment`)
  one-process  the root action, as code.yml and the example workflows run it: `run` (every
               stage in one interpreter, outputs per stage), then its job-summary step

Each is paired with `mlci run` (shape, run, shape, run, ...) in one copy of examples/iris, so
every ratio compares runs made under the same machine load; the median of the pairs is quoted.
A third table lists the heavy libraries each stage's process imports (`python -X importtime`).

    python bench/workflow.py              # 5 pairs per shape (about 3 minutes on 2 cores)
    python bench/workflow.py --quick      # 1 pair per shape (CI smoke run)
    python bench/workflow.py --once SHAPE DIR   # one run of SHAPE (or mlci-run) in a fresh DIR,
                                                # for an outside timer
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHAPES = {"steps": ["validate", "train", "evaluate", "report", "comment"],
          "one-process": ["run", "comment"]}
# the heavy imports a stage may or may not need (seconds each in a fresh interpreter)
HEAVY = ("great_expectations", "mlflow", "sklearn", "pandas", "matplotlib")
TARGET = 1.15
REFERENCE = "mlci-run"


def action_env(root: Path) -> dict[str, str]:
    """The variables the actions' `env:` blocks set (inputs at their defaults), a job summary
    and an output file as the runner gives them, and nothing of this shell's CI or MLflow."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "MLFLOW_", "MLCI_"))}
    env.update({"MLCI_CONFIG": "mlci.yaml", "MLCI_OUT": ".mlci", "MLCI_NO_DOCS": "false",
                "MLCI_BASELINE": "auto", "MLCI_TRACKING_URI": "", "MLCI_FAIL_ON_GATE": "true",
                "MLCI_POSTER": "summary", "MLCI_POST_TO": "summary", "MLCI_TITLE": "",
                "MLCI_PUBLISH_IMAGES": "false", "MLCI_BODY": "", "MLCI_PROGRESS": "plain",
                "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(root / "github_output"),
                "GITHUB_STEP_SUMMARY": str(root / "step_summary")})
    return env


def run_shape(shape: str, root: Path) -> int:
    """From a fresh checkout, each step of `shape` as its own process, in order (the report
    steps run whatever happened before: `if: !cancelled()`), or `mlci run` for the reference.
    Returns the first non-zero exit code."""
    fresh(root)
    env = action_env(root)
    if shape == REFERENCE:
        return subprocess.run([str(BIN / "mlci"), "run"], cwd=root, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    first = 0
    for action in SHAPES[shape]:
        p = subprocess.run([sys.executable, "-m", "mlci.gha", action], cwd=root, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first = first or p.returncode
    return first


def wall(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return time.perf_counter() - t


def fresh(root: Path) -> None:
    """A checkout as a job sees it: no .mlci/, empty output and summary files."""
    shutil.rmtree(root / ".mlci", ignore_errors=True)
    for name in ("github_output", "step_summary"):
        (root / name).write_text("", encoding="utf-8")


def once(shape: str, root: Path) -> list[str]:
    """This script run with --once: the same launcher for a shape and for `mlci run`."""
    return [sys.executable, __file__, "--once", shape, str(root)]


def pairs(shape: str, root: Path, reps: int) -> list[str]:
    env = action_env(root)
    runs, shapes, ratios = [], [], []
    for _ in range(reps):
        shapes.append(wall(once(shape, root), root, env))
        runs.append(wall(once(REFERENCE, root), root, env))
        ratios.append(shapes[-1] / runs[-1])
    return [shape, str(reps), f"{statistics.median(shapes):.2f}", f"{statistics.median(runs):.2f}",
            f"{statistics.median(ratios):.2f}x", f"{max(ratios):.2f}x",
            f"≤ {TARGET:.2f}x" if shape == "one-process" else "-"]


def imported(action: str, root: Path) -> list[str]:
    """The heavy libraries the process of `mlci <stage> --json` (as the glue calls it) imports."""
    argv = {"validate": ["validate", "--json"], "train": ["train", "--json"],
            "evaluate": ["evaluate", "--json", "--baseline", "auto"], "report": ["report"],
            "comment": ["comment", "--json"], "run": ["run", "--json"]}[action]
    env = action_env(root)
    for k in [k for k in env if k.startswith("MLCI_") and not env[k]]:
        del env[k]
    p = subprocess.run([sys.executable, "-X", "importtime", "-c",
                        "from mlci.cli import main; main()", *argv], cwd=root, env=env,
                       capture_output=True, text=True)
    cumulative: dict[str, float] = {}
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line[13:]:
            continue
        _, cum, name = (s.strip() for s in line[12:].split("|"))
        if name in HEAVY and cum.isdigit():
            cumulative[name] = int(cum) / 1e6
    return [f"{m} {cumulative[m]:.1f}" for m in HEAVY if m in cumulative] or ["-"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one pair per shape")
    ap.add_argument("--once", nargs=2, metavar=("SHAPE", "DIR"),
                    help="run SHAPE once in DIR and exit with its status")
    a = ap.parse_args()
    if a.once:
        sys.exit(run_shape(a.once[0], Path(a.once[1])))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _tables import table

    reps = 1 if a.quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "iris"
        shutil.copytree(REPO / "examples/iris", root, ignore=shutil.ignore_patterns(".mlci"))
        wall(once(REFERENCE, root), root, action_env(root))  # warm the page cache
        rows = [pairs(shape, root, reps) for shape in SHAPES]
        table("The code trigger as the workflows run it, against `mlci run` on Iris "
              "(wall s, medians of interleaved pairs, a fresh .mlci/ each run)",
              ["shape", "pairs", "workflow", "mlci run", "ratio", "max ratio", "target"], rows,
              note="steps: the validate, train, evaluate and report actions one after another "
                   "(a job composed of the stage actions; code.yml and mlci-steps.yml ran so "
                   "before); one-process: the root action (code.yml, mlci-steps.yml, "
                   "mlci-one-step.yml).")
        import_rows = []
        for action in ("validate", "train", "evaluate", "report", "comment", "run"):
            if action in ("validate", "run"):  # each sequence starts from a fresh checkout
                fresh(root)
            import_rows.append([action, ", ".join(imported(action, root))])
        table("Heavy imports per process (cumulative s, `python -X importtime`)",
              ["process", "imports"], import_rows,
              note="Nested: a library imported by another one counts inside it too.")


if __name__ == "__main__":
    main()
