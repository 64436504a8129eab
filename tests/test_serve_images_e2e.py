"""An image model registered in MLflow (SQLite) and served by a real `mlci serve` on
127.0.0.1: `tritonclient[http]` with its defaults (binary inputs and outputs) and in JSON,
and an independent HTTP client sending JPEG and PNG through /predict and /v2 (BYTES in JSON
and in binary data), labels included."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import httpx
import numpy as np
import pytest
from image_model import CLASSES, SIDE, encoded, pictures, register
from test_serve_support import FEEDBACK_TOKEN, Gateway

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("serve-images")
    register(root)
    g = Gateway(root, None, "--model", "colours").start()
    yield g
    g.stop()


@pytest.fixture(scope="module")
def shots():
    return pictures(4, seed=11, size=(40, 30))


def test_tritonclient_with_its_defaults_and_in_json(gw: Gateway, shots) -> None:
    http = pytest.importorskip("tritonclient.http",
                               reason="tritonclient[http] is in scripts/requirements-test.txt")
    x, labels = shots
    c = http.InferenceServerClient(url=f"127.0.0.1:{gw.port}")
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("colours")
    assert "binary_tensor_data" in c.get_server_metadata()["extensions"]
    meta = c.get_model_metadata("colours")
    assert meta["inputs"] == [{"name": "input-0", "datatype": "UINT8",
                               "shape": [-1, SIDE, SIDE, 3]}]
    # encoded images as BYTES, binary in and out (tritonclient's defaults)
    raws = [encoded(a, fmt) for a, fmt in zip(x, ("JPEG", "PNG", "JPEG", "WEBP"), strict=True)]
    inp = http.InferInput("image", [len(raws)], "BYTES")
    inp.set_data_from_numpy(np.array(raws, dtype=np.object_))
    res = c.infer("colours", [inp])
    assert [p.decode() for p in res.as_numpy("predict")] == labels
    proba = res.as_numpy("predict_proba")
    assert proba.shape == (4, 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-4)
    assert res.get_response()["outputs"][0]["parameters"]["binary_data_size"] > 0
    # the model's own tensor: UINT8 pixels, binary
    pix, want = pictures(3, seed=2)
    inp = http.InferInput("input-0", list(pix.shape), "UINT8")
    inp.set_data_from_numpy(pix)
    res = c.infer("colours", [inp], outputs=[http.InferRequestedOutput("predict")])
    assert [p.decode() for p in res.as_numpy("predict")] == want
    # the same in JSON, both ways
    inp = http.InferInput("input-0", list(pix.shape), "UINT8")
    inp.set_data_from_numpy(pix, binary_data=False)
    res = c.infer("colours", [inp], outputs=[
        http.InferRequestedOutput("predict", binary_data=False),
        http.InferRequestedOutput("predict_proba", binary_data=False)])
    assert res.get_response()["outputs"][0]["data"] == want
    assert res.as_numpy("predict_proba").shape == (3, 3)
    # a refusal is the protocol's error object, which tritonclient raises with its text
    from tritonclient.utils import InferenceServerException

    inp = http.InferInput("input-0", [1, 8, 8, 3], "UINT8")
    inp.set_data_from_numpy(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(InferenceServerException, match=r"the model takes \[n, 16, 16, 3\]"):
        c.infer("colours", [inp])
    c.close()


def test_an_independent_client_sends_jpeg_and_png_everywhere(gw: Gateway, shots) -> None:
    x, labels = shots
    jpeg, png = encoded(x[0], "JPEG"), encoded(x[1], "PNG")
    auth = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}
    ids = []
    # /predict
    r = httpx.post(gw.url + "/predict", json={"images": [base64.b64encode(b).decode()
                                                         for b in (jpeg, png)]}, timeout=10)
    assert r.status_code == 200 and r.json()["predictions"] == labels[:2], r.text
    ids.append((r.json()["request_id"], labels[:2]))
    # /v2, BYTES in JSON (base64)
    body = {"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES",
                        "data": [base64.b64encode(b).decode() for b in (jpeg, png)]}]}
    r = httpx.post(gw.url + "/v2/models/colours/infer", json=body, timeout=10)
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["predict"]["data"] == labels[:2]
    ids.append((r.json()["parameters"]["request_id"], labels[:2]))
    # /v2, BYTES in binary data, JSON outputs
    elements = b"".join(struct.pack("<I", len(b)) + b for b in (jpeg, png))
    head = json.dumps({"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": len(elements)}}]}).encode()
    r = httpx.post(gw.url + "/v2/models/colours/versions/1/infer", content=head + elements,
                   headers={"Inference-Header-Content-Length": str(len(head)),
                            "Content-Type": "application/octet-stream"}, timeout=10)
    assert r.status_code == 200, r.text
    assert {o["name"]: o for o in r.json()["outputs"]}["predict"]["data"] == labels[:2]
    ids.append((r.json()["parameters"]["request_id"], labels[:2]))
    # every answer takes its labels, checked against the model's classes
    for rid, ys in ids:
        f = httpx.post(gw.url + "/feedback", json={"request_id": rid, "label": ys},
                       headers=auth, timeout=10)
        assert f.status_code == 200 and f.json()["correct"] == 2, f.text
    bad = httpx.post(gw.url + "/feedback", json={"request_id": ids[0][0], "label": ["x", "y"]},
                     headers=auth, timeout=10)
    assert bad.status_code in (400, 409)
    metrics = httpx.get(gw.url + "/metrics", timeout=10).text
    assert 'mlci_feedback_total{variant="champion"} 6.0' in metrics
    assert set(CLASSES) >= set(labels)


def test_labelled_image_traffic_from_a_folder(gw: Gateway, shots, tmp_path: Path) -> None:
    """The load generator sends a folder of JPEGs and their labels, as a canary's load."""
    from mlci.serve.loadgen import read_images, run_load

    x, labels = pictures(12, seed=4, size=(32, 32))
    for i, (a, y) in enumerate(zip(x, labels, strict=True)):
        (tmp_path / y).mkdir(exist_ok=True)
        (tmp_path / y / f"{i}.jpg").write_bytes(encoded(a, "JPEG"))
    images, ys = read_images(str(tmp_path))
    res = run_load(gw.url, images, ys, requests=24, seconds=60, concurrency=2,
                   feedback_token=FEEDBACK_TOKEN)
    assert len(res.ok) == 24 and all(s.correct for s in res.ok)


def test_unknown_routes_answer_json(gw: Gateway) -> None:
    for method, path in [("GET", "/v2/nothing"), ("PUT", "/v2/models/colours/infer")]:
        r = httpx.request(method, gw.url + path, timeout=10)
        assert r.status_code in (404, 405) and "error" in r.json()
    assert Path(gw.root / ".mlci" / "predictions.db").exists()
