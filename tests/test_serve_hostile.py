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
