"""Image serving benchmark: 224x224 JPEGs through the `mlci serve` gateway (/predict, and
/v2 with the image as a BYTES tensor in JSON and in binary data) against the same model
called in process, on 127.0.0.1. Bounded runs.

    python bench/serve_images.py            # 1000 requests per cell
    python bench/serve_images.py --quick    # 100 requests per cell (CI)

The model is an image model as the gateway expects one: its MLflow signature declares a
(-1, 224, 224, 3) uint8 tensor, and it does its own preprocessing (a scikit-learn Pipeline:
16x16 average pooling to 14x14x3, standardising, a logistic regression over 3 classes),
registered in a temporary SQLite store. Each request carries one JPEG (a noisy synthetic
picture of 224x224, quality 90, about 12 KB); the HTTP cells use the minimal keep-alive
client of bench/serve.py. In process: the model alone on the decoded (1, 224, 224, 3) array, and
decoding the JPEG with mlci.images plus the model (to which the gateway adds HTTP,
routing, the prediction log and metrics).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import BIN, _client, env, free_port, timed_calls, wait_http  # noqa: E402

SIDE = 224
POOL = 16


def pool(x: np.ndarray) -> np.ndarray:
    """(N, 224, 224, 3) uint8 -> (N, 588) float: 16x16 average pooling, scaled to 0..1."""
    n = x.shape[0]
    blocks = x.reshape(n, SIDE // POOL, POOL, SIDE // POOL, POOL, 3).mean(axis=(2, 4))
    return blocks.reshape(n, -1) / 255.0


def pictures(n: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Synthetic pictures: a gradient, a bright disc of the class's colour, and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    classes = ["red", "green", "blue"]
    out = np.empty((n, SIDE, SIDE, 3), np.uint8)
    labels = []
    for i in range(n):
        k = i % 3
        img = np.stack([(xx + yy) * 0.25 + rng.integers(0, 40)] * 3, axis=-1)
        cy, cx, r = rng.integers(50, 174, 2).tolist() + [int(rng.integers(30, 60))]
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img[disc, k] = 230
        img = img + rng.normal(0, 6, img.shape)  # sensor noise: JPEGs the size of photos
        out[i] = img.clip(0, 255).astype(np.uint8)
        labels.append(classes[k])
    return out, labels


def jpeg(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def register(root: Path) -> object:
    """Fit, log and register the model as `shapes`, champion version 1; returns it."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    x, y = pictures(240)
    model = Pipeline([("pool", FunctionTransformer(pool)), ("scale", StandardScaler()),
                      ("model", LogisticRegression(max_iter=1000))]).fit(x, y)
    uri = f"sqlite:///{(root / '.mlci' / 'mlflow.db').resolve()}"
    (root / ".mlci").mkdir(parents=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with mlflow.start_run():  # `pool` lives in __main__: cloudpickle keeps it by value
        mlflow.sklearn.log_model(model, name="model",
                                 signature=infer_signature(x[:2], model.predict(x[:2])),
                                 registered_model_name="shapes",
                                 serialization_format="cloudpickle",
                                 pip_requirements=["scikit-learn"])
    mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(
        "shapes", "champion", "1")
    return model


Timed = tuple[list[float], float]  # latencies (ms) and the seconds they took


def summary(parts: list[Timed]) -> tuple[float, float, float]:
    """req/s over all rounds, and p50 and p95 of the pooled latencies."""
    a = np.concatenate([np.asarray(lat) for lat, _ in parts])
    return len(a) / sum(sec for _, sec in parts), float(np.percentile(a, 50)), \
        float(np.percentile(a, 95))


def inprocess(fn, n: int, conc: int) -> Timed:
    return timed_calls(fn, n, conc, warmup=max(5, n // 10))


def http(port: int, path: str, body: bytes, headers: dict[str, str], n: int,
         conc: int) -> Timed:
    import asyncio

    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    raw = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
           f"{head}\r\n").encode() + body
    asyncio.run(_client("127.0.0.1", port, raw, max(5, n // 10), conc))  # warm-up
    return asyncio.run(_client("127.0.0.1", port, raw, n, conc))


ALONE = "in process: the model alone (decoded array)"
DECODE = "in process: mlci.images.decode + the model"
PREDICT = "gateway /predict (base64 JPEG in JSON)"
V2_JSON = "gateway /v2 infer (BYTES, base64 in JSON)"
V2_BINARY = "gateway /v2 infer (BYTES, binary data both ways)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 requests per cell, one round")
    ap.add_argument("--requests", type=int, default=None, help="requests per cell")
    ap.add_argument("--rounds", type=int, default=None,
                    help="rounds every cell takes its turn in (default 5, quick 1): on a "
                         "shared machine, load that comes and goes hits every cell alike")
    ap.add_argument("--concurrency", default="1,4", help="comma-separated levels")
    a = ap.parse_args(argv)
    n = a.requests or (100 if a.quick else 1000)
    rounds = a.rounds or (1 if a.quick else 5)
    levels = [int(c) for c in a.concurrency.split(",")]

    from mlci.images import ImageSpec, decode

    root = Path(tempfile.mkdtemp(prefix="mlci-bench-images-"))
    print("fitting and registering the model ...", file=sys.stderr)
    model = register(root)
    x, _ = pictures(1, seed=99)
    raw = jpeg(x[0])
    spec = ImageSpec(SIDE, SIDE, 3)
    one = decode(raw, spec)[None]
    b64 = base64.b64encode(raw).decode()
    element = len(raw).to_bytes(4, "little") + raw
    head = json.dumps({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": len(element)}}],
                       "parameters": {"binary_data_output": True}}).encode()
    requests = {
        PREDICT: ("/predict", json.dumps({"images": [b64]}).encode(),
                  {"Content-Type": "application/json"}),
        V2_JSON: ("/v2/models/shapes/infer", json.dumps(
            {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                         "data": [b64]}]}).encode(), {"Content-Type": "application/json"}),
        V2_BINARY: ("/v2/models/shapes/infer", head + element,
                    {"Content-Type": "application/octet-stream",
                     "Inference-Header-Content-Length": str(len(head))}),
    }
    port = free_port()
    log = open(root / "serve.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([str(BIN / "mlci"), "serve", "--model", "shapes", "--port",
                             str(port), "--max-client-concurrent", "32"], cwd=root, env=env(),
                            stdout=log, stderr=subprocess.STDOUT)
    parts: dict[tuple[str, int], list[Timed]] = {}
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc)
        share = -(-n // rounds)
        for _ in range(rounds):  # every cell in turn, each round
            for c in levels:
                parts.setdefault((ALONE, c), []).append(
                    inprocess(lambda: model.predict_proba(one), share, c))
                parts.setdefault((DECODE, c), []).append(inprocess(
                    lambda: model.predict_proba(decode(raw, spec)[None]), share, c))
                for name, (path, body, headers) in requests.items():
                    parts.setdefault((name, c), []).append(
                        http(port, path, body, headers, share, c))
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()

    by = {k: summary(v) for k, v in parts.items()}
    print(f"\n{share * rounds} requests per cell in {rounds} interleaved round(s), one "
          f"224x224 JPEG ({len(raw):,} bytes) per request, 127.0.0.1, {os.cpu_count()} CPUs\n")
    print("| target | concurrency | req/s | p50 ms | p95 ms |")
    print("|---|---:|---:|---:|---:|")
    for c in levels:
        for name in (ALONE, DECODE, PREDICT, V2_JSON, V2_BINARY):
            rps, p50, p95 = by[(name, c)]
            print(f"| {name} | {c} | {rps:,.0f} | {p50:.2f} | {p95:.2f} |")
    print()
    for c in levels:
        alone, decoding = by[(ALONE, c)], by[(DECODE, c)]
        for name in (PREDICT, V2_BINARY):
            gw = by[(name, c)]
            print(f"concurrency {c}, {name}: throughput {gw[0] / alone[0]:.2f}x the model "
                  f"alone, {gw[0] / decoding[0]:.2f}x decode + model in process; p50 "
                  f"{gw[1]:.2f} ms vs {alone[1]:.2f} ms (+{gw[1] - decoding[1]:.2f} ms over "
                  "decode + model)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
