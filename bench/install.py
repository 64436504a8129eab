"""Install size and cold install time: `mlci` (mlflow-skinny plus the SQLite store and the
scikit-learn flavour) against installing mlflow + great-expectations + dvc by hand, and
`mlci[server]` (the full mlflow, for `mlflow server`).

    python bench/install.py              # 3 repetitions, all three installs, alternating
    python bench/install.py --quick      # 1 repetition, mlci and the by-hand install (CI)

Each install goes into a fresh venv with `pip install --no-cache-dir` (cold: nothing from
pip's cache), pinned by scripts/constraints.txt, from the configured package index. Wall
and cpu seconds are those of the pip process (its own `wait4` accounting); the size is the
venv's files on disk. Prints a markdown table (min and median over the repetitions).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = str(REPO / "scripts/constraints.txt")
INSTALLS = {
    "mlci": [str(REPO)],
    "by hand: mlflow + great-expectations + dvc": ["mlflow", "great-expectations", "dvc"],
    "mlci[server] (full mlflow)": [f"{REPO}[server]"],
}


def _du(path: Path) -> int:
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def install(args: list[str]) -> tuple[float, float, float]:
    """Wall s, cpu s and MiB on disk of one cold install into a fresh venv."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "v"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        cmd = [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-cache-dir",
               "--disable-pip-version-check", "-c", CONSTRAINTS, *args]
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        err = p.stderr.read().decode() if p.stderr else ""
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"pip install {' '.join(args)} failed: {err[-2000:]}")
        return wall, usage.ru_utime + usage.ru_stime, _du(venv) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 repetition, two installs")
    ap.add_argument("--reps", type=int, help="repetitions (default 3, or 1 with --quick)")
    a = ap.parse_args()
    reps = a.reps or (1 if a.quick else 3)
    names = list(INSTALLS)[:2] if a.quick else list(INSTALLS)
    runs: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    for _ in range(reps):
        for name in names:  # side by side, alternating, so drift in load hits all alike
            runs[name].append(install(INSTALLS[name]))
            wall, cpu, size = runs[name][-1]
            print(f"{name}: {wall:.0f} s wall, {cpu:.0f} s cpu, {size:.0f} MiB", file=sys.stderr,
                  flush=True)
    base = statistics.median(r[2] for r in runs[names[1]])
    print("\n### Cold install into a fresh venv (pip --no-cache-dir)\n")
    print("| install | min wall s | median wall s | median cpu s | venv MiB | size vs by hand |")
    print("|---|---|---|---|---|---|")
    for name in names:
        walls, cpus, sizes = zip(*runs[name], strict=True)
        size = statistics.median(sizes)
        print(f"| {name} | {min(walls):.0f} | {statistics.median(walls):.0f} | "
              f"{statistics.median(cpus):.0f} | {size:.0f} | {size / base:.2f} |")


if __name__ == "__main__":
    main()
