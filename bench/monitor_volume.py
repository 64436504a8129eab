"""Monitoring at volume: read a prediction log of N predictions x 20 features, row by row
(`json.loads` per request, the reader `mlci monitor` used before) against the vectorised
reader (`mlci.serve.predlog_read`), and optionally time the whole `mlci monitor` command.

    python bench/monitor_volume.py              # 1,000,000 predictions, 3 repetitions
    python bench/monitor_volume.py --quick      # 50,000 predictions, 1 repetition (CI)
    python bench/monitor_volume.py --command    # also `mlci monitor` and `--watch` on it
    python bench/monitor_volume.py --log-format 1   # rows logged before `mlci.predlog/2`

Each figure is one child process: wall seconds and its peak RSS (`resource.getrusage`).
The log is written with the gateway's own schema (`mlci.serve.predlog.connect`), one request
per row in the form the gateway logs: the inputs packed by `mlci.serve.predlog.pack` (or, with
`--log-format 1`, a JSON list of feature lists, as logged before the columns existed).
Prints markdown tables (min and median over the repetitions).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tables import table  # noqa: E402 - beside this script

REPO = Path(__file__).resolve().parents[1]
FEATURES = [f"f{i}" for i in range(20)]
CLASSES = ["setosa", "versicolor", "virginica"]


def build_log(path: Path, n: int, *, features: list[str] = FEATURES, labelled: float = 0.3,
              seed: int = 0, log_format: int = 2) -> None:
    """A prediction log of `n` answered requests of one instance each, a share labelled."""
    from mlci.serve.predlog import SCHEMA, connect, pack

    rng = random.Random(seed)
    con = connect(path)
    con.execute("BEGIN")
    t0 = time.time() - n
    batch: list[tuple[Any, ...]] = []
    labels: list[tuple[Any, ...]] = []
    for i in range(n):
        rid = f"{i:012x}"
        x = [[rng.gauss(0.0, 1.0) for _ in features]]
        y = [rng.choice(CLASSES)]
        variant, version = ("challenger", "4") if i % 10 == 0 else ("champion", "3")
        packed = pack(x) if log_format == 2 else None
        batch.append((rid, t0 + i, "bench", variant, version, None, None, 1,
                      None if packed else json.dumps(x, separators=(",", ":")), json.dumps(y),
                      None, 1.0, None, *(packed or (None, None))))
        if rng.random() < labelled:
            labels.append((rid, t0 + i + 0.5, json.dumps([rng.choice(CLASSES)])))
        if len(batch) == 50_000:
            _flush(con, batch, labels)
    _flush(con, batch, labels)
    con.execute("INSERT OR REPLACE INTO meta VALUES('schema', ?)", (SCHEMA,))
    con.execute("COMMIT")
    con.close()


def _flush(con: Any, batch: list[tuple[Any, ...]], labels: list[tuple[Any, ...]]) -> None:
    con.executemany(
        "INSERT INTO predictions(request_id, ts, model, variant, version, canary_id, "
        "route_key, n, inputs, outputs, probabilities, latency_ms, error, inputs_array, "
        "inputs_dtype) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
    con.executemany("INSERT INTO feedback VALUES (?,?,?)", labels)
    batch.clear()
    labels.clear()


def read_row_by_row(path: Path, features: list[str], since: float | None = None,
                    variant: str | None = None) -> tuple[Any, Any, Any, Any]:
    """The monitor's reader before the vectorised one: one `json.loads` per request (or one
    unpacking of its packed inputs). Kept as the baseline here and as the oracle of the
    differential test."""
    import sqlite3

    import pandas as pd

    from mlci.serve.predlog import has_arrays, instances

    q = ("select p.request_id, p.ts, p.variant, p.version, p.inputs, p.outputs, f.label, "
         "p.n, {} "
         "from predictions p left join feedback f on f.request_id = p.request_id "
         "where p.error is null")
    args: list[Any] = []
    if since is not None:
        q += " and p.ts >= ?"
        args.append(since)
    if variant:
        q += " and p.variant = ?"
        args.append(variant)
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as con:
        packed = "p.inputs_array, p.inputs_dtype" if has_arrays(con) else "null, null"
        rows = con.execute(q.format(packed) + " order by p.ts", args).fetchall()
    feats, preds, labels, versions = [], [], [], []
    for _rid, _ts, _var, version, inputs, outputs, label, n, array, dtype in rows:
        xs = instances(inputs, array, dtype, n) or []
        ys = json.loads(outputs or "[]")
        ls = json.loads(label) if label else [None] * len(xs)
        if not isinstance(ls, list):
            ls = [ls]
        for i, x in enumerate(xs):
            feats.append(x if isinstance(x, list) else [x.get(f) for f in features])
            preds.append(ys[i] if i < len(ys) else None)
            labels.append(ls[i] if i < len(ls) else None)
            versions.append(str(version))
    df = pd.DataFrame(feats, columns=features) if feats else pd.DataFrame(columns=features)
    return (df, pd.Series(labels, dtype=object), pd.Series(preds, dtype=object),
            pd.Series(versions, dtype=object))


def _read_in_child(reader: str, log: Path) -> None:
    """Run one reader in this (child) process and print its figures as JSON."""
    t, cpu = time.perf_counter(), time.process_time()
    if reader == "old":
        frame = read_row_by_row(log, FEATURES)[0]
    else:
        from mlci.serve.predlog_read import read_columns

        frame = read_columns(log, FEATURES).features
    print(json.dumps({"wall": time.perf_counter() - t, "cpu": time.process_time() - cpu,
                      "rows": len(frame)}))


def measure(cmd: list[str], cwd: Path | None = None,
            env: dict[str, str] | None = None) -> tuple[float, float, float, str]:
    """Wall seconds, cpu seconds (user + system) and peak RSS (MiB) of one child process,
    from its own `wait4` accounting, and its stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if p.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {err.read()[-2000:]}")
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read()


