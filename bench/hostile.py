"""The gateway under hostile traffic: three attacks on a real `mlci serve` on 127.0.0.1, each
with an honest caller measured meanwhile. A second loopback address (127.0.0.2) plays the
attacker. Bounded: a few seconds per attack.

    python bench/hostile.py            # the attacks as in the issue
    python bench/hostile.py --quick    # fewer connections (CI)

Rows:
- trickle /healthz: N connections send `GET /healthz` with `Content-Length: 1000000` and
  then one byte every 0.2 s (--max-connections 64); then 5 fresh /healthz probes, and how
  many of the N are still open 2 s later;
- slow uploads: 32 uploads to /predict from one address at 2 KB/s (fast enough for the
  minimum rate), then 20 /predict calls from another address;
- log flood: one address posts 200-row requests for 3 s (--prediction-log-max-mb 2): how many
  were answered and logged, and whether another caller is answered.

Run it against another checkout's sources with PYTHONPATH=<that>/src to compare.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tables import table  # noqa: E402
from serve import BIN, env, free_port, prepare, wait_http  # noqa: E402

ATTACKER = "127.0.0.2"


class Served:
    def __init__(self, root: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.p = subprocess.Popen([str(BIN / "mlci"), "serve", "--port", str(self.port), *args],
                                  cwd=root, env=env(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        wait_http(self.url + "/readyz", self.p)

    def stop(self) -> None:
        self.p.terminate()
        self.p.wait(15)


def _connect(port: int, head: bytes) -> socket.socket | None:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2, source_address=(ATTACKER, 0))
        s.sendall(head)
        return s
    except OSError:
        return None


def _trickle(socks: list[socket.socket], stop: threading.Event, every: float, size: int) -> None:
    while not stop.wait(every):
        for s in socks:
            try:
                s.sendall(b"x" * size)
            except OSError:
                pass


def _open(s: socket.socket) -> bool:
    s.settimeout(0.01)
    try:
        while True:
            if s.recv(65536) == b"":
                return False
    except TimeoutError:
        return True
    except OSError:
        return False


def _healthz(port: int) -> float | None:
    t0 = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = s.recv(4096)
    except OSError:
        return None
    return time.perf_counter() - t0 if data.startswith(b"HTTP/1.1 200") else None


def trickle_healthz(root: Path, n: int) -> list[str]:
    g = Served(root, "--max-connections", "64", "--body-timeout", "3")
    stop = threading.Event()
    try:
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
        socks = [s for s in (_connect(g.port, head) for _ in range(n)) if s]
        threading.Thread(target=_trickle, args=(socks, stop, 0.2, 1), daemon=True).start()
        time.sleep(0.5)
        probes = [_healthz(g.port) for _ in range(5)]
        time.sleep(2.0)
        still = sum(_open(s) for s in socks)
        ok = [p for p in probes if p is not None]
        return [f"trickle /healthz ({len(socks)} connections)",
                f"{len(ok)}/5 /healthz answered"
                + (f", worst {max(ok) * 1000:.0f} ms" if ok else ""),
                f"{still}/{len(socks)} attacker connections still open after 2.5 s"]
    finally:
        stop.set()
        g.stop()


def slow_uploads(root: Path, rows: list[list[float]]) -> list[str]:
    import httpx

    g = Served(root, "--body-timeout", "8")
    stop = threading.Event()
    try:
        head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 900000\r\n\r\n{\"instances\": [")
        socks = [s for s in (_connect(g.port, head) for _ in range(32)) if s]
        threading.Thread(target=_trickle, args=(socks, stop, 0.25, 512), daemon=True).start()
        time.sleep(1.5)
        with httpx.Client(timeout=5) as c:
            codes = [c.post(g.url + "/predict", json={"instances": [rows[i]]}).status_code
                     for i in range(20)]
        return ["32 slow uploads from one address", f"{codes.count(200)}/20 honest calls 200, "
                f"{codes.count(503)} got 503", "-"]
    finally:
        stop.set()
        g.stop()


def log_flood(root: Path, rows: list[list[float]]) -> list[str]:
    import httpx

    g = Served(root, "--prediction-log-max-mb", "2")
    try:
        body = json.dumps({"instances": rows[:200]}).encode()
        codes: list[int] = []
        t0 = time.monotonic()
        with httpx.Client(timeout=10, transport=httpx.HTTPTransport(
                local_address=ATTACKER)) as c:
            while time.monotonic() - t0 < 3:
                codes.append(c.post(g.url + "/predict", content=body).status_code)
        other = httpx.post(g.url + "/predict", json={"instances": rows[:1]}, timeout=10)
        return ["anonymous flood, 200-row requests, 3 s",
                f"another caller: {other.status_code}",
                f"flood: {codes.count(200)} answered ({codes.count(200) * len(body) / 1e6:.1f} "
                f"MB of rows to log), {codes.count(429)} x 429, {codes.count(503)} x 503"]
    finally:
        g.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer trickling connections")
    ap.add_argument("--project", type=Path, default=None,
                    help="a digits project with a champion (default: train one)")
    a = ap.parse_args(argv)
    root = prepare(a.project)
    from mlci.serve.loadgen import read_csv

    rows, _ = read_csv(str(root / "data" / "golden.csv"), "digit")
    out = [trickle_healthz(root, 40 if a.quick else 100), slow_uploads(root, rows),
           log_flood(root, rows)]
    table("The gateway under hostile traffic", ["attack", "honest callers", "attacker"], out,
          "127.0.0.2 attacks, 127.0.0.1 is the honest caller; default limits unless named.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
