"""Benchmark wide data: a profiled suite of ~1,000 columns on 10,000 rows.

    python bench/wide.py            # 1,000 columns × 10,000 rows (the target: ≤ 10 s with docs)
    python bench/wide.py --quick    # 100 columns × 2,000 rows (CI smoke)
    python bench/wide.py --columns 300 --rows 5000 --no-run

Profiles a suite from the training part (`mlci.data.profile.profile_suite`, as `mlci init`
does), then times `mlci.data.validate.run_suite` on train and golden, as `mlci validate` runs
it, without and with Data Docs (wall and CPU seconds, children's included: on a shared machine
the CPU time is the steadier figure). Then, unless --no-run, a project made by
`mlci init --profile` on the same table runs `mlci run --json` in a fresh interpreter, and its
per-stage seconds are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tables import table  # noqa: E402

STAGES = ("validate", "train", "evaluate", "report")
MLCI = "from mlci.cli import main; main()"  # the sources on PYTHONPATH, not an installed script


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


def cpu() -> float:
    """CPU seconds of this process and of its children that have ended (Data Docs pages may be
    built by a forked child)."""
    try:
        import resource
    except ImportError:  # Windows: no children either (no fork)
        return time.process_time()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def bench_validate(df: pd.DataFrame) -> list[list[str]]:
    from mlci.data.profile import profile_suite
    from mlci.data.validate import run_suite

    train, golden = df.iloc[: int(0.8 * len(df))], df.iloc[int(0.8 * len(df)):]
    t, c = time.perf_counter(), cpu()
    suite = profile_suite(train, "y", name="wide", task="classification")
    n = str(len(suite["expectations"]))
    rows = [["profile (init)", n, f"{time.perf_counter() - t:.1f}",
             f"{cpu() - c:.1f}"]]
    t, c = time.perf_counter(), cpu()
    import great_expectations  # noqa: F401  # paid once per process, not by either run below

    rows.append(["import great_expectations", "", f"{time.perf_counter() - t:.1f}",
                 f"{cpu() - c:.1f}"])
    with tempfile.TemporaryDirectory() as tmp:
        for docs in (False, True):
            t, c = time.perf_counter(), cpu()
            res = run_suite({"train": train, "golden": golden}, suite,
                            Path(tmp) / "docs" if docs else None, Path("suite.json"))
            wall, used = time.perf_counter() - t, cpu() - c
            ok = all(r["success"] for r in res.values())
            rows.append([f"validate train + golden, Data Docs {'on' if docs else 'off'}"
                         f"{'' if ok else ' (failed)'}", n, f"{wall:.1f}", f"{used:.1f}"])
    return rows


def _mlci(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLFLOW_"))}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    p = subprocess.run([sys.executable, "-c", MLCI, *args], cwd=cwd, env=env,
                       capture_output=True, text=True)
    if p.returncode not in (0, 1):
        raise SystemExit(f"mlci {' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return p


def bench_run(df: pd.DataFrame) -> list[list[str]]:
    """`mlci init --profile` then `mlci run --json` on the table, as a user would."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "wide"
        (root / "data").mkdir(parents=True)
        df.to_csv(root / "data/all.csv", index=False)
        _mlci(["init", "--profile", "data/all.csv", "--target", "y", "--name", "wide"], root)
        t = time.perf_counter()
        p = _mlci(["run", "--json", "--no-register"], root)
        total = time.perf_counter() - t
        rec = json.loads(p.stdout.strip().splitlines()[-1])
    s = rec["seconds"]
    return [[f"`mlci run` ({rec['verdict']})",
             *(f"{s[k]:.1f}" if k in s else "-" for k in STAGES), f"{total:.1f}"]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--columns", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="100 columns × 2,000 rows (CI)")
    ap.add_argument("--no-run", action="store_true", help="skip `mlci run`")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.columns = 2000, 100
    df = make_table(args.rows, args.columns)
    table(f"Wide data: {args.columns} columns × {args.rows} rows, in process",
          ["step", "expectations", "wall s", "CPU s"], bench_validate(df),
          "Target: validate ≤ 10 s with Data Docs for 1,000 columns on 10,000 rows.")
    if not args.no_run:
        table("`mlci run --json --no-register` on the same table after `mlci init --profile` "
              "(fresh interpreter; wall seconds per stage, from its `seconds`)",
              ["run", *STAGES, "total wall (with imports)"], bench_run(df))


if __name__ == "__main__":
    main()
