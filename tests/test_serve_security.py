"""Attacks on `mlci serve` (real uvicorn on 127.0.0.1, real sockets, the real digits models):
each test first shows the attack would bite (the input breaks the model, the decode is slow,
the same trickle exhausts uvicorn's defaults), then that the gateway refuses it, counts the
refusal, and keeps `/healthz` fast meanwhile."""

from __future__ import annotations

import base64
import io
import json
import os
import resource
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from test_serve_support import (
    FEEDBACK_TOKEN,
    HEALTHZ_MEDIAN,
    HEALTHZ_WORST,
    WORSE,
    Gateway,
    attack,
    clean_env,
    free_port,
    healthz_seconds,
    healthz_while,
    project,
    statuses,
)

from mlci.serve.guard import token_ok
from mlci.serve.loadgen import read_csv
from mlci.serve.observations import rollout_observations
from mlci.serve.state import CanaryState, read_state, state_path, write_state

# the first test may train the models; timed assertions: run alone under pytest-xdist
pytestmark = [pytest.mark.e2e, pytest.mark.exclusive, pytest.mark.timeout(600)]
AUTH = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}
LIMITS = ("--image-max", "16",  # the digits model takes flat pixels: images by opt-in
          "--max-body", "2000000", "--max-image-pixels", "100000", "--max-concurrent", "4",
          "--max-client-concurrent", "4",
          "--header-timeout", "1", "--body-timeout", "1", "--max-connections", "64")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory):
    root = project(tmp_path_factory.mktemp("serve-sec") / "digits")
    g = Gateway(root, None, *LIMITS).start()
    yield g
    g.stop()


@pytest.fixture(scope="module")
def digits() -> tuple[list[list[float]], list[int]]:
    return read_csv(str(Path(__file__).parents[1] / "examples/digits/data/golden.csv"), "digit")


COLS = [f"pixel_{i}_{j}" for i in range(8) for j in range(8)]


def metric(gw: Gateway, line_start: str) -> float:
    text = httpx.get(gw.url + "/metrics", timeout=5).text
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
               if ln.startswith(line_start))


def rollout(gw: Gateway, weight: float, cid: str) -> None:
    p = state_path(gw.root / ".mlci")
    old = read_state(p)
    st = CanaryState(id=cid, model="digits", champion="1", challenger=WORSE, steps=[weight],
                     weight=weight, generation=old.generation if old else 0)
    write_state(p, st)
    deadline = time.monotonic() + 20
    while gw.readyz().get("generation") != st.generation:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def end_rollout(gw: Gateway) -> None:
    p = state_path(gw.root / ".mlci")
    st = read_state(p)
    st.status = "rolled-back"
    write_state(p, st)


# ------------------------------------------------------------------ input and labels