def _row(label: str, runs: list[tuple[float, float, float]], target: str) -> list[str]:
    walls, cpus, peaks = zip(*runs, strict=True)
    return [label, f"{min(walls):.2f}", f"{statistics.median(walls):.2f}",
            f"{statistics.median(cpus):.2f}", f"{max(peaks):.0f}", target]



def bench_readers(log: Path, reps: int) -> list[list[str]]:
    runs: dict[str, list[tuple[float, float, float]]] = {"old": [], "new": []}
    for _ in range(reps):
        for reader in ("old", "new"):  # side by side, alternating
            _, _, peak, out = measure([sys.executable, __file__, "--child", reader, str(log)])
            read = json.loads(out)  # the read alone, without the interpreter's start
            runs[reader].append((read["wall"], read["cpu"], peak))
    return [_row("row by row (json.loads per request)", runs["old"], ""),
            _row("vectorised (mlci.serve.predlog_read)", runs["new"], "")]


def _monitor_project(tmp: Path) -> Path:
    """A project with the log's 20 features: v1 champion, then v2 forced to champion (so
    `--watch` has a previous champion to compare with)."""
    import numpy as np
    import pandas as pd

    root = tmp / "proj"
    (root / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, len(FEATURES)))
    df = pd.DataFrame(x, columns=FEATURES)
    df["species"] = np.array(CLASSES)[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0)]
    df.to_csv(root / "data/train.csv", index=False)
    df.tail(150).to_csv(root / "data/golden.csv", index=False)
    cfg = ("name: bench\ndata:\n  train: data/train.csv\n  golden: data/golden.csv\n"
           "  target: species\nmodel:\n  estimator: sklearn.linear_model.LogisticRegression\n"
           "  params: {max_iter: %d}\ngate:\n  min: {accuracy: 0.5}\n")
    mlci = str(Path(sys.executable).parent / "mlci")
    for version, max_iter in (("1", 200), ("2", 100)):
        (root / "mlci.yaml").write_text(cfg % max_iter)
        promote = ["promote", "--to", "champion", "--version", version, "--force",
                   "--reason", "bench"]
        for step in (["train", "--skip-validation"], ["evaluate"], promote):
            p = subprocess.run([mlci, *step], cwd=root, capture_output=True, text=True)
            if p.returncode not in (0, 1):
                raise SystemExit(f"mlci {' '.join(step)}: {p.stderr.strip()[-1000:]}")
    return root


def bench_command(log: Path, reps: int) -> list[list[str]]:
    import shutil

    mlci = str(Path(sys.executable).parent / "mlci")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLFLOW_"))}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = _monitor_project(Path(tmp))
        for label, args in (("`mlci monitor`", ["monitor", "--window", str(log)]),
                            ("`mlci monitor --watch`", ["monitor", "--watch", "--window",
                                                        str(log)])):
            runs = []
            for i in range(reps):  # a fresh copy: --watch may roll the champion back
                root = Path(tmp) / f"run{label[-8:-1]}{i}"
                shutil.copytree(base, root)
                runs.append(measure([mlci, *args], root, env)[:3])
            rows.append(_row(label, runs, "≤ 10 s, ≤ 2048 MiB"))
    return rows


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _read_in_child(sys.argv[2], Path(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="50,000 predictions, 1 repetition")
    ap.add_argument("--command", action="store_true", help="also time `mlci monitor`")
    ap.add_argument("--rows", type=int, help="predictions in the log")
    ap.add_argument("--reps", type=int, help="repetitions")
    ap.add_argument("--log-format", type=int, choices=(1, 2), default=2,
                    help="2: inputs packed, as the gateway logs now; 1: JSON inputs, as logged "
                         "before (and still read)")
    a = ap.parse_args()
    n = a.rows or (50_000 if a.quick else 1_000_000)
    reps = a.reps or (1 if a.quick else 3)
    header = ["reader", "min wall s", "median wall s", "median cpu s", "peak RSS MiB",
              "target"]
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "predictions.db"
        t = time.perf_counter()
        build_log(log, n, log_format=a.log_format)
        print(f"built a log (mlci.predlog/{a.log_format} rows) of {n:,} predictions x "
              f"{len(FEATURES)} features "
              f"({log.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.0f} s")
        rows = bench_readers(log, reps)
        table(f"Reading {n:,} predictions (one child process each)", header, rows)
        if a.command:
            table(f"The whole command on {n:,} predictions", header,
                  bench_command(log, reps))


if __name__ == "__main__":
    main()
