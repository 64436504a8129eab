"""The prediction log under faults, the predict token and the salted routing key, on
`mlci serve` on 127.0.0.1 with the real digits models.

The full disk is SQLite's own: the gateway caps the log with `--prediction-log-max-mb`
(`PRAGMA max_page_count`), and a write past the cap fails with SQLITE_FULL, "database or
disk is full", the very error a full file system gives; nothing is injected."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import statistics
import time
from pathlib import Path

import httpx
import pytest
from test_serve_support import (
    GOOD,
    HEALTHZ_MEDIAN,
    HEALTHZ_WORST,
    Gateway,
    attack,
    healthz_while,
    project,
    statuses,
)

from mlci.serve.loadgen import read_csv
from mlci.serve.routing import bucket, route_key
from mlci.serve.state import CanaryState, read_state, state_path, write_state

# the first test may train the models; timed assertions: run alone under pytest-xdist
pytestmark = [pytest.mark.e2e, pytest.mark.exclusive, pytest.mark.timeout(600)]
TOKEN = "predict-token-abcdefghijklmnop"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
# fail closed, no retention and no per-client share: the full log is what these tests show
ARGS = ("--log-lock-timeout", "0.3",
        "--prediction-log-max-mb", "0.5", "--log-failure", "closed",
        "--prediction-log-retain-mb", "0", "--prediction-log-client-share", "1")


@pytest.fixture(scope="module")
def digits() -> tuple[list[list[float]], list[int]]:
    return read_csv(str(Path(__file__).parents[1] / "examples/digits/data/golden.csv"), "digit")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory):
    root = project(tmp_path_factory.mktemp("serve-log") / "digits")
    g = Gateway(root, None, *ARGS, env={"MLCI_PREDICT_TOKEN": TOKEN}).start()
    yield g
    g.stop()


def predict(gw: Gateway, body: dict, **headers: str) -> httpx.Response:
    return httpx.post(gw.url + "/predict", json=body, headers={**BEARER, **headers},
                      timeout=10)


def metric(gw: Gateway, line_start: str) -> float:
    text = httpx.get(gw.url + "/metrics", timeout=5).text
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
               if ln.startswith(line_start))


def test_predict_token(gw: Gateway, digits) -> None:
    rows, _ = digits
    assert httpx.post(gw.url + "/predict", json={"instances": [rows[0]]},
                      timeout=10).status_code == 401
    assert predict(gw, {"instances": [rows[0]]}, Authorization="Bearer nope").status_code \
        == 401
    v2 = {"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP64", "data": rows[0]}]}
    assert httpx.post(gw.url + "/v2/models/digits/infer", json=v2,
                      timeout=10).status_code == 401
    assert predict(gw, {"instances": [rows[0]]}).status_code == 200
    assert httpx.get(gw.url + "/healthz", timeout=5).status_code == 200  # probes stay open
    assert metric(gw, 'mlci_refused_total{endpoint="predict",reason="unauthorized"}') == 2


def test_routing_key_is_salted_and_survives_a_restart(gw: Gateway, digits) -> None:
    rows, _ = digits
    user = "493817"  # a 6-digit user id
    p = state_path(gw.root / ".mlci")
    old = read_state(p)
    st = CanaryState(id="c-salt", model="digits", champion="1", challenger=GOOD,
                     steps=[50], weight=50, generation=old.generation if old else 0)
    write_state(p, st)
    deadline = time.monotonic() + 20
    while gw.readyz().get("generation") != st.generation:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first = predict(gw, {"instances": [rows[0]]}, **{"X-Mlci-Key": user}).json()
    db = gw.root / ".mlci" / "predictions.db"
    con = sqlite3.connect(db)
    stored = con.execute("SELECT route_key FROM predictions WHERE request_id=?",
                         (first["request_id"],)).fetchone()[0]
    con.close()
    # the attack: hash every 6-digit id the way the log used to (unsalted) -- no match now
    unsalted = {hashlib.blake2b(f"{i:06d}".encode(), digest_size=8).hexdigest()
                for i in range(1_000_000)}
    assert hashlib.blake2b(user.encode(), digest_size=8).hexdigest() in unsalted
    assert stored not in unsalted
    assert user not in httpx.get(gw.url + "/metrics", timeout=5).text
    # with the deployment's secret (kept apart from the log, mode 0600) it would match
    secret_file = gw.root / ".mlci" / "serve" / "route-secret"
    assert secret_file.stat().st_mode & 0o077 == 0
    secret = bytes.fromhex(secret_file.read_text().strip())
    assert route_key(user, secret) == stored
    # a restart keeps the secret, so the key hashes the same and stays on its variant
    variants = {predict(gw, {"instances": [rows[0]]}, **{"X-Mlci-Key": f"u{i}"}).json()[
        "variant"] for i in range(40)}
    assert variants == {"champion", "challenger"}
    before = {f"u{i}": predict(gw, {"instances": [rows[0]]}, **{"X-Mlci-Key": f"u{i}"}).json()[
        "variant"] for i in range(40)}
    gw.stop()
    gw.start()
    after = {f"u{i}": predict(gw, {"instances": [rows[0]]}, **{"X-Mlci-Key": f"u{i}"}).json()[
        "variant"] for i in range(40)}
    assert after == before
    assert bytes.fromhex(secret_file.read_text().strip()) == secret
    assert all((bucket("c-salt", k, secret) < 5000) == (v == "challenger")
               for k, v in after.items())
    st = read_state(p)
    st.status = "rolled-back"
    write_state(p, st)


def test_another_process_holding_the_lock_stalls_nothing(gw: Gateway, digits,
                                                        tmp_path: Path) -> None:
    rows, _ = digits
    db = gw.root / ".mlci" / "predictions.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process takes the write lock and keeps it
    try:
        body = json.dumps({"instances": [rows[1]]}).encode()
        a = attack(gw.port, "/predict", body, threads=4, seconds=2.5, token=TOKEN,
                   scratch=tmp_path)
        lat = healthz_while(gw.port, 2.5)
        codes = statuses(a)
        # each waits at most --log-lock-timeout (0.3 s), then 503 without an answer
        assert codes and set(codes) == {503}, set(codes)
        ok = [v for v in lat if v is not None]
        assert len(ok) == len(lat) and statistics.median(ok) < HEALTHZ_MEDIAN \
            and max(ok) < HEALTHZ_WORST, lat
        r = httpx.get(gw.url + "/readyz", timeout=5)
        assert r.status_code == 503 and "locked" in r.json()["log_error"]
        assert httpx.get(gw.url + "/v2/health/ready", timeout=5).status_code == 503
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    time.sleep(1.1)
    assert httpx.get(gw.url + "/readyz", timeout=5).status_code == 200  # recovers by itself
    assert predict(gw, {"instances": [rows[1]]}).status_code == 200
    assert metric(gw, 'mlci_prediction_log_failures_total{op="predict"}') >= 1
    assert metric(gw, "mlci_errors_total") == 0  # not a model error


def test_a_full_log_fails_closed_and_shows(gw: Gateway, digits) -> None:
    rows, _ = digits
    t0 = time.time()
    codes = []
    for batch in ({"instances": rows[:200]}, {"instances": rows[:1]}):  # big, then small
        for _ in range(3000):
            r = predict(gw, batch)
            codes.append(r.status_code)
            if r.status_code != 200:
                break
        assert r.status_code == 503, codes[-3:]
        assert "not answered" in r.json()["error"] and "predictions" not in r.json()
    assert codes[0] == 200 and set(codes) == {200, 503}
    rz = httpx.get(gw.url + "/readyz", timeout=5)
    assert rz.status_code == 503 and "full" in rz.json()["log_error"]
    assert httpx.get(gw.url + "/healthz", timeout=5).status_code == 200
    assert metric(gw, 'mlci_prediction_log_failures_total{op="predict"}') >= 1
    assert metric(gw, "mlci_errors_total") == 0
    # every answered request is in the log: nothing was served unlogged
    con = sqlite3.connect(gw.root / ".mlci" / "predictions.db")
    logged = con.execute("SELECT COUNT(*) FROM predictions WHERE ts > ?",
                         (t0,)).fetchone()[0]
    con.close()
    assert logged == codes.count(200)