def test_nan_and_wrong_types_are_400_and_never_model_errors(gw: Gateway, digits) -> None:
    import mlflow.sklearn
    import numpy as np

    rows, _ = digits
    # the attack's input does break the model: NaN reaching it raises
    mlflow.set_tracking_uri(f"sqlite:///{gw.root / '.mlci' / 'mlflow.db'}")
    model = mlflow.sklearn.load_model(f"models:/digits/{WORSE}")
    bad = np.asarray([rows[0]], dtype=float)
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict_proba(bad)
    rollout(gw, 100, "c-nan")  # every request goes to the challenger
    try:
        obj = dict(zip(COLS, rows[0], strict=True))
        nan_body = json.dumps({"instances": [obj]}).replace(
            f'"pixel_0_3": {obj["pixel_0_3"]}', '"pixel_0_3": NaN')
        assert "NaN" in nan_body
        bodies = [nan_body] * 30 + [
            json.dumps({"instances": [{**obj, "pixel_0_3": None}]}),
            json.dumps({"instances": [{**obj, "pixel_0_3": "3"}]}),
            json.dumps({"instances": [{**obj, "pixel_0_3": True}]}),
            json.dumps({"instances": [{**obj, "pixel_0_3": [1]}]}),
            json.dumps({"instances": [{k: v for k, v in obj.items() if k != "pixel_7_7"}]}),
            json.dumps({"instances": [rows[0][:63] + [None]]}),
            '{"instances": [[' + ",".join(["Infinity"] * 64) + "]]}",
        ]
        with httpx.Client(timeout=10) as c:
            got = [c.post(gw.url + "/predict", content=b,
                          headers={"content-type": "application/json"}) for b in bodies]
        assert [r.status_code for r in got] == [400] * len(bodies), [r.text for r in got]
        assert "missing" in got[0].json()["error"] and "pixel_0_3" in got[0].json()["error"]
        assert "lacks feature 'pixel_7_7'" in got[34].json()["error"]
        assert "infinite" in got[-1].json()["error"]
        # no model error counted, nothing in the rollout's evidence
        assert metric(gw, "mlci_errors_total") == 0
        seen = rollout_observations(gw.root / ".mlci" / "predictions.db", "c-nan")["variants"]
        assert "challenger" not in seen or len(seen["challenger"].errors) == 0, seen
        assert metric(gw, 'mlci_refused_total{endpoint="predict",reason="bad_input"}') \
            >= len(bodies)
        ok = httpx.post(gw.url + "/predict", json={"instances": [obj]}, timeout=10)
        assert ok.status_code == 200 and ok.json()["model_version"] == WORSE
    finally:
        end_rollout(gw)


def test_feedback_needs_the_token(gw: Gateway, digits) -> None:
    rows, labels = digits
    ids = [httpx.post(gw.url + "/predict", json={"instances": [rows[i]]}, timeout=10)
           .json() for i in range(150)]
    with httpx.Client(timeout=10) as c:
        flipped = [{"request_id": r["request_id"], "label": (r["predictions"][0] + 1) % 10}
                   for r in ids]
        anon = [c.post(gw.url + "/feedback", json=b) for b in flipped]
        wrong = c.post(gw.url + "/feedback", json=flipped[0],
                       headers={"Authorization": "Bearer " + "x" * len(FEEDBACK_TOKEN)})
    assert {r.status_code for r in anon} == {401} and wrong.status_code == 401
    assert anon[0].headers["www-authenticate"] == "Bearer"
    con = sqlite3.connect(gw.root / ".mlci" / "predictions.db")
    labelled = {r[0] for r in con.execute("SELECT request_id FROM feedback")}
    n = len(labelled & {r["request_id"] for r in ids})
    con.close()
    assert n == 0  # not one flipped label landed
    assert metric(gw, 'mlci_refused_total{endpoint="feedback",reason="unauthorized"}') == 151
    assert httpx.post(gw.url + "/feedback", json={"request_id": ids[0]["request_id"],
                                                  "label": labels[0]}, headers=AUTH,
                      timeout=10).status_code == 200


def test_token_compare() -> None:
    assert token_ok("Bearer abc", "abc") and token_ok("bearer  abc ", "abc")
    assert not token_ok(None, "abc") and not token_ok("abc", "abc")
    assert not token_ok("Bearer abd", "abc") and not token_ok("Bearer ab", "abc")


