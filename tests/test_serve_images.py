"""Image models at the gateway, in process (the real ASGI application): PNG, JPEG and WebP
into the model's declared (N, H, W, C) uint8 tensor through /predict and /v2 (BYTES in JSON
and in binary data, UINT8 pixels), the binary tensor data extension both ways, sizes checked
before allocation, JSON errors on every route, every route's answers validated against the
protocol's OpenAPI description, and no digits default for models that take no images."""

from __future__ import annotations

import base64
import functools
import json
import sqlite3
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from image_model import CLASSES, SIDE, encoded, fitted, pictures, signature
from openapi_schema_validator import OAS30Validator
from serve_inprocess import TOKEN, client, gateway, sample

from mlci.serve.app import Gateway, Loaded
from mlci.serve.guard import Limits
from mlci.serve.imaging import NO_IMAGES
from mlci.serve.inputs import spec_of
from mlci.serve.routing import Routing

SPEC = yaml.safe_load((Path(__file__).parent / "data" / "open_inference_rest.yaml").read_text())
INFER = "/v2/models/digits/infer"


class Spy:
    """The fitted pipeline, recording the batch each call gets."""

    def __init__(self, model: Any) -> None:
        self.model, self.classes_, self.seen = model, model.classes_, []

    def predict_proba(self, x: Any) -> Any:
        self.seen.append((x.shape, x.dtype))
        return self.model.predict_proba(x)

    def predict(self, x: Any) -> Any:
        self.seen.append((x.shape, x.dtype))
        return self.model.predict(x)


@functools.cache
def _schema() -> Any:
    return signature().inputs


def image_loaded(version: str) -> Loaded:
    spy = Spy(fitted())
    return Loaded(version, spy, list(spy.classes_), spec_of(spy, _schema()), True)


def image_gateway(tmp: Path, challenger: Loaded | None = None, **kw: Any) -> Gateway:
    gw = gateway(tmp, Routing("1", "2" if challenger else None, 100.0 if challenger else 0.0),
                 {}, **kw)
    models = {"1": image_loaded("1")}
    if challenger is not None:
        models["2"] = challenger
    gw.active = (gw.active[0], models)
    return gw


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def check(component: str, doc: Any) -> None:
    schema = {"$ref": f"#/components/schemas/{component}", "components": SPEC["components"]}
    OAS30Validator(schema).validate(doc)


def binary_request(inputs: list[tuple[str, list[int], str, bytes]],
                   **extra: Any) -> tuple[bytes, dict[str, str]]:
    """A request in the binary tensor data extension, as tritonclient builds it."""
    head = json.dumps({"inputs": [{"name": n, "shape": s, "datatype": d,
                                   "parameters": {"binary_data_size": len(b)}}
                                  for n, s, d, b in inputs], **extra}).encode()
    return head + b"".join(b for *_, b in inputs), {
        "Inference-Header-Content-Length": str(len(head)),
        "Content-Type": "application/octet-stream"}


