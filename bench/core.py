"""Benchmark the core CLI: `mlci --help`, `mlci run` on Iris per stage, import costs,
and (with --venv) the size and install time of a fresh venv against a by-hand install.

    python bench/core.py            # CLI and pipeline timings
    python bench/core.py --venv     # also build two venvs (slow: minutes)
    python bench/core.py --quick    # one repetition each (CI smoke run)

Prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tables import table  # noqa: E402 - beside this script

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def wall(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if p.returncode not in (0, 1):
        raise SystemExit(f"{cmd} failed: {p.stderr}")
    return time.perf_counter() - t, p.stdout


def import_cost(module: str) -> float:
    code = f"import time; t=time.perf_counter(); import {module}; print(time.perf_counter()-t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())



def bench_cli(reps: int) -> None:
    times = [wall([str(BIN / "mlci"), "--help"], REPO)[0] for _ in range(reps)]
    table("`mlci --help`", ["runs", "median s", "max s", "target"],
          [[str(reps), f"{statistics.median(times):.3f}", f"{max(times):.3f}", "≤ 0.3 s"]])


def bench_run(reps: int) -> None:
    rows = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLFLOW_"))}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "iris"
        shutil.copytree(REPO / "examples/iris", root, ignore=shutil.ignore_patterns(".mlci"))
        for i in range(reps + 1):
            total, out = wall([str(BIN / "mlci"), "run", "--json"], root, env)
            rec = json.loads(out.strip().splitlines()[-1])
            s = rec["seconds"]
            label = "first (creates the store)" if i == 0 else f"repeat {i}"
            rows.append([label, *(f"{s.get(k, 0):.2f}" for k in
                                  ("validate", "train", "evaluate", "report")),
                         f"{total:.2f}"])
    table("`mlci run` on Iris (wall seconds; target ≤ 10 s)",
          ["run", "validate", "train", "evaluate", "report", "total wall"], rows)
    mods = ["click", "pandas", "sklearn", "great_expectations", "mlflow", "matplotlib.pyplot"]
    table("Import cost (fresh interpreter, seconds)", ["module", "s"],
          [[m, f"{import_cost(m):.2f}"] for m in mods])


FLOOR = "import mlflow, great_expectations, sklearn, pandas"


def bench_floor(reps: int) -> None:
    """`mlci run` against the bare import of the libraries it cannot do without, run in turn
    (floor, run, floor, run, ...) so each ratio pairs runs made under the same machine load."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLFLOW_"))}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "iris"
        shutil.copytree(REPO / "examples/iris", root, ignore=shutil.ignore_patterns(".mlci"))
        for label, fresh in (("first (creates the store)", True), ("repeat", False)):
            ratios, runs, floors = [], [], []
            for _ in range(reps):
                if fresh:
                    shutil.rmtree(root / ".mlci", ignore_errors=True)
                f, _ = wall([sys.executable, "-c", FLOOR], root, env)
                r, _ = wall([str(BIN / "mlci"), "run"], root, env)
                floors.append(f)
                runs.append(r)
                ratios.append(r / f)
            rows.append([label, str(reps), f"{statistics.median(runs):.2f}",
                         f"{statistics.median(floors):.2f}",
                         f"{statistics.median(ratios):.2f}x", f"{max(ratios):.2f}x",
                         "≤ 2.0x"])
    table(f"`mlci run` on Iris against the import floor (`python -c '{FLOOR}'`), wall s, "
          "medians of paired runs", ["run", "pairs", "mlci run", "floor", "ratio", "max ratio",
                                     "target"], rows)


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def bench_venv() -> None:
    rows = []
    specs = {
        "mlci (core)": ["-c", str(REPO / "scripts/constraints.txt"), str(REPO)],
        "by hand: mlflow + great-expectations + dvc": [
            "-c", str(REPO / "scripts/constraints.txt"), "mlflow", "great-expectations", "dvc"],
    }
    for label, args in specs.items():
        with tempfile.TemporaryDirectory() as tmp:
            venv = Path(tmp) / "v"
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            t = time.perf_counter()
            subprocess.run([str(venv / "bin/pip"), "install", "-q", *args], check=True,
                           capture_output=True)
            rows.append([label, f"{time.perf_counter() - t:.0f}", f"{_du(venv) / 2**20:.0f}"])
    table("Fresh venv (pip, local package cache warm)", ["install", "seconds", "MiB"], rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--venv", action="store_true")
    a = ap.parse_args()
    reps = 1 if a.quick else 5
    bench_cli(reps if a.quick else 10)
    bench_run(1 if a.quick else 2)
    bench_floor(1 if a.quick else 5)
    if a.venv:
        bench_venv()


if __name__ == "__main__":
    main()