def test_labels_are_checked_and_written_once(gw: Gateway, digits) -> None:
    rows, labels = digits
    r = httpx.post(gw.url + "/predict", json={"instances": [rows[3]]}, timeout=10).json()
    rid = r["request_id"]

    def fb(label, **kw) -> httpx.Response:
        return httpx.post(gw.url + "/feedback", json={"request_id": rid, "label": label},
                          headers=AUTH, timeout=10, **kw)

    before = metric(gw, 'mlci_refused_total{endpoint="feedback",reason="bad_label"}')
    assert fb("x" * 60_000).status_code == 400        # not a class
    assert fb(11).status_code == 400 and fb(None).status_code == 400
    assert fb({"a": 1}).status_code == 400 and fb([1, 2]).status_code == 400
    big = httpx.post(gw.url + "/feedback", content=json.dumps(
        {"request_id": rid, "label": "x" * 5_000_000}), headers=AUTH, timeout=10)
    assert big.status_code == 413                      # the 5 MB label: over the body limit
    assert metric(gw, 'mlci_refused_total{endpoint="feedback",reason="bad_label"}') \
        == before + 5
    assert fb(str(labels[3])).status_code == 200       # "3" names class 3
    again = fb((labels[3] + 1) % 10)
    assert again.status_code == 409 and "already" in again.json()["error"]
    con = sqlite3.connect(gw.root / ".mlci" / "predictions.db")
    stored = con.execute("SELECT label FROM feedback WHERE request_id=?", (rid,)).fetchone()
    con.close()
    assert json.loads(stored[0]) == labels[3]          # the first label, as the class value
    # racing labels for one fresh request: exactly one lands
    rid = httpx.post(gw.url + "/predict", json={"instances": [rows[4]]}, timeout=10
                     ).json()["request_id"]
    out: list[int] = []

    def send(y: int) -> None:
        out.append(httpx.post(gw.url + "/feedback", json={"request_id": rid, "label": y},
                              headers=AUTH, timeout=10).status_code)

    ts = [threading.Thread(target=send, args=(y,)) for y in range(10)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(out).count(200) == 1 and sorted(out).count(409) + sorted(out).count(503) == 9
    assert metric(gw, 'mlci_refused_total{endpoint="feedback",reason="duplicate_label"}') >= 2


# ------------------------------------------------------------------ resource exhaustion


def png(side: int) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (side, side)).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode()


def calm(lat: list[float | None]) -> bool:
    ok = [v for v in lat if v is not None]
    return len(ok) == len(lat) and statistics.median(ok) < HEALTHZ_MEDIAN \
        and max(ok) < HEALTHZ_WORST


def test_pixel_bombs_are_refused_before_decoding(gw: Gateway, tmp_path: Path) -> None:
    from PIL import Image

    bomb = png(9000)
    body = json.dumps({"images": [bomb] * 10}).encode()
    assert len(body) < 1_100_000  # about 1 MB on the wire, 810 million pixels
    cap, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        t0 = time.perf_counter()
        Image.open(io.BytesIO(base64.b64decode(bomb))).convert("L")
        one = time.perf_counter() - t0  # what decoding one costs (x10 per request)
    finally:
        Image.MAX_IMAGE_PIXELS = cap  # Pillow's own cap, for the rest of the process
    a = attack(gw.port, "/predict", body, threads=3, seconds=3, scratch=tmp_path)
    lat = healthz_while(gw.port, 3.0)
    codes = statuses(a)
    assert codes and set(codes) <= {400, 503}, set(codes)
    per_request = 3 * 3 / len(codes)
    assert per_request < one * 10 / 2, (per_request, one)  # refused without decoding
    assert calm(lat), lat
    assert metric(gw, 'mlci_refused_total{endpoint="predict",reason="too_many_pixels"}') >= 1


