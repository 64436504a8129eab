"""Bounded traffic against a gateway: for tests, the demo and the benchmark.

Every run stops by itself: after `requests` requests, after `seconds`, or when `stop` is set,
whichever comes first. Each worker thread holds one keep-alive connection.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sent:
    request_id: str | None
    status: int              # HTTP status, or 0 when the connection failed
    variant: str | None
    version: str | None
    key: str | None
    latency_ms: float
    correct: bool | None = None


@dataclass
class LoadResult:
    sent: list[Sent] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> list[Sent]:
        return [s for s in self.sent if s.status == 200]

    def rate(self) -> float:
        return len(self.sent) / self.seconds if self.seconds else 0.0


def run_load(url: str, rows: list[list[float]], labels: list[Any] | None = None, *,
             requests: int = 1000, seconds: float = 30.0, concurrency: int = 4,
             keys: int | None = 200, feedback: bool = True, key_header: str = "X-Mlci-Key",
             stop: threading.Event | None = None, path: str = "/predict",
             body: Any = None, seed: int = 0,
             feedback_token: str | None = None, images: bool = False) -> LoadResult:
    """Send a (seeded) random instance as request i, with key `user-{i % keys}` when
    `keys`, then its label to /feedback when `feedback` and labels are given, with the
    bearer token `feedback_token` (default: MLCI_FEEDBACK_TOKEN). With `images`, `rows`
    are base64 images (`read_images`) sent as `{"images": [...]}`."""
    import os

    import httpx

    token = feedback_token or os.environ.get("MLCI_FEEDBACK_TOKEN")
    auth = {"Authorization": f"Bearer {token}"} if token else {}

    url = url.rstrip("/")
    res = LoadResult()
    lock = threading.Lock()
    counter = iter(range(requests))
    stop = stop or threading.Event()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        with httpx.Client(timeout=10.0) as c:
            while not stop.is_set() and time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                key = f"user-{i % keys}" if keys else None
                headers = {key_header: key} if key else {}
                j = random.Random(seed * 1_000_003 + i).randrange(len(rows)) if rows else 0
                payload = body if body is not None else \
                    {"images" if images else "instances": [rows[j]]}
                t0 = time.perf_counter()
                try:
                    r = c.post(url + path, json=payload, headers=headers)
                    status = r.status_code
                    data = r.json() if r.headers.get("content-type", "").startswith(
                        "application/json") else {}
                except (httpx.HTTPError, ValueError):
                    status, data = 0, {}
                    time.sleep(0.05)  # the gateway is down: do not spin
                s = Sent(data.get("request_id"), status, data.get("variant"),
                         data.get("model_version"), key, (time.perf_counter() - t0) * 1000)
                if status == 200 and feedback and labels is not None and s.request_id:
                    y = labels[j]
                    s.correct = str(data["predictions"][0]) == str(y)
                    with contextlib.suppress(httpx.HTTPError):
                        c.post(url + "/feedback", json={"request_id": s.request_id, "label": y},
                               headers=auth)
                with lock:
                    res.sent.append(s)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 15)
    res.seconds = time.perf_counter() - t0
    return res


def read_csv(path: str, target: str) -> tuple[list[list[float]], list[Any]]:
    """Rows (as lists of floats) and labels of a CSV with a label column."""
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        rd = csv.reader(fh)
        header = next(rd)
        t = header.index(target)
        rows, labels = [], []
        for rec in rd:
            labels.append(int(rec[t]) if rec[t].lstrip("-").isdigit() else rec[t])
            rows.append([float(v) for j, v in enumerate(rec) if j != t])
    return rows, labels


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def read_images(path: str) -> tuple[list[str], list[Any]]:
    """Base64 images and labels of an image folder (one sub-folder per class, as
    `data.train`/`data.golden` may be), for `run_load(..., images=True)`."""
    import base64
    from pathlib import Path

    root = Path(path)
    rows, labels = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(sub.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                rows.append(base64.b64encode(f.read_bytes()).decode("ascii"))
                labels.append(sub.name)
    if not rows:
        raise ValueError(f"{path}: no images in class sub-folders")
    return rows, labels
