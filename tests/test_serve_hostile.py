"""Hostile requests against the real gateway application in process (real scikit-learn
models, the real ASGI stack with its guard): each test sends the attack and checks what is
refused, how it is counted, and what reaches the evidence a canary is judged on. The
connection-level attacks run against a real `mlci serve` (test_serve_hostile_e2e.py)."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path

from serve_inprocess import COLS, TOKEN, client, digits, gateway, sample

from mlci.serve.routing import Routing


def png_header_only(side: int) -> str:
    """A PNG that declares `side` x `side` pixels (its header is all Pillow reads on open)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    raw = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0,
                                                               0, 0))
           + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return base64.b64encode(raw).decode()


# ------------------------------------------------------------------ item 5: no bare 500s


def test_hostile_bodies_are_counted_4xx_with_a_json_body(tmp_path: Path) -> None:
    gw = gateway(tmp_path, Routing("1"), {"1": "plain"}, image_max=16.0)
    x, _ = digits()
    row = [float(v) for v in x.iloc[0]]
    huge = "1" + "0" * 400  # a 401-digit integer: valid JSON, beyond any float
    attacks = {
        "nested": ("[" * 100_000 + "]" * 100_000, "bad_json"),
        "big_int": ('{"instances": [[' + ",".join([huge] + ["0"] * 63) + "]]}", "bad_input"),
        "big_int_named": (json.dumps({"instances": [dict(zip(COLS, row, strict=True))]})
                          .replace(str(row[5]), huge, 1), "bad_input"),
        "png_14000": (json.dumps({"images": [png_header_only(14_000)]}), "too_many_pixels"),
    }
    c = client(gw)
    for name, (body, reason) in attacks.items():
        before = sample(gw, "mlci_refused_total", endpoint="predict", reason=reason)
        r = c.post("/predict", content=body, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:200])
        assert isinstance(r.json()["error"], str), name
        assert sample(gw, "mlci_refused_total", endpoint="predict", reason=reason) \
            == before + 1, name
    # /feedback: the same nesting, and a 401-digit label, are 4xx as well
    ok = c.post("/predict", json={"instances": [row]}).json()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = c.post("/feedback", content="[" * 100_000 + "]" * 100_000, headers=auth)
    assert r.status_code == 400 and "nested" in r.json()["error"]
    r = c.post("/feedback", content=f'{{"request_id": "{ok["request_id"]}", '
                                    f'"label": {huge}}}', headers=auth)
    assert r.status_code == 400 and r.json()["error"]
    assert sample(gw, "mlci_errors_total", variant="champion", version="1") == 0
    assert sample(gw, "mlci_internal_errors_total", endpoint="predict") == 0


def test_an_unexpected_failure_is_a_counted_json_500(tmp_path: Path) -> None:
    """The last resort: a bug in the gateway answers JSON and is counted, never a bare
    text 500."""
    gw = gateway(tmp_path, Routing("1"), {"1": "plain"})

    def broken(*a, **k):
        raise RuntimeError("a bug")

    gw.score = broken  # type: ignore[method-assign]
    x, _ = digits()
    r = client(gw).post("/predict", json={"instances": [[float(v) for v in x.iloc[0]]]})
    assert r.status_code == 500 and r.json()["error"].startswith("internal error")
    assert sample(gw, "mlci_internal_errors_total", endpoint="predict") == 1


# ------------------------------------------------------------------ item 1: whose spec


def test_input_the_challenger_cannot_take_is_a_client_error_not_its_fault(
        tmp_path: Path) -> None:
    """The champion imputes missing values, the challenger does not: requests with a null,
    half of them routed to the challenger. Before, they were checked against the champion's
    spec only and every one the challenger got was a model error in its evidence."""
    from mlci.serve.observations import rollout_observations

    gw = gateway(tmp_path, Routing("1", "2", 50.0, False, "c-null", 1),
                 {"1": "imputing", "2": "plain"})
    assert gw.active[1]["1"].spec.missing_ok and not gw.active[1]["2"].spec.missing_ok
    x, _ = digits()
    c = client(gw)
    codes = []
    for i in range(200):
        obj = dict(zip(COLS, (float(v) for v in x.iloc[i]), strict=True))
        obj["pixel_3_3"] = None
        codes.append(c.post("/predict", json={"instances": [obj]}).status_code)
    assert set(codes) == {200, 400} and 60 < codes.count(400) < 140, codes.count(400)
    refused = sample(gw, "mlci_input_refused_total", variant="challenger", version="2")
    assert refused == codes.count(400)
    assert sample(gw, "mlci_errors_total", variant="challenger", version="2") == 0
    seen = rollout_observations(tmp_path / "predictions.db", "c-null")["variants"]
    assert seen["challenger"].errors.sum() == 0 and len(seen["champion"].errors) == \
        codes.count(200)
    # well-formed rows still reach both variants
    full = [float(v) for v in x.iloc[0]]
    variants = {c.post("/predict", json={"instances": [full]}).json()["variant"]
                for _ in range(30)}
    assert variants == {"champion", "challenger"}


def test_shadow_scoring_checks_the_challengers_spec(tmp_path: Path) -> None:
    gw = gateway(tmp_path, Routing("1", "2", 0.0, True, "c-shadow", 1),
                 {"1": "imputing", "2": "plain"})
    x, _ = digits()
    obj = dict(zip(COLS, (float(v) for v in x.iloc[0]), strict=True))
    obj["pixel_3_3"] = None
    r = client(gw).post("/predict", json={"instances": [obj]})
    assert r.status_code == 200 and r.json()["variant"] == "champion"
    gw.pool.shutdown(wait=True)  # the shadow task has run
    assert sample(gw, "mlci_input_refused_total", variant="shadow", version="2") == 1
    import sqlite3

    con = sqlite3.connect(tmp_path / "predictions.db")
    assert con.execute("SELECT shadow_error FROM predictions").fetchone()[0] is None
    con.close()
