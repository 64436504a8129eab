"""Install size and cold install time: `mlci` (mlflow-skinny plus the SQLite store and the
scikit-learn flavour) against installing mlflow + great-expectations + dvc by hand, and what
each extra adds on top of `mlci`.

    python bench/install.py              # 3 repetitions of the two installs, then every extra
    python bench/install.py --quick      # 1 repetition of the two installs, no extras (CI)
    python bench/install.py --reps 1     # 1 repetition, every extra

Each install goes into a fresh venv with `pip install --no-cache-dir` (cold: nothing from
pip's cache), pinned by scripts/constraints.txt, from the configured package index. Wall
and cpu seconds are those of the pip process (its own `wait4` accounting); the size is the
venv's files on disk. An extra is measured as `pip install 'mlci[extra]'` into a copy of the
venv holding `mlci`: what it adds is the growth of that copy (MiB and distributions). Prints
markdown tables (min and median over the repetitions).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tables import table  # noqa: E402 - beside this script

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = str(REPO / "scripts/constraints.txt")
CORE = "mlci"
BY_HAND = "by hand: mlflow + great-expectations + dvc"
INSTALLS = {CORE: [str(REPO)], BY_HAND: ["mlflow", "great-expectations", "dvc"]}
EXTRAS = ["dvc", "dvc-s3", "team", "parquet", "serve", "monitor", "server"]
TARGET = 0.7  # the core install at most this share of the by-hand one


def _du(path: Path) -> int:
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _dists(venv: Path) -> set[str]:
    return {p.name.split("-")[0].lower() for p in venv.glob("lib/python*/site-packages/*"
                                                             ".dist-info")}


def _pip(venv: Path, args: list[str]) -> tuple[float, float]:
    """Wall and cpu seconds of one cold `pip install` into `venv`."""
    cmd = [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-cache-dir",
           "--disable-pip-version-check", "-c", CONSTRAINTS, *args]
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read().decode() if p.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"pip install {' '.join(args)} failed: {err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def install(args: list[str], venv: Path) -> tuple[float, float, float]:
    """Wall s, cpu s and MiB on disk of one cold install into a fresh venv at `venv`."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wall, cpu = _pip(venv, args)
    return wall, cpu, _du(venv) / 2**20


def extras(core: Path, tmp: Path) -> list[list[str]]:
    """What each extra adds to the venv holding `mlci` (a copy per extra)."""
    base_size, base_dists = _du(core), _dists(core)
    rows = []
    for extra in EXTRAS:
        venv = tmp / f"x-{extra}"
        shutil.copytree(core, venv, symlinks=True)
        wall, _ = _pip(venv, [f"{REPO}[{extra}]"])
        new = sorted(_dists(venv) - base_dists)
        rows.append([f"`mlci[{extra}]`", f"+{(_du(venv) - base_size) / 2**20:.0f}",
                     str(len(new)), f"{wall:.0f}", ", ".join(new[:8])
                     + (f", … ({len(new) - 8} more)" if len(new) > 8 else "")])
        shutil.rmtree(venv)
        print(f"{extra}: {rows[-1][1]} MiB", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 repetition, no extras")
    ap.add_argument("--reps", type=int, help="repetitions (default 3, or 1 with --quick)")
    a = ap.parse_args()
    reps = a.reps or (1 if a.quick else 3)
    runs: dict[str, list[tuple[float, float, float]]] = {n: [] for n in INSTALLS}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(reps):
            for name, args in INSTALLS.items():  # side by side, alternating
                venv = Path(tmp) / f"{'core' if name == CORE else 'hand'}{i}"
                runs[name].append(install(args, venv))
                wall, cpu, size = runs[name][-1]
                print(f"{name}: {wall:.0f} s wall, {cpu:.0f} s cpu, {size:.0f} MiB",
                      file=sys.stderr, flush=True)
                if not (name == CORE and i == 0):
                    shutil.rmtree(venv)
        base = statistics.median(r[2] for r in runs[BY_HAND])
        rows = []
        for name in INSTALLS:
            walls, cpus, sizes = zip(*runs[name], strict=True)
            size = statistics.median(sizes)
            rows.append([name, f"{min(walls):.0f}", f"{statistics.median(walls):.0f}",
                         f"{statistics.median(cpus):.0f}", f"{size:.0f}", f"{size / base:.2f}",
                         f"≤ {TARGET}" if name == CORE else ""])
        table("Cold install into a fresh venv (pip --no-cache-dir)",
              ["install", "min wall s", "median wall s", "median cpu s", "venv MiB",
               "size vs by hand", "target"], rows)
        if not a.quick:
            table("What each extra adds to `mlci` (pip --no-cache-dir, into a copy of its venv)",
                  ["install", "adds MiB", "adds distributions", "wall s", "distributions"],
                  extras(Path(tmp) / "core0", Path(tmp)))


if __name__ == "__main__":
    main()
