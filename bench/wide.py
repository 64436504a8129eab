"""Benchmark validation of wide data: a profiled suite of ~1,000 columns on 10,000 rows.

    python bench/wide.py                      # 1,000 columns × 10,000 rows (the target: ≤ 10 s)
    python bench/wide.py --columns 100 --rows 2000   # quick run (CI smoke)

Profiles a suite from the training part (`mlci.data.profile.profile_suite`, as `mlci init`
does), then times `mlci.data.validate.run_suite` on train and golden, as `mlci validate`
runs it, with and without Data Docs. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tables import table  # noqa: E402


def make_table(rows: int, columns: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {}
    for i in range(columns - 1):
        if i % 5 == 4:  # a fifth of the columns are categories
            data[f"cat_{i:04d}"] = np.array(["a", "b", "c", "d"], dtype=object)[
                rng.integers(0, 4, rows)]
        else:
            v = rng.normal(0, 1, rows).round(3)
            v[rng.random(rows) < 0.01] = np.nan
            data[f"num_{i:04d}"] = v
    data["y"] = rng.integers(0, 2, rows)
    return pd.DataFrame(data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--columns", type=int, default=1000)
    args = ap.parse_args()
    from mlci.data.profile import profile_suite
    from mlci.data.validate import run_suite

    df = make_table(args.rows, args.columns)
    train, golden = df.iloc[: int(0.8 * len(df))], df.iloc[int(0.8 * len(df)):]
    t = time.perf_counter()
    suite = profile_suite(train, "y", name="wide", task="classification")
    t_profile = time.perf_counter() - t
    rows = [["profile (init)", f"{len(suite['expectations'])}", f"{t_profile:.1f}"]]
    with tempfile.TemporaryDirectory() as tmp:
        for docs in (False, True):
            t = time.perf_counter()
            res = run_suite({"train": train, "golden": golden}, suite,
                            Path(tmp) / f"docs-{docs}" if docs else None, Path("suite.json"))
            took = time.perf_counter() - t
            ok = all(r["success"] for r in res.values())
            rows.append([f"validate train + golden, docs={'yes' if docs else 'no'}"
                         f"{'' if ok else ' (failed)'}", f"{len(suite['expectations'])}",
                         f"{took:.1f}"])
    table(f"Wide data: {args.columns} columns × {args.rows} rows",
          ["step", "expectations", "seconds"], rows,
          "Target: validate ≤ 10 s for 1,000 columns on 10,000 rows.")


if __name__ == "__main__":
    main()
