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


def run_load(url: str, rows: list[Any], labels: list[Any] | None = None, *,
             requests: int = 1000, seconds: float = 30.0, concurrency: int = 4,
             keys: int | None = 200, feedback: bool = True, key_header: str = "X-Mlci-Key",
             stop: threading.Event | None = None, path: str = "/predict",
             body: Any = None, seed: int = 0,
             feedback_token: str | None = None, images: bool = False) -> LoadResult:
    """Send a (seeded) random instance as request i (a row of values, or a base64 image
    from `read_images`), with key `user-{i % keys}` when
    `keys`, then its label to /feedback when `feedback` and labels are given, with the
    bearer token `feedback_token` (default: MLCI_FEEDBACK_TOKEN). Base64 images (`read_images`)
    are sent as `{"images": [...]}` (`images` forces that for every row)."""
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
                payload = body if body is not None else (
                    {"images": [rows[j]]} if images or isinstance(rows[j], str)
                    else {"instances": [rows[j]]})
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


def _label(v: str) -> Any:
    return int(v) if v.lstrip("-").isdigit() else v


def read_csv(path: str, target: str) -> tuple[list[list[float]], list[Any]]:
    """Rows (as lists of floats) and labels of a CSV with a label column."""
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        rd = csv.reader(fh)
        header = next(rd)
        t = header.index(target)
        rows, labels = [], []
        for line, rec in enumerate(rd, start=2):
            labels.append(_label(rec[t]))
            try:
                rows.append([float(v) for j, v in enumerate(rec) if j != t])
            except ValueError:
                raise ValueError(f"{path}, line {line}: a value is not a number; for a table "
                                 "of image files use read_images") from None
    return rows, labels


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def read_images(path: str, target: str | None = None,
                path_column: str | None = None) -> tuple[list[str], list[Any]]:
    """Images (base64, as `/predict` takes them) and their labels, from a folder with one
    sub-folder per class (the ImageFolder layout), or from a CSV with a file-path column
    (`path_column`, default: the other column) and a label column (`target`); relative
    paths are read from the CSV's folder."""
    import base64
    import csv
    from pathlib import Path

    root = Path(path)
    files: list[tuple[Path, Any]] = []
    if root.is_dir():
        for cls in sorted(d for d in root.iterdir() if d.is_dir()):
            files += [(f, _label(cls.name)) for f in sorted(cls.iterdir())
                      if f.suffix.lower() in IMAGE_SUFFIXES]
    else:
        if target is None:
            raise ValueError(f"{path}: name the label column (target) of the table")
        with open(root, newline="", encoding="utf-8") as fh:
            for rec in csv.DictReader(fh):
                col = path_column or next((c for c in rec if c != target), None)
                if col is None or col not in rec or target not in rec:
                    raise ValueError(f"{path}: needs a file-path column and {target!r}")
                f = Path(rec[col])
                files.append((f if f.is_absolute() else root.parent / f, _label(rec[target])))
    if not files:
        raise ValueError(f"{path}: no PNG, JPEG or WebP images found")
    return ([base64.b64encode(f.read_bytes()).decode() for f, _ in files],
            [y for _, y in files])
