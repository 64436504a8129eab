"""Benchmark `mlci data update` on a large CSV: wall time and peak memory per step; and
validation: mlci (vectorised checks), Great Expectations alone, and the same checks written
in plain vectorised pandas, side by side.

    python bench/data_update.py                      # 1,000,000 rows x 20 columns
    python bench/data_update.py --rows 20000         # quick
    python bench/data_update.py --validation-only    # the validation table alone

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
    """Every expectation of the profiled suite written directly in vectorised pandas/numpy:
    the verdict only (with `mostly`), no examples, counts or report."""
    from scipy import stats

    out = {}
    n = len(df)
    for i, e in enumerate(suite["expectations"]):
        kw, kind = e["kwargs"], e["type"]
        col = kw.get("column")
        mostly = kw.get("mostly", 1.0)
        s = df[col] if col is not None else None
        if kind == "expect_table_columns_to_match_set":
            ok = set(df.columns) == set(kw["column_set"])
        elif kind == "expect_table_row_count_to_be_between":
            ok = kw["min_value"] <= n <= kw["max_value"]
        elif kind == "expect_column_values_to_not_be_null":
            ok = n == 0 or s.notna().mean() >= mostly
        elif kind == "expect_column_values_to_be_between":
            v = s.dropna()
            ok = v.empty or ((v >= kw["min_value"]) & (v <= kw["max_value"])).mean() >= mostly
        elif kind == "expect_column_values_to_be_in_set":
            v = s.dropna()
            ok = v.empty or v.isin(kw["value_set"]).mean() >= mostly
        elif kind == "expect_column_values_to_be_unique":
            ok = not s.dropna().duplicated().any()
        elif kind == "expect_column_values_to_match_regex":
            v = s.dropna().astype(str)
            ok = v.empty or v.str.contains(kw["regex"]).mean() >= mostly
        elif kind == "expect_column_values_to_be_in_type_list":
            ok = str(s.dtype) in kw["type_list"]
        elif kind == "expect_column_values_to_be_of_type":
            ok = str(s.dtype) == kw["type_"]
        elif kind == "expect_column_kl_divergence_to_be_less_than":
            po, tail = kw["partition_object"], kw.get("tail_weight_holdout", 0)
            internal = kw.get("internal_weight_holdout", 0)
            v = s.dropna().to_numpy(dtype=float)
            bins = np.asarray(po["bins"])
            hist = np.histogram(v, bins)[0]
            p = np.concatenate(([np.count_nonzero(v < bins[0])], hist,
                                [np.count_nonzero(v > bins[-1])])) / len(v)
            q = np.asarray(po["weights"]) * (1 - tail - internal)
            q[q == 0] = internal / max(1, np.count_nonzero(q == 0))
            q = np.concatenate(([tail / 2], q, [tail / 2]))
            ok = stats.entropy(p, q) <= kw["threshold"]
        else:
            raise SystemExit(f"no pandas version of {kind}")
        out[f"{i}:{kind}:{col}"] = bool(ok)
    return out


PER_ROW = {"expect_column_values_to_not_be_null", "expect_column_values_to_be_between",
           "expect_column_values_to_be_in_set", "expect_column_values_to_be_in_type_list",
           "expect_column_values_to_be_of_type"}


def _verdicts(res: dict) -> list[tuple]:
    return [(r["expectation_config"]["type"], r["expectation_config"]["kwargs"].get("column"),
             bool(r["success"])) for r in res["results"]]


def compare_validation(df: pd.DataFrame, suite: dict, repeats: int) -> list[list[str]]:
    """Plain pandas, mlci (fast path) and GX alone on the same frame, side by side: the
    minimum of `repeats` interleaved runs each (other work on the machine only adds time)."""
    from mlci.data.validate import run_suite

    per_row = {**suite, "expectations": [e for e in suite["expectations"]
                                         if e["type"] in PER_ROW]}
    rows = []
    for label, s in (("profiled suite", suite), ("per-row expectations only", per_row)):
        for engine in ("fast", "gx"):  # imports, warm-up
            run_suite({"train": df.head(100)}, s, None, Path("suite.json"), engine=engine)
        best = {"pandas": float("inf"), "fast": float("inf"), "gx": float("inf")}
        results = {}
        for _ in range(repeats):
            t = time.perf_counter()
            verdicts = pandas_checks(df, s)
            best["pandas"] = min(best["pandas"], time.perf_counter() - t)
            for engine in ("fast", "gx"):
                t = time.perf_counter()
                results[engine] = run_suite({"train": df}, s, None, Path("suite.json"),
                                            engine=engine)["train"]
                best[engine] = min(best[engine], time.perf_counter() - t)
        same = (_verdicts(results["fast"]) == _verdicts(results["gx"])
                and results["fast"]["statistics"] == results["gx"]["statistics"]
                and results["fast"]["success"] == all(verdicts.values()))
        rows.append([label, str(len(s["expectations"])), f"{best['pandas']:.2f}",
                     f"{best['fast']:.2f}", f"{best['gx']:.2f}",
                     f"{best['fast'] / best['pandas']:.1f}×", f"{best['gx'] / best['pandas']:.1f}×",
                     "yes" if same else "NO"])
    return rows


def print_validation(df: pd.DataFrame, suite: dict, repeats: int) -> None:
    print(f"\n### Validation of {len(df):,} rows × {len(df.columns)}: plain pandas, mlci, "
          f"Great Expectations (min of {repeats})\n")
    print("| suite | expectations | pandas s | mlci s | GX s | mlci / pandas | GX / pandas "
          "| same verdicts |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for row in compare_validation(df, suite, repeats):
        print("| " + " | ".join(row) + " |")
    print("\nmlci: `run_suite` (fast path, Data Docs off); GX: `run_suite(engine=\"gx\")`, "
          "every expectation through Great Expectations; pandas: the verdicts alone. "
          "The goal is mlci ≤ 3× pandas.")


def validation_only(rows: int, repeats: int) -> None:
    from mlci.data.profile import profile_suite

    tmp = Path(tempfile.mkdtemp(prefix="mlci-bench-"))
    try:  # through a CSV, so that the dtypes are those `mlci validate` reads
        make_frame(rows, 0).to_csv(tmp / "train.csv", index=False)
        df = pd.read_csv(tmp / "train.csv")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_validation(df, profile_suite(df, "label", name="big"), repeats)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3, help="validation timings: min of N")
    ap.add_argument("--validation-only", action="store_true",
                    help="skip `mlci data update`; time validation of a fresh frame only")
    a = ap.parse_args()
    if a.validation_only:
        validation_only(a.rows, a.repeats)
        return
    tmp = Path(tempfile.mkdtemp(prefix="mlci-bench-"))
    try:
        root = tmp / "repo"
        (root / "data").mkdir(parents=True)
        t = time.perf_counter()
        make_frame(a.rows, 0).to_csv(root / "data/train.csv", index=False)
        make_frame(5000, 1).to_csv(root / "data/golden.csv", index=False)
        # inside the repo: data_update.fetch.local_roots defaults to the project folder
        new = root / "incoming" / "new.csv"
        new.parent.mkdir()
        make_frame(a.rows // 10, 2, shift=0.05).to_csv(new, index=False)
        gen_s = time.perf_counter() - t
        (root / "mlci.yaml").write_text(CONFIG)
        sh(["git", "init", "-q"], root)
        sh([str(BIN / "mlci"), "init", "--profile", "data/train.csv", "--target", "label"], root)
        sh([str(BIN / "mlci"), "data", "init", "--remote", str(tmp / "remote")], root)
        sh([str(BIN / "mlci"), "run", "--no-docs"], root)
        t = time.perf_counter()
        p = sh([str(BIN / "mlci"), "data", "update", "--source", str(new)], root)
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
        print_validation(df, suite, a.repeats)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