def bytes_elements(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def read_binary(r: Any) -> tuple[dict, dict[str, Any]]:
    """(JSON header, outputs as numpy arrays) of a binary response."""
    n = int(r.headers["inference-header-content-length"])
    head, rest = json.loads(r.content[:n]), r.content[n:]
    out, pos = {}, 0
    for o in head["outputs"]:
        if "data" in o:
            continue
        size = o["parameters"]["binary_data_size"]
        chunk = rest[pos:pos + size]
        pos += size
        if o["datatype"] == "BYTES":
            vals, i = [], 0
            while i < len(chunk):
                (k,) = struct.unpack_from("<I", chunk, i)
                vals.append(chunk[i + 4:i + 4 + k].decode())
                i += 4 + k
            out[o["name"]] = np.array(vals).reshape(o["shape"])
        else:
            dt = {"FP64": "<f8", "INT64": "<i8"}[o["datatype"]]
            out[o["name"]] = np.frombuffer(chunk, dtype=dt).reshape(o["shape"])
    assert pos == len(rest)
    return head, out


@pytest.fixture
def gw(tmp_path: Path) -> Gateway:
    return image_gateway(tmp_path)


@pytest.fixture(scope="module")
def shots() -> tuple[Any, list[str]]:
    return pictures(6, seed=7, size=(24, 32))  # not the model's size: resized on the way


# ------------------------------------------------------------------ /predict


def test_png_jpeg_webp_become_the_declared_uint8_batch(gw: Gateway, shots) -> None:
    x, labels = shots
    c = client(gw)
    for fmt in ("PNG", "JPEG", "WEBP"):
        r = c.post("/predict", json={"images": [b64(encoded(a, fmt)) for a in x]})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == labels, fmt
        assert r.json()["classes"] == CLASSES
    spy = gw.active[1]["1"].model
    assert spy.seen == [((6, SIDE, SIDE, 3), np.dtype("uint8"))] * 3
    # pixels as instances: nested [h][w][c] values 0..255, the same answer
    small = pictures(2, seed=3)[0]
    r = c.post("/predict", json={"instances": small.tolist()})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 2
    # the log keeps what identifies each image, not its 768 pixel values
    con = sqlite3.connect(gw.log.path)
    logged = json.loads(con.execute("SELECT inputs FROM predictions LIMIT 1").fetchone()[0])
    con.close()
    assert logged[0]["image"].startswith("sha256:") and logged[0]["format"] == "PNG"
    assert logged[0]["size"] == [32, 24]


def test_grayscale_and_transparent_pngs_are_converted(gw: Gateway) -> None:
    from PIL import Image

    gray = Image.new("L", (10, 10), 80)
    clear = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # white once composited
    bodies = []
    for img in (gray, clear):
        import io

        buf = io.BytesIO()
        img.save(buf, format="PNG")
        bodies.append(b64(buf.getvalue()))
    r = client(gw).post("/predict", json={"images": bodies})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("images,status,msg", [
    (["@@@"], 400, "image 0 is not base64"),
    ([b64(b"GIF89a not an image")], 400, "image 0: not a PNG, JPEG or WebP image"),
    ([3], 400, "image 0 must be a base64 string"),
    ([], 400, "non-empty list"),
])
def test_bad_images_are_one_line_400s(gw: Gateway, images, status, msg) -> None:
    r = client(gw).post("/predict", json={"images": images})
    assert r.status_code == status and msg in r.json()["error"], r.text
    assert "\n" not in r.json()["error"]


def test_pixels_are_counted_from_headers_before_decoding(tmp_path: Path) -> None:
    from PIL import Image

    gw = image_gateway(tmp_path, limits=Limits(max_image_pixels=10_000))
    big = encoded(np.zeros((120, 120, 3), np.uint8), "JPEG")  # 14,400 pixels
    before = sample(gw, "mlci_refused_total", endpoint="predict", reason="too_many_pixels")
    r = client(gw).post("/predict", json={"images": [b64(big)]})
    assert r.status_code == 400 and "14400" not in r.text and "120x120" in r.text
    assert sample(gw, "mlci_refused_total", endpoint="predict",
                  reason="too_many_pixels") == before + 1
    assert gw.active[1]["1"].model.seen == []  # the model never ran
    two = [b64(encoded(np.zeros((80, 80, 3), np.uint8), "PNG"))] * 2  # 6,400 pixels each
    r = client(gw).post("/predict", json={"images": two})
    assert r.status_code == 400 and r.json()["error"].startswith("image 1 (80x80) takes")
    assert Image.MAX_IMAGE_PIXELS  # Pillow's own cap untouched


def test_a_model_that_takes_no_images_refuses_them(tmp_path: Path, shots) -> None:
    x, _ = shots
    png = b64(encoded(x[0], "PNG"))
    gw = gateway(tmp_path, Routing("1"), {"1": "plain"})  # digits: 64 flat pixels
    r = client(gw).post("/predict", json={"images": [png]})
    assert r.status_code == 400 and r.json()["error"] == NO_IMAGES
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [png]}]}
    r = client(gw).post(INFER, json=body)
    assert r.status_code == 400 and r.json()["error"] == NO_IMAGES
    # the operator's explicit opt-in for flat square-pixel models: grey, 8x8, 0..16
    legacy = gateway(tmp_path / "legacy", Routing("1"), {"1": "plain"}, image_max=16.0)
    r = client(legacy).post("/predict", json={"images": [png]})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1