def test_big_bodies_are_refused_without_reading_them(gw: Gateway, tmp_path: Path) -> None:
    pid = gw.proc.pid
    rss0 = _rss_mb(pid)
    big = b'{"instances": [' + b"[0]," * 5_000_000 + b"[0]]}"  # 20 MB
    whole = attack(gw.port, "/predict", big, threads=1, seconds=3, scratch=tmp_path)
    # the same size, chunked (no Content-Length): cut off while reading
    chunked = attack(gw.port, "/predict", big, threads=1, seconds=3, chunked=True,
                     scratch=tmp_path)
    lat = healthz_while(gw.port, 3.0)
    codes, codes_chunked = statuses(whole), statuses(chunked)
    assert codes and set(codes) == {413}, set(codes)
    # a chunked sender may see the connection closed before it reads the 413
    assert codes_chunked and set(codes_chunked) <= {413, 0} and 413 in codes_chunked
    assert calm(lat), lat
    assert _rss_mb(pid) - rss0 < 60
    assert metric(gw, 'mlci_refused_total{endpoint="predict",reason="body_too_large"}') >= 2


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_slow_body_times_out_and_overload_is_503(gw: Gateway, digits) -> None:
    rows, _ = digits
    # a body that never completes: 408 after --body-timeout (1 s), connection closed
    s = socket.create_connection(("127.0.0.1", gw.port))
    s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"inst")
    s.settimeout(5)
    t0 = time.perf_counter()
    head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 408") and 0.8 < time.perf_counter() - t0 < 3
    s.close()
    # four requests in flight (bodies half sent) fill --max-concurrent 4: the next is a 503
    held = []
    for _ in range(4):
        h = socket.create_connection(("127.0.0.1", gw.port))
        h.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        held.append(h)
    time.sleep(0.2)
    r = httpx.post(gw.url + "/predict", json={"instances": [rows[0]]}, timeout=5)
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert calm([healthz_seconds(gw.port) for _ in range(5)]) and gw.readyz()["ready"]
    for h in held:
        h.close()
    time.sleep(1.5)  # their body deadline passes; slots free again
    assert httpx.post(gw.url + "/predict", json={"instances": [rows[0]]},
                      timeout=5).status_code == 200
    assert metric(gw, 'mlci_refused_total{endpoint="predict",reason="overloaded"}') >= 1
    assert metric(gw, 'mlci_refused_total{endpoint="predict",reason="body_timeout"}') >= 1


def slowloris(port: int, n: int) -> list[socket.socket]:
    """`n` connections, each with a request's first header lines and never the end."""
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nX-a: b\r\n")
        except OSError:
            break
        socks.append(s)
    return socks


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


PLAIN_UVICORN = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
async def ok(request): return JSONResponse({"status": "ok"})
uvicorn.run(Starlette(routes=[Route("/healthz", ok)]), host="127.0.0.1",
            port=int(sys.argv[1]), http="h11", log_level="critical")
"""


def test_slowloris_with_uvicorn_defaults_exhausts_descriptors() -> None:
    """The attack as it hit the gateway before: uvicorn's default h11 protocol holds every
    half-sent request open for ever, so 300 of them use up a 256-descriptor limit."""
    port = free_port()
    p = subprocess.Popen([sys.executable, "-c", PLAIN_UVICORN, str(port)], env=clean_env(),
                         preexec_fn=_limit_fds, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while healthz_seconds(port) is None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        socks = slowloris(port, 300)
        time.sleep(0.5)
        assert healthz_seconds(port, timeout=3) is None  # locked out
        time.sleep(2)
        assert all(_still_open(s) for s in socks[:50])  # nothing ever closes them
        for s in socks:
            s.close()
    finally:
        p.kill()
        p.wait(10)


def _still_open(s: socket.socket) -> bool:
    s.settimeout(0.01)
    try:
        return s.recv(1) != b""
    except TimeoutError:
        return True
    except OSError:
        return False


def test_slowloris_is_inert(tmp_path: Path) -> None:
    root = project(tmp_path / "digits")
    g = Gateway(root, None, preexec_fn=_limit_fds).start()  # default limits, 256 descriptors
    try:
        t0 = time.monotonic()
        socks = slowloris(g.port, 300)
        assert len(socks) == 300
        time.sleep(0.3)
        lat = [healthz_seconds(g.port) for _ in range(10)]
        assert calm(lat), lat
        fds = len(os.listdir(f"/proc/{g.proc.pid}/fd"))
        assert fds < 256 - 20, fds  # the connection cap fits the descriptor limit
        assert time.monotonic() - t0 < 5  # all this within the 5 s header deadline
        time.sleep(6)  # past it: every trickling connection is closed
        assert not any(_still_open(s) for s in socks)
        for s in socks:
            s.close()
        text = httpx.get(g.url + "/metrics", timeout=5).text
        dropped = {ln.split('"')[1]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
                   if ln.startswith("mlci_connections_dropped_total{")}
        assert dropped.get("evicted", 0) > 0 and dropped.get("header_timeout", 0) > 0
        assert sum(dropped.values()) >= 290, dropped
        assert g.readyz()["ready"]
    finally:
        g.stop()
