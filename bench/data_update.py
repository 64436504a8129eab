"""Benchmark `mlci data update` on a large CSV: wall time and peak memory per step, and
Great Expectations against the same per-row checks written in plain vectorised pandas.

    python bench/data_update.py                 # 1,000,000 rows x 20 columns
    python bench/data_update.py --rows 20000    # quick

Builds a throw-away DVC-tracked repo with a local remote under a temp folder; prints tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

BIN = Path(sys.executable).parent
N_NUMERIC = 19
CONFIG = """\
name: big
data:
  train: data/train.csv
  golden: data/golden.csv
  target: label
  expectations: expectations/train.json
model:
  estimator: sklearn.linear_model.SGDClassifier
  params: {max_iter: 5, tol: null}
gate:
  min: {accuracy: 0.5}
data_update: {on_drift: warn}
"""


def make_frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, size=(n, N_NUMERIC)).round(4)
    df = pd.DataFrame(x, columns=[f"f{i:02d}" for i in range(N_NUMERIC)])
    score = x[:, 0] + 0.5 * x[:, 1] - 0.5 * x[:, 2]
    df["label"] = np.where(score > 0.5, "high", np.where(score < -0.5, "low", "mid"))
    return df


def sh(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    p = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"{args} failed:\n{p.stdout}\n{p.stderr}")
    return p


def pandas_checks(df: pd.DataFrame, suite: dict) -> dict[str, bool]:
    """The suite's per-row expectations, written directly in pandas."""
    out = {}
    for e in suite["expectations"]:
        kw, kind = e["kwargs"], e["type"]
        col = kw.get("column")
        if kind == "expect_column_values_to_not_be_null":
            out[f"{kind}:{col}"] = bool(df[col].notna().all())
        elif kind == "expect_column_values_to_be_between":
            s = df[col]
            out[f"{kind}:{col}"] = bool(((s >= kw["min_value"]) & (s <= kw["max_value"])).all())
        elif kind == "expect_column_values_to_be_in_set":
            out[f"{kind}:{col}"] = bool(df[col].isin(kw["value_set"]).all())
        elif kind == "expect_column_values_to_be_in_type_list":
            out[f"{kind}:{col}"] = str(df[col].dtype) in kw["type_list"]
        elif kind == "expect_column_values_to_be_of_type":
            out[f"{kind}:{col}"] = str(df[col].dtype) == kw["type_"]
    return out


PER_ROW = {"expect_column_values_to_not_be_null", "expect_column_values_to_be_between",
           "expect_column_values_to_be_in_set", "expect_column_values_to_be_in_type_list",
           "expect_column_values_to_be_of_type"}


def compare_validation(df: pd.DataFrame, suite: dict) -> list[list[str]]:
    from mlci.data.validate import run_suite

    per_row = {**suite, "expectations": [e for e in suite["expectations"]
                                         if e["type"] in PER_ROW]}
    rows = []
    run_suite({"train": df.head(100)}, per_row, None, Path("suite.json"))  # imports, warm-up
    t = time.perf_counter()
    run_suite({"train": df}, per_row, None, Path("suite.json"))
    gx_s = time.perf_counter() - t
    t = time.perf_counter()
    pandas_checks(df, suite)
    pd_s = time.perf_counter() - t
    t = time.perf_counter()
    run_suite({"train": df}, suite, None, Path("suite.json"))
    full_s = time.perf_counter() - t
    rows.append([str(len(per_row["expectations"])), f"{gx_s:.2f}", f"{pd_s:.2f}",
                 f"{gx_s / pd_s:.1f}×", "≤ 3×", f"{full_s:.2f}"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mlci-bench-"))
    try:
        root = tmp / "repo"
        (root / "data").mkdir(parents=True)
        t = time.perf_counter()
        make_frame(a.rows, 0).to_csv(root / "data/train.csv", index=False)
        make_frame(5000, 1).to_csv(root / "data/golden.csv", index=False)
        make_frame(a.rows // 10, 2, shift=0.05).to_csv(tmp / "new.csv", index=False)
        gen_s = time.perf_counter() - t
        (root / "mlci.yaml").write_text(CONFIG)
        sh(["git", "init", "-q"], root)
        sh([str(BIN / "mlci"), "init", "--profile", "data/train.csv", "--target", "label"], root)
        sh([str(BIN / "mlci"), "data", "init", "--remote", str(tmp / "remote")], root)
        sh([str(BIN / "mlci"), "run", "--no-docs"], root)
        t = time.perf_counter()
        p = sh([str(BIN / "mlci"), "data", "update", "--source", str(tmp / "new.csv")], root)
        wall = time.perf_counter() - t
        rec = json.loads((root / ".mlci/data_update.json").read_text())
        size = (root / "data/train.csv").stat().st_size / 2**20
        print(f"\n### `mlci data update` (+{a.rows // 10:,} rows appended to {a.rows:,} × 20; "
              f"result {size:.0f} MiB CSV; test data generated in {gen_s:.0f} s)\n")
        print("| step | seconds | peak RSS MiB |\n|---|---:|---:|")
        for s in rec["steps"]:
            print(f"| {s['step']} | {s['seconds']:.2f} | {s['peak_rss_mib']:.0f} |")
        print(f"| **total wall (process)** | {wall:.2f} | |")
        drifted = rec["drift"]["drifted_columns"]
        print(f"\nDrifted columns flagged: {len(drifted)} of 20 ({', '.join(drifted[:5])}…)"
              if drifted else "\nDrifted columns flagged: none")
        del p
        df = pd.read_csv(root / "data/train.csv")
        suite = json.loads((root / "expectations/train.json").read_text())
        print(f"\n### Validation of {len(df):,} rows: Great Expectations vs plain pandas\n")
        print("| per-row expectations | GX s | pandas s | ratio | goal | full suite GX s |")
        print("|---:|---:|---:|---:|---|---:|")
        for row in compare_validation(df, suite):
            print("| " + " | ".join(row) + " |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
