"""`mlci serve` on 127.0.0.1 with the real digits models: the endpoints, input formats and
errors, metrics, runtime weight and version changes, sticky routing and shadow mode."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from test_serve_support import FEEDBACK_TOKEN, GOOD, WORSE, Gateway, project

from mlci.serve.loadgen import read_csv
from mlci.serve.predlog import instances
from mlci.serve.state import CanaryState, read_state, state_path, write_state

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]  # the first test trains the four versions


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory):
    root = project(tmp_path_factory.mktemp("serve") / "digits")
    g = Gateway(root, None, "--image-max", "16").start()  # digits: flat pixels, 0..16
    yield g
    g.stop()


@pytest.fixture(scope="module")
def digits() -> tuple[list[list[float]], list[int]]:
    return read_csv(str(Path(__file__).parents[1] / "examples/digits/data/golden.csv"), "digit")


AUTH = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}


def post(gw: Gateway, path: str, body, **headers) -> httpx.Response:
    kw = {"content": body} if isinstance(body, (str, bytes)) else {"json": body}
    if path == "/feedback":
        headers = {**AUTH, **headers}
    return httpx.post(gw.url + path, headers=headers, timeout=10, **kw)


def set_routing(gw: Gateway, weight: float, challenger: str | None = GOOD,
                shadow: bool = False, cid: str = "c-test") -> None:
    p = state_path(gw.root / ".mlci")
    old = read_state(p)
    st = CanaryState(id=cid, model="digits", champion="1", challenger=challenger,
                     steps=[weight or 100], weight=weight, shadow=shadow,
                     generation=old.generation if old else 0)
    write_state(p, st)
    deadline = time.monotonic() + 20
    while gw.readyz().get("generation") != st.generation:
        assert time.monotonic() < deadline, gw.readyz()
        time.sleep(0.05)


def test_health_ready_and_predict_formats(gw: Gateway, digits) -> None:
    rows, labels = digits
    assert httpx.get(gw.url + "/healthz").json() == {"status": "ok"}
    assert gw.readyz()["champion"] == "1"
    r = post(gw, "/predict", {"instances": rows[:3]})
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"] == "1" and body["variant"] == "champion"
    assert len(body["predictions"]) == 3 and body["classes"] == list(range(10))
    assert sum(body["predictions"][i] == labels[i] for i in range(3)) >= 2
    assert abs(sum(body["probabilities"][0]) - 1) < 1e-3
    nested = [rows[0][i:i + 8] for i in range(0, 64, 8)]  # an 8x8 image
    assert post(gw, "/predict", {"instances": [nested]}).json()["predictions"] == \
        body["predictions"][:1]
    cols = [f"pixel_{i}_{j}" for i in range(8) for j in range(8)]
    obj = dict(zip(cols, rows[0], strict=True))
    assert post(gw, "/predict", {"instances": [obj]}).json()["predictions"] == \
        body["predictions"][:1]


def test_png_images(gw: Gateway, digits) -> None:
    from PIL import Image

    rows, labels = digits
    img = Image.new("L", (8, 8))
    img.putdata([int(round(v * 255 / 16)) for v in rows[5]])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    b64 = base64.b64encode(buf.getvalue()).decode()
    r = post(gw, "/predict", {"images": [b64]})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == post(gw, "/predict",
                                           {"instances": [rows[5]]}).json()["predictions"]


@pytest.mark.parametrize("body,msg", [
    ("not json", "not valid JSON"),
    ([1, 2], "JSON object"),
    ({"instances": []}, "non-empty"),
    ({"instances": [[1, 2, 3]]}, "has 3 values; the model takes 64"),
    ({"instances": [["a"] * 64]}, "must be a number"),
    ({"instances": [[1] * 64], "images": []}, "exactly one"),
    ({"images": ["@@@"]}, "image 0 is not base64"),
    ({"instances": [{"pixel_0_0": 1}]}, "lacks feature"),
])
def test_bad_input_is_a_clear_400(gw: Gateway, body, msg) -> None:
    r = post(gw, "/predict", body)
    assert r.status_code == 400 and msg in r.json()["error"]


def test_feedback_and_metrics(gw: Gateway, digits) -> None:
    rows, labels = digits
    r = post(gw, "/predict", {"instances": [rows[7]]}).json()
    assert post(gw, "/feedback", {"request_id": r["request_id"],
                                  "label": [1, 2]}).status_code == 400
    f = post(gw, "/feedback", {"request_id": r["request_id"], "label": labels[7]})
    assert f.status_code == 200 and f.json()["n"] == 1
    assert post(gw, "/feedback", {"request_id": "nope", "label": 1}).status_code == 404
    assert post(gw, "/feedback", {"label": 1}).status_code == 400
    text = httpx.get(gw.url + "/metrics").text
    for name in ("mlci_requests_total{", "mlci_request_latency_seconds_bucket{",
                 "mlci_feedback_correct_total{", "mlci_feedback_accuracy{",
                 "mlci_bad_requests_total", "mlci_route_weight{"):
        assert name in text
    con = sqlite3.connect(gw.root / ".mlci" / "predictions.db")
    row = con.execute("SELECT p.variant, p.version, p.inputs, p.outputs, f.label, "
                      "p.inputs_array, p.inputs_dtype, p.n FROM predictions p JOIN feedback f "
                      "USING(request_id) WHERE request_id=?", (r["request_id"],)).fetchone()
    con.close()
    assert row[:2] == ("champion", "1") and instances(row[2], *row[5:]) == [rows[7]]
    assert json.loads(row[3]) == r["predictions"] and json.loads(row[4]) == labels[7]


def test_runtime_weights_sticky_keys_and_shadow(gw: Gateway, digits) -> None:
    rows, _ = digits
    try:
        set_routing(gw, 50, WORSE)
        seen: dict[str, set[str]] = {}
        with httpx.Client(timeout=10) as c:
            for i in range(240):
                key = f"k{i % 60}"
                r = c.post(gw.url + "/predict", json={"instances": [rows[i]]},
                           headers={"X-Mlci-Key": key}).json()
                seen.setdefault(key, set()).add(r["model_version"])
        assert all(len(v) == 1 for v in seen.values())  # one variant per key
        on_challenger = sum(v == {WORSE} for v in seen.values())
        assert 15 <= on_challenger <= 45
        # weight up: every challenger key stays, more keys join; no restart
        set_routing(gw, 90, WORSE)
        with httpx.Client(timeout=10) as c:
            after = {k: c.post(gw.url + "/predict", json={"instances": [rows[0]]},
                               headers={"X-Mlci-Key": k}).json()["model_version"]
                     for k in seen}
        assert all(after[k] == WORSE for k, v in seen.items() if v == {WORSE})
        assert sum(v == WORSE for v in after.values()) > on_challenger
        # shadow at weight 0: answers from the champion, the challenger's logged beside them
        set_routing(gw, 0.0, WORSE, shadow=True, cid="c-shadow")
        ids = [post(gw, "/predict", {"instances": [rows[i]]}).json() for i in range(40)]
        assert {r["model_version"] for r in ids} == {"1"}
        time.sleep(0.3)
        con = sqlite3.connect(gw.root / ".mlci" / "predictions.db")
        got = con.execute("SELECT COUNT(*), SUM(outputs != shadow_outputs) FROM predictions "
                          "WHERE canary_id='c-shadow' AND shadow_version=?",
                          (WORSE,)).fetchone()
        con.close()
        assert got[0] == 40 and got[1] > 0  # the worse model disagrees sometimes
        assert "mlci_shadow_disagreements_total" in httpx.get(gw.url + "/metrics").text
    finally:
        p = state_path(gw.root / ".mlci")
        st = read_state(p)
        st.status = "rolled-back"
        write_state(p, st)
