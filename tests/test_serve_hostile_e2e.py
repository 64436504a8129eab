"""Connection attacks on a real `mlci serve` (uvicorn on 127.0.0.1, real sockets, the real
digits models). A second loopback address (127.0.0.2) plays the attacker, so the per-client
limits can tell it from the honest caller on 127.0.0.1. Every test is bounded: a few
seconds of attack, then the checks."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest
from test_serve_support import Gateway, healthz_seconds, project

pytestmark = [pytest.mark.e2e, pytest.mark.exclusive, pytest.mark.timeout(300)]
ATTACKER = "127.0.0.2"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return project(tmp_path_factory.mktemp("serve-hostile") / "digits")


def dropped(gw: Gateway) -> dict[str, float]:
    text = httpx.get(gw.url + "/metrics", timeout=5).text
    return {ln.split('"')[1]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
            if ln.startswith("mlci_connections_dropped_total{")}


def connect(port: int, head: bytes, source: str = ATTACKER) -> socket.socket | None:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2,
                                     source_address=(source, 0))
        s.sendall(head)
        return s
    except OSError:
        return None


def trickle(socks: list[socket.socket], stop: threading.Event, every: float = 0.2,
            size: int = 1) -> None:
    """Send `size` bytes on every socket each `every` seconds until `stop` (or it is
    closed by the server)."""
    while not stop.wait(every):
        for s in socks:
            try:
                s.sendall(b"x" * size)
            except OSError:
                pass


def closed(s: socket.socket) -> bool:
    s.settimeout(0.01)
    try:
        while True:
            if s.recv(65536) == b"":
                return True
    except TimeoutError:
        return False
    except OSError:
        return True


def test_trickled_bodies_on_healthz_are_closed_and_healthz_answers(root: Path) -> None:
    """GET /healthz with a declared 1 MB body sent a byte at a time: before, uvicorn answered
    and then held the connection for as long as the body trickled (uvicorn's keep-alive
    timer restarts on every byte); 100 of them filled
    --max-connections 64 and every new client was dropped."""
    gw = Gateway(root, None, "--max-connections", "64", "--body-timeout", "3").start()
    stop = threading.Event()
    try:
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
        socks = [s for s in (connect(gw.port, head) for _ in range(100)) if s]
        t = threading.Thread(target=trickle, args=(socks, stop), daemon=True)
        t.start()
        time.sleep(0.5)
        # an honest probe is answered at once (a trickler is evicted to make room)
        lat = [healthz_seconds(gw.port, timeout=3) for _ in range(5)]
        assert all(v is not None and v < 1.0 for v in lat), lat
        time.sleep(1.5)  # 5 bytes/s is under --min-body-rate: closed after a second
        assert all(closed(s) for s in socks)
        d = dropped(gw)
        assert sum(d.values()) >= len(socks), d  # each closed by the guard, and counted
        assert d.get("body_too_slow", 0) > 0, d
    finally:
        stop.set()
        gw.stop()


def test_slow_uploads_of_one_client_leave_slots_for_others(root: Path) -> None:
    """32 uploads from one address, each fast enough for --min-body-rate, hold the 32
    request slots until --body-timeout: before, 19 of 20 calls of another client got 503."""
    from mlci.serve.loadgen import read_csv

    rows, _ = read_csv(str(root / "data" / "golden.csv"), "digit")
    gw = Gateway(root, None, "--body-timeout", "8").start()
    stop = threading.Event()
    try:
        head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 900000\r\n\r\n{\"instances\": [")
        socks = [s for s in (connect(gw.port, head) for _ in range(32)) if s]
        assert len(socks) == 32
        t = threading.Thread(target=trickle, args=(socks, stop, 0.25, 512), daemon=True)
        t.start()  # 2 KB/s each: over the minimum rate, so only the deadline ends them
        time.sleep(1.5)
        with httpx.Client(timeout=5) as c:
            codes = [c.post(gw.url + "/predict", json={"instances": [rows[i]]}).status_code
                     for i in range(20)]
        assert codes == [200] * 20, codes
        text = httpx.get(gw.url + "/metrics", timeout=5).text
        assert 'reason="client_overloaded"} 8.0' in text  # the attacker's 25th to 32nd
    finally:
        stop.set()
        gw.stop()


def _rows(root: Path) -> list[list[float]]:
    from mlci.serve.loadgen import read_csv

    return read_csv(str(root / "data" / "golden.csv"), "digit")[0]


def test_an_anonymous_flood_gets_its_share_of_the_log_and_a_full_log_fails_open(
        root: Path) -> None:
    """One address posting 200-row requests as fast as it can: before, every one was logged
    (about 10 MB/s, no retention), and once the log was full every caller got 503."""
    rows = _rows(root)
    # retention: 90% of the 2 MB cap; the share: 5% of that a minute (90 KB)
    gw = Gateway(root, None, "--prediction-log-max-mb", "2").start()
    db = root / ".mlci" / "predictions.db"
    try:
        body = json.dumps({"instances": rows[:200]}).encode()
        t0 = time.monotonic()
        codes = []
        with httpx.Client(timeout=10, transport=httpx.HTTPTransport(
                local_address=ATTACKER)) as c:
            while time.monotonic() - t0 < 3:
                codes.append(c.post(gw.url + "/predict", content=body).status_code)
        assert codes[0] == 200 and codes.count(429) > len(codes) // 2, codes
        assert codes.count(200) * len(body) <= 100_000  # its share
        # another client is answered, logged
        ok = httpx.post(gw.url + "/predict", json={"instances": rows[:1]}, timeout=10)
        assert ok.status_code == 200
        con = sqlite3.connect(db)
        assert con.execute("SELECT COUNT(*) FROM predictions WHERE request_id=?",
                           (ok.json()["request_id"],)).fetchone()[0] == 1
        con.close()
    finally:
        gw.stop()
    # the same log at its hard cap, filled by many clients: answered, counted, shown
    gw = Gateway(root, None, "--prediction-log-max-mb", "1",
                 "--prediction-log-retain-mb", "0", "--prediction-log-client-share",
                 "1").start()
    try:
        with httpx.Client(timeout=10) as c:
            codes = [c.post(gw.url + "/predict", json={"instances": rows[:200]}).status_code
                     for _ in range(60)]
            codes += [c.post(gw.url + "/predict", json={"instances": rows[:1]}).status_code
                      for _ in range(200)]
            rz = c.get(gw.url + "/readyz")
            text = c.get(gw.url + "/metrics").text
        assert set(codes) == {200}, codes
        assert rz.status_code == 200 and rz.json()["logging"] is False, rz.json()
        assert "full" in rz.json()["log_error"]
        assert 'mlci_unlogged_requests_total{variant="champion"}' in text
    finally:
        gw.stop()
