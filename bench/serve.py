"""Serving benchmark: the `mlci serve` gateway vs `mlflow models serve` vs predicting in
process, on the digits model, at concurrency 1 and 16, on 127.0.0.1. Bounded runs.

    python bench/serve.py            # 2000 requests per cell
    python bench/serve.py --quick    # 300 requests per cell (CI)

Trains the digits example once into a temporary store (or reuses `--project DIR`, a digits
project whose `.mlci/` has a champion), then prints a markdown table of requests/s, p50 and
p99 client-side latency. Every cell sends one 64-pixel image per request; the HTTP cells use
the same minimal asyncio client (one keep-alive connection per concurrent caller).
The in-process cells call `predict_proba` on a one-row ndarray or DataFrame from 1 or 16
threads. A gateway that speaks the Open Inference Protocol gets a `/v2/.../infer` cell too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "MLCI_", "MLFLOW_"))}


def prepare(project: Path | None) -> Path:
    if project is not None:
        return project
    root = Path(tempfile.mkdtemp(prefix="mlci-bench-")) / "digits"
    shutil.copytree(DIGITS, root, ignore=shutil.ignore_patterns(".mlci"))
    script = ("from mlci.cli import cli\n"
              "for a in [['validate', '--no-docs'], ['train'], ['evaluate'],\n"
              "          ['promote', '--to', 'champion', '--version', '1']]:\n"
              "    assert cli.main(args=a, prog_name='mlci', standalone_mode=False) in (None, 0)\n")
    print("training the digits model ...", file=sys.stderr)
    subprocess.run([sys.executable, "-c", script], cwd=root, env=env(), check=True,
                   capture_output=True)
    return root


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}: {url}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout}s")


def stats(lat_ms: list[float], seconds: float) -> tuple[float, float, float]:
    from mlci.serve.predlog import percentile

    return len(lat_ms) / seconds, percentile(lat_ms, 50) or 0.0, percentile(lat_ms, 99) or 0.0


async def _client(host: str, port: int, raw: bytes, n: int, conc: int) -> tuple[list[float], float]:
    """A minimal asyncio HTTP/1.1 keep-alive client: `conc` connections share `n` requests.
    Client cost per request is a few microseconds, so the server is what is measured."""
    import asyncio

    lat: list[float] = []
    left = [n]

    async def one_conn() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while left[0] > 0:
                left[0] -= 1
                t0 = time.perf_counter()
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                if status != 200:
                    raise SystemExit(f"HTTP {status} from {host}:{port}")
                lat.append((time.perf_counter() - t0) * 1000)
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one_conn() for _ in range(conc))), timeout=600)
    return lat, time.perf_counter() - t0


def http_cell(url: str, path: str, body: dict, n: int, conc: int) -> tuple[float, float, float]:
    import asyncio
    import json

    host, port = url.split("//")[1].split(":")
    data = json.dumps(body).encode()
    raw = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(data)}\r\nX-Mlci-Key: bench\r\n\r\n").encode() + data
    asyncio.run(_client(host, int(port), raw, max(20, n // 10), conc))  # warm-up
    lat, seconds = asyncio.run(_client(host, int(port), raw, n, conc))
    return stats(lat, seconds)


def timed_calls(fn, n: int, conc: int, warmup: int) -> tuple[list[float], float]:
    """Call `fn` n times from `conc` threads after `warmup` calls: the latencies (ms) and the
    seconds the n calls took."""
    lat: list[float] = []
    lock = threading.Lock()
    it = iter(range(n))

    def worker() -> None:
        mine = []
        while True:
            with lock:
                i = next(it, None)
            if i is None:
                break
            t0 = time.perf_counter()
            fn()
            mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            lat.extend(mine)

    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, time.perf_counter() - t0


def inprocess_cell(model, frame_of, row, n: int, conc: int) -> tuple[float, float, float]:
    return stats(*timed_calls(lambda: model.predict_proba(frame_of(row)), n, conc,
                              warmup=max(20, n // 10)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="300 requests per cell")
    ap.add_argument("--requests", type=int, default=None, help="requests per cell")
    ap.add_argument("--project", type=Path, default=None,
                    help="a trained digits project to reuse (its .mlci has a champion)")
    ap.add_argument("--concurrency", default="1,16", help="comma-separated levels")
    a = ap.parse_args(argv)
    n = a.requests or (300 if a.quick else 2000)
    levels = [int(c) for c in a.concurrency.split(",")]

    import mlflow.sklearn
    import pandas as pd

    from mlci.serve.loadgen import read_csv

    root = prepare(a.project)
    store = f"sqlite:///{(root / '.mlci' / 'mlflow.db').resolve()}"
    rows, _ = read_csv(str(DIGITS / "data" / "golden.csv"), "digit")
    row = rows[0]
    cols = [f"pixel_{i}_{j}" for i in range(8) for j in range(8)]

    mlflow.set_tracking_uri(store)
    model = mlflow.sklearn.load_model("models:/digits@champion")
    results: list[tuple[str, int, tuple[float, float, float]]] = []
    import warnings

    import numpy as np

    warnings.simplefilter("ignore", UserWarning)  # ndarray into a model fitted on names
    for c in levels:
        results.append(("in-process predict_proba, ndarray", c, inprocess_cell(
            model, lambda r: np.asarray([r], dtype=float), row, n, c)))
        results.append(("in-process predict_proba, DataFrame", c, inprocess_cell(
            model, lambda r: pd.DataFrame([r], columns=cols), row, n, c)))

    procs: list[subprocess.Popen] = []
    try:
        gport, mport = free_port(), free_port()
        log = open(root / "bench-servers.log", "w")  # noqa: SIM115
        procs.append(subprocess.Popen(
            [str(BIN / "mlci"), "serve", "--port", str(gport)], cwd=root, env=env(),
            stdout=log, stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen(
            [str(BIN / "mlflow"), "models", "serve", "-m", "models:/digits@champion",
             "--env-manager", "local", "--host", "127.0.0.1", "-p", str(mport)], cwd=root,
            env={**env(), "MLFLOW_TRACKING_URI": store,
                 "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
            stdout=log, stderr=subprocess.STDOUT))
        gurl, murl = f"http://127.0.0.1:{gport}", f"http://127.0.0.1:{mport}"
        wait_http(gurl + "/readyz", procs[0])
        wait_http(murl + "/ping", procs[1])
        import httpx

        v2 = httpx.get(gurl + "/v2/health/live", timeout=5).status_code == 200
        v2_body = {"inputs": [{"name": "input-0", "shape": [1, 64], "datatype": "FP64",
                               "data": row}]}
        for c in levels:
            results.append(("mlci serve gateway (/predict)", c, http_cell(
                gurl, "/predict", {"instances": [row]}, n, c)))
            if v2:  # the Open Inference Protocol, same routing and log
                results.append(("mlci serve gateway (/v2/models/digits/infer)", c, http_cell(
                    gurl, "/v2/models/digits/infer", v2_body, n, c)))
            results.append(("mlflow models serve (/invocations)", c, http_cell(
                murl, "/invocations", {"dataframe_split": {"columns": cols, "data": [row]}},
                n, c)))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()

    print(f"\n{n} requests per cell, one 8x8 digit per request, 127.0.0.1, "
          f"{os.cpu_count()} CPUs\n")
    print("| target | concurrency | req/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for name, c, (rps, p50, p99) in results:
        print(f"| {name} | {c} | {rps:,.0f} | {p50:.2f} | {p99:.2f} |")
    by = {(nm.split()[0] + ("-df" if "DataFrame" in nm else ""), c): v
          for nm, c, v in results if "/v2/" not in nm}
    for c in levels:
        g, m, i = by[("mlci", c)], by[("mlflow", c)], by[("in-process", c)]
        print(f"\nconcurrency {c}: gateway p50 - in-process (ndarray) p50 = {g[1] - i[1]:+.2f} ms; "
              f"gateway throughput = {g[0] / m[0]:.1f}x mlflow models serve")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