def test_labels_for_image_requests_reach_the_log(gw: Gateway, shots) -> None:
    x, labels = shots
    c = client(gw)
    r = c.post("/predict", json={"images": [b64(encoded(a, "JPEG")) for a in x[:3]]}).json()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    f = c.post("/feedback", json={"request_id": r["request_id"], "label": labels[:3]},
               headers=auth)
    assert f.status_code == 200 and f.json() == {"recorded": True, "correct": 3, "n": 3}
    v2 = c.post(INFER, json={"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                         "data": [b64(encoded(x[0], "PNG"))]}]}).json()
    f = c.post("/feedback", json={"request_id": v2["parameters"]["request_id"],
                                  "label": labels[0]}, headers=auth)
    assert f.status_code == 200 and f.json()["correct"] == 1
    assert sample(gw, "mlci_feedback_total", variant="champion") == 4


def test_images_cost_their_client_what_the_log_keeps_of_them(tmp_path: Path) -> None:
    """A client's share of the log is charged what is logged (a digest per image), not the
    body: 12 requests of 3 noisy 100x100 JPEGs (about 30 KB each) fit a 60 KB share."""
    from mlci.serve.predlog import Retention

    gw = image_gateway(tmp_path, retention=Retention(max_bytes=1_200_000), client_share=0.05)
    x = np.random.default_rng(0).integers(0, 255, (3, 100, 100, 3), dtype=np.uint8)
    body = {"images": [b64(encoded(a, "JPEG")) for a in x]}
    assert len(json.dumps(body)) > 25_000
    c = client(gw)
    codes = [c.post("/predict", json=body).status_code for _ in range(12)]
    assert codes == [200] * 12
    # the share still bounds what one request may bring: a body over the whole share is a 429
    big = {"instances": pictures(40, seed=1)[0].tolist()}
    assert len(json.dumps(big)) > 60_000 and c.post("/predict", json=big).status_code == 429


def test_a_challenger_of_another_size_gets_its_own_tensor(tmp_path: Path, shots) -> None:
    """Champion 16x16, challenger declaring 8x8 grayscale: each variant gets its own tensor
    from the same bytes (the challenger here refuses its shape only if decoded wrongly)."""
    from mlflow.models import infer_signature

    x, labels = shots
    small = np.zeros((2, 8, 8, 1), np.uint8)
    spy = Spy(fitted())
    spy.predict_proba = lambda b: (spy.seen.append((b.shape, b.dtype)),  # type: ignore
                                   np.tile([1.0, 0.0, 0.0], (len(b), 1)))[1]
    chal = Loaded("2", spy, CLASSES, spec_of(spy, infer_signature(small, np.zeros(2)).inputs),
                  True)
    gw = image_gateway(tmp_path, challenger=chal)
    r = client(gw).post("/predict", json={"images": [b64(encoded(x[0], "WEBP"))]})
    assert r.status_code == 200 and r.json()["variant"] == "challenger", r.text
    assert spy.seen == [((1, 8, 8, 1), np.dtype("uint8"))]


def test_the_load_generator_reads_image_folders_and_tables(tmp_path: Path, shots) -> None:
    from mlci.serve.loadgen import read_csv, read_images

    x, labels = shots
    for i, (a, y) in enumerate(zip(x, labels, strict=True)):
        (tmp_path / "folder" / y).mkdir(parents=True, exist_ok=True)
        (tmp_path / "folder" / y / f"{i}.jpg").write_bytes(encoded(a, "JPEG"))
    (tmp_path / "folder" / "red" / "notes.txt").write_text("not an image")
    images, ys = read_images(str(tmp_path / "folder"))
    assert len(images) == 6 and sorted(ys) == sorted(labels)
    assert base64.b64decode(images[0])[:3] == b"\xff\xd8\xff"  # a JPEG, sent as it is
    table = tmp_path / "data.csv"
    table.write_text("file,label\n" + "".join(f"folder/{y}/{i}.jpg,{y}\n"
                                              for i, y in enumerate(labels)))
    images2, ys2 = read_images(str(table), "label")
    assert ys2 == labels and len(images2) == 6
    # the table read as numbers: one clear error naming read_images, not a float() crash
    with pytest.raises(ValueError, match="line 2: a value is not a number; for a table of "
                                         "image files use read_images"):
        read_csv(str(table), "label")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no PNG, JPEG or WebP"):
        read_images(str(tmp_path / "empty"))


class TensorPyfunc:
    """Stands for a pyfunc tensor model (MLflow's onnx flavour answers a dict of arrays)."""

    def __init__(self, outputs: str) -> None:
        self.outputs, self.seen = outputs, []

    def predict(self, x: Any) -> Any:
        self.seen.append((x.shape, x.dtype))
        labels = np.array(fitted().predict(x))
        if self.outputs == "label":
            return {"label": labels, "probabilities": fitted().predict_proba(x)}
        return {"logits": fitted().predict_proba(x)}


def test_pyfunc_tensor_models_answer_labels(tmp_path: Path, shots) -> None:
    x, labels = shots
    body = {"images": [b64(encoded(a, "PNG")) for a in x[:3]]}
    for outputs in ("label", "logits"):
        model = TensorPyfunc(outputs)
        gw = gateway(tmp_path / outputs, Routing("1"), {})
        gw.active = (gw.active[0], {"1": Loaded("1", model, None, spec_of(model, _schema()),
                                                True, pyfunc=True)})
        r = client(gw).post("/predict", json=body)
        assert model.seen == [((3, SIDE, SIDE, 3), np.dtype("uint8"))]
        if outputs == "label":
            assert r.status_code == 200 and r.json()["predictions"] == labels[:3], r.text
        else:  # scores are not labels: a model error, counted, with the reason
            assert r.status_code == 500 and "shape [3, 3], not one label per row" in \
                r.json()["error"], r.text
            assert sample(gw, "mlci_errors_total", variant="champion", version="1") == 1


# ------------------------------------------------------------------ /v2


def test_v2_bytes_and_pixels_in_json(gw: Gateway, shots) -> None:
    x, labels = shots
    c = client(gw)
    body = {"id": "a1", "inputs": [{"name": "image", "shape": [3], "datatype": "BYTES",
                                    "data": [b64(encoded(a, "JPEG")) for a in x[:3]]}]}
    check("inference_request", body)
    r = c.post(INFER, json=body)
    assert r.status_code == 200, r.text
    check("inference_response", r.json())
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["predict"]["data"] == labels[:3] and out["predict"]["datatype"] == "BYTES"
    assert out["predict_proba"]["shape"] == [3, 3]
    pix = pictures(2, seed=5)
    body = {"inputs": [{"name": "input-0", "shape": [2, SIDE, SIDE, 3], "datatype": "UINT8",
                        "data": pix[0].reshape(-1).tolist()}], "outputs": [{"name": "predict"}]}
    r = c.post(INFER, json=body)
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == pix[1], r.text
    body["inputs"][0]["shape"] = [2, 8, 8, 12]
    r = c.post(INFER, json=body)
    assert r.status_code == 400 and "the model takes [n, 16, 16, 3]" in r.json()["error"]


def test_v2_binary_inputs_and_outputs(gw: Gateway, shots) -> None:
    x, labels = shots
    c = client(gw)
    raws = [encoded(a, fmt) for a, fmt in zip(x[:3], ("JPEG", "PNG", "WEBP"), strict=True)]
    content, headers = binary_request([("image", [3], "BYTES", bytes_elements(raws))],
                                      parameters={"binary_data_output": True})
    r = c.post(INFER, content=content, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    head, out = read_binary(r)
    check("inference_response", {**head, "outputs": [{**o, "data": []}
                                                     for o in head["outputs"]]})
    assert out["predict"].tolist() == labels[:3]
    assert out["predict_proba"].shape == (3, 3)
    assert np.allclose(out["predict_proba"].sum(axis=1), 1, atol=1e-4)
    # UINT8 pixels in binary, one output asked for in binary, the other in JSON
    pix, want = pictures(4, seed=9)
    content, headers = binary_request(
        [("input-0", [4, SIDE, SIDE, 3], "UINT8", pix.tobytes())],
        outputs=[{"name": "predict", "parameters": {"binary_data": False}},
                 {"name": "predict_proba", "parameters": {"binary_data": True}}])
    r = c.post(INFER, content=content, headers=headers)
    assert r.status_code == 200, r.text
    head, out = read_binary(r)
    assert [o["name"] for o in head["outputs"]] == ["predict", "predict_proba"]
    assert head["outputs"][0]["data"] == want and out["predict_proba"].shape == (4, 3)


@pytest.mark.parametrize("case,msg", [
    ("huge_empty", "holds no elements"),
    ("huge", "more than the"),
    ("size_mismatch", "binary_data_size is 767"),
    ("trailing", "belong to no input"),
    ("short", "beyond the"),
    ("header_len", "Inference-Header-Content-Length"),
    ("bytes_count", "the shape says 2"),
    ("both", "both 'data' and binary_data_size"),
])
def test_sizes_are_checked_against_the_body_first(gw: Gateway, case: str, msg: str) -> None:
    pix = pictures(1)[0].tobytes()
    shape = [1, SIDE, SIDE, 3]
    headers: dict[str, str] = {}
    if case == "huge_empty":  # the 76-byte request
        content = json.dumps({"inputs": [{"name": "x", "shape": [1000000000, 0],
                                          "datatype": "FP64", "data": []}]},
                             separators=(",", ":")).encode()
        assert len(content) == 76
    elif case == "huge":
        content = json.dumps({"inputs": [{"name": "x", "shape": [1000000000, 64],
                                          "datatype": "FP64", "data": [1]}]}).encode()
    elif case == "size_mismatch":
        content, headers = binary_request([("x", shape, "UINT8", pix[:-1])])
    elif case == "trailing":
        content, headers = binary_request([("x", shape, "UINT8", pix)])
        content += b"\0" * 9
    elif case == "short":
        content, headers = binary_request([("x", shape, "UINT8", pix)])
        content = content[:-100]
    elif case == "header_len":
        content, headers = binary_request([("x", shape, "UINT8", pix)])
        headers["Inference-Header-Content-Length"] = str(len(content) + 1)
    elif case == "bytes_count":
        content, headers = binary_request([("x", [2], "BYTES", bytes_elements([b"abc"]))])
    else:
        content, headers = binary_request([("x", shape, "UINT8", pix)])
        head = json.loads(content[:int(headers["Inference-Header-Content-Length"])])
        head["inputs"][0]["data"] = [0]
        new = json.dumps(head).encode()
        content = new + pix
        headers["Inference-Header-Content-Length"] = str(len(new))
    r = client(gw).post(INFER, content=content, headers=headers)
    assert r.status_code == 400 and msg in r.json()["error"], (case, r.text)
    check("inference_error_response", r.json())
    assert gw.active[1]["1"].model.seen == []


def test_binary_tensors_for_a_model_of_features(tmp_path: Path) -> None:
    """Not only images: FP32 rows of the digits model in binary give /predict's answer."""
    from serve_inprocess import digits

    gw = gateway(tmp_path, Routing("1"), {"1": "plain"})
    x = digits()[0].to_numpy()[:2]
    c = client(gw)
    want = c.post("/predict", json={"instances": x.tolist()}).json()["predictions"]
    content, headers = binary_request([("input-0", [2, 64], "FP32",
                                        x.astype("<f4").tobytes())])
    r = c.post(INFER, content=content, headers=headers)
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == want, r.text


def test_compressed_bodies_are_refused(gw: Gateway) -> None:
    import gzip

    content, headers = binary_request([("x", [1], "BYTES", bytes_elements([b"abc"]))])
    r = client(gw).post(INFER, content=gzip.compress(content),
                        headers={**headers, "Content-Encoding": "gzip"})
    assert r.status_code == 400 and "Content-Encoding: gzip" in r.json()["error"]


def test_metadata_from_the_signature(gw: Gateway, tmp_path: Path) -> None:
    c = client(gw)
    meta = c.get("/v2/models/digits").json()
    check("metadata_model_response", meta)
    assert meta["inputs"] == [{"name": "input-0", "datatype": "UINT8",
                               "shape": [-1, SIDE, SIDE, 3]}]
    assert "BYTES" in meta["parameters"]["image_input"]
    assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {
        "predict": "BYTES", "predict_proba": "FP64"}
    server = c.get("/v2").json()
    check("metadata_server_response", server)
    assert "binary_tensor_data" in server["extensions"]
    flat = client(gateway(tmp_path / "flat", Routing("1"), {"1": "plain"}))
    meta = flat.get("/v2/models/digits").json()
    assert {i["datatype"] for i in meta["inputs"]} == {"FP64"}
    assert "image_input" not in meta["parameters"]


def test_every_error_is_a_json_body(gw: Gateway) -> None:
    c = client(gw)
    for method, path in [("GET", "/nowhere"), ("GET", "/v2/models/digits/infer"),
                         ("DELETE", "/predict"), ("GET", "/v2/models/other"),
                         ("POST", "/v2/models/other/infer"), ("GET", "/v2/models/digits/x")]:
        r = c.request(method, path)
        assert r.status_code in (404, 405), (method, path, r.status_code)
        assert r.headers["content-type"] == "application/json", (method, path)
        assert isinstance(r.json()["error"], str)


# ------------------------------------------------------------------ conformance


def _operations() -> list[tuple[str, str, dict]]:
    ops = []
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            if method in ("get", "post"):
                ops.append((path, method, op))
    return ops


def test_every_route_answers_as_the_openapi_description_says(gw: Gateway, shots) -> None:
    """Each path of the vendored description (named and version-pinned forms, and the
    unversioned forms KServe also serves), called as the protocol says, answers with a
    status the description lists and a body valid against its schema."""
    x, _ = shots
    c = client(gw)
    good = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                        "data": [b64(encoded(x[0], "PNG"))]}]}
    bad = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["@"]}]}
    seen = set()
    for path, method, op in _operations():
        for concrete in {path.replace("${MODEL_NAME}", "digits").replace("{MODEL_NAME}", "digits")
                         .replace("/versions/${MODEL_VERSION}", v)
                         .replace("/versions/{MODEL_VERSION}", v) for v in ("", "/versions/1")}:
            for body in ([good, bad] if method == "post" else [None]):
                r = c.request(method.upper(), concrete, json=body)
                listed = op["responses"].get(str(r.status_code))
                assert listed is not None, (concrete, r.status_code, r.text)
                schema = (listed.get("content") or {}).get("application/json", {}).get("schema")
                if schema is not None:
                    OAS30Validator({**schema, "components": SPEC["components"]}).validate(
                        r.json())
                seen.add((concrete, r.status_code))
    assert ("/v2/models/digits/infer", 400) in seen and ("/v2/models/digits/infer", 200) in seen
    assert len({p for p, _ in seen}) >= 8, seen
