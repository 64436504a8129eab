"""Benchmark `mlci` on a mixed-type table: 100k rows × 30 columns (numbers with gaps,
strings, categories, a date and an ID), from `mlci init --profile` to the report.

    python bench/mixed.py                 # 100,000 training rows, 20,000 golden rows
    python bench/mixed.py --rows 5000     # quick run (CI smoke)
    python bench/mixed.py --trees 200     # the estimator size `mlci init` writes

Each stage runs as its own `mlci` process, as the actions run them, so every row of the
table has its own wall time, CPU time and peak resident memory (from wait4's rusage). A last row
runs `mlci run` (all stages in one process). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

BIN = Path(sys.executable).parent
N_NUMERIC, N_CATEGORICAL, N_FLAGS = 16, 10, 1  # + date, ID, target = 30 columns


def make_table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {"row_id": [f"R{i:07d}" for i in range(rows)]}
    signal = np.zeros(rows)
    for i in range(N_NUMERIC):
        v = rng.normal(0, 1, rows) if i % 2 else rng.gamma(2.0, 3.0, rows)
        signal += (0.4 if i < 4 else 0.02) * (v - v.mean()) / v.std()
        v = v.round(3)
        v[rng.random(rows) < 0.03] = np.nan
        cols[f"num_{i:02d}"] = v
    for i in range(N_CATEGORICAL):
        levels = np.array([f"c{i}_{k}" for k in range(3 + 4 * i)], dtype=object)
        idx = rng.integers(0, len(levels), rows)
        signal += 0.3 * (idx == 0) if i < 3 else 0
        v = levels[idx]
        v[rng.random(rows) < 0.02] = None
        cols[f"cat_{i:02d}"] = v
    cols["flag"] = rng.random(rows) < 0.3
    cols["signup_date"] = (pd.Timestamp("2020-01-01")
                           + pd.to_timedelta(rng.integers(0, 1500, rows), unit="D")
                           ).strftime("%Y-%m-%d")
    cols["label"] = np.where(signal + rng.normal(0, 1, rows) > 0.3, "yes", "no")
    return pd.DataFrame(cols)


def stage(args: list[str], cwd: Path,
          env: dict[str, str]) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS MiB, exit code) of one `mlci` process."""
    t = time.perf_counter()
    p = subprocess.Popen([str(BIN / "mlci"), *args], cwd=cwd, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        err = p.stderr.read().decode() if p.stderr else ""
        raise SystemExit(f"mlci {' '.join(args)} exited {code}: {err.strip()}")
    rss_mib = usage.ru_maxrss / 1024  # KiB on Linux
    return wall, usage.ru_utime + usage.ru_stime, rss_mib, code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000, help="training rows")
    ap.add_argument("--golden", type=int, default=20_000, help="golden rows")
    ap.add_argument("--trees", type=int, default=50, help="n_estimators of the forest")
    a = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLFLOW_",
                                                                    "MLCI_"))}
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        df = make_table(a.rows + a.golden)
        df.iloc[: a.rows].to_csv(root / "data/train.csv", index=False)
        df.iloc[a.rows:].to_csv(root / "data/golden.csv", index=False)
        mib = (root / "data/train.csv").stat().st_size / 2**20
        rows = []
        steps = [
            ("init --profile", ["init", "--profile", "data/train.csv", "--target", "label",
                                "--golden", "data/golden.csv"]),
            ("validate", ["validate"]),
            ("train", ["train"]),
            ("evaluate", ["evaluate"]),
            ("report", ["report"]),
        ]
        for name, args in steps:
            rows.append((name, *stage(args, root, env)))
            if name.startswith("init"):
                cfg = root / "mlci.yaml"
                cfg.write_text(cfg.read_text().replace("n_estimators: 200",
                                                       f"n_estimators: {a.trees}"))
        rows.append(("run (all stages, one process)", *stage(["run"], root, env)))
    print(f"\n### `mlci` on a mixed table: {a.rows:,} training + {a.golden:,} golden rows × "
          f"{df.shape[1]} columns ({mib:.1f} MiB CSV), RandomForest {a.trees} trees\n")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(wall time grows with it; CPU time does not)\n")
    print("| stage | wall s | CPU s | peak RSS MiB | exit |")
    print("|---|---:|---:|---:|---:|")
    for name, wall, cpu, rss, code in rows:
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {rss:.0f} | {code} |")


if __name__ == "__main__":
    main()
