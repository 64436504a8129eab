"""The Open Inference Protocol (KServe v2) on `mlci serve`, on 127.0.0.1: every request and
response checked against the protocol's own OpenAPI component schemas (vendored from
kserve/open-inference-protocol, tests/data/open_inference_rest.yaml), the same routing and
prediction log as /predict, and a model that scores raw rows with strings and missing values."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml
from test_serve_support import FEEDBACK_TOKEN, GOOD, Gateway, project

from mlci.serve.loadgen import read_csv
from mlci.serve.predlog import instances
from mlci.serve.state import CanaryState, read_state, state_path, write_state

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]  # the first test may train the models
SPEC = yaml.safe_load((Path(__file__).parent / "data" / "open_inference_rest.yaml").read_text())
COLS = [f"pixel_{i}_{j}" for i in range(8) for j in range(8)]


def check(component: str, doc: object) -> None:
    """Validate `doc` against one of the protocol's component schemas."""
    schema = {"$ref": f"#/components/schemas/{component}", "components": SPEC["components"]}
    jsonschema.Draft7Validator(schema).validate(doc)


@pytest.fixture(scope="module")
def digits() -> tuple[list[list[float]], list[int]]:
    return read_csv(str(Path(__file__).parents[1] / "examples/digits/data/golden.csv"), "digit")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory):
    root = project(tmp_path_factory.mktemp("serve-v2") / "digits")
    g = Gateway(root).start()
    yield g
    g.stop()


def infer(gw: Gateway, body: dict, path: str = "/v2/models/digits/infer",
          **headers: str) -> httpx.Response:
    check("inference_request", body)  # what we send is a valid v2 request
    return httpx.post(gw.url + path, json=body, headers=headers, timeout=10)


def matrix_request(rows: list[list[float]], **extra) -> dict:
    return {"inputs": [{"name": "input-0", "shape": [len(rows), 64], "datatype": "FP64",
                        "data": [v for r in rows for v in r]}], **extra}


def test_health_server_and_model_metadata(gw: Gateway) -> None:
    assert httpx.get(gw.url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(gw.url + "/v2/health/ready").json() == {"ready": True}
    server = httpx.get(gw.url + "/v2").json()
    check("metadata_server_response", server)
    meta = httpx.get(gw.url + "/v2/models/digits").json()
    check("metadata_model_response", meta)
    assert meta["name"] == "digits" and meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == COLS
    # the signature's types: the digits CSV holds integers, logged as `long`
    assert {i["datatype"] for i in meta["inputs"]} == {"INT64"}
    assert {o["name"]: o["shape"] for o in meta["outputs"]} == {
        "predict": [-1], "predict_proba": [-1, 10]}
    assert meta["parameters"]["classes"] == ",".join(map(str, range(10)))
    assert httpx.get(gw.url + "/v2/models/digits/versions/1").json() == meta
    ready = httpx.get(gw.url + "/v2/models/digits/ready")
    assert ready.status_code == 200 and ready.json() == {"name": "digits", "ready": True}
    missing = httpx.get(gw.url + "/v2/models/iris")
    assert missing.status_code == 404
    check("metadata_model_error_response", missing.json())
    assert httpx.get(gw.url + "/v2/models/digits/versions/9").status_code == 404


def test_infer_matrix_and_named_tensors_match_predict(gw: Gateway, digits) -> None:
    rows, labels = digits
    want = httpx.post(gw.url + "/predict", json={"instances": rows[:5]}).json()
    r = infer(gw, matrix_request(rows[:5], id="req-42"))
    assert r.status_code == 200, r.text
    body = r.json()
    check("inference_response", body)
    assert body["model_name"] == "digits" and body["model_version"] == "1"
    assert body["id"] == "req-42"
    out = {o["name"]: o for o in body["outputs"]}
    assert out["predict"]["data"] == want["predictions"] and out["predict"]["shape"] == [5]
    assert out["predict"]["datatype"] == "INT64"
    assert out["predict_proba"]["shape"] == [5, 10]
    flat = [p for row in want["probabilities"] for p in row]
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(
        out["predict_proba"]["data"], flat, strict=True))
    # nested data (the tensor's natural shape) is the same request
    nested = matrix_request(rows[:5])
    nested["inputs"][0]["data"] = rows[:5]
    assert {o["name"]: o["data"] for o in infer(gw, nested).json()["outputs"]}["predict"] \
        == want["predictions"]
    # one tensor per feature, shape [n] (and [n, 1]), only the outputs asked for
    named = {"inputs": [{"name": c, "shape": [5], "datatype": "FP64",
                         "data": [r[j] for r in rows[:5]]} for j, c in enumerate(COLS)],
             "outputs": [{"name": "predict"}]}
    got = infer(gw, named).json()
    check("inference_response", got)
    assert [o["name"] for o in got["outputs"]] == ["predict"]
    assert got["outputs"][0]["data"] == want["predictions"]
    named["inputs"][0]["shape"] = [5, 1]
    assert infer(gw, named).json()["outputs"][0]["data"] == want["predictions"]
    # the answer carries the id /feedback takes; the request is in the prediction log
    rid = body["parameters"]["request_id"]
    fb = httpx.post(gw.url + "/feedback", json={"request_id": rid, "label": labels[:5]},
                    headers={"Authorization": f"Bearer {FEEDBACK_TOKEN}"})
    assert fb.status_code == 200 and fb.json()["n"] == 5
    con = sqlite3.connect(gw.root / ".mlci" / "predictions.db")
    row = con.execute("SELECT variant, version, inputs, inputs_array, inputs_dtype, n FROM "
                      "predictions WHERE request_id=?", (rid,)).fetchone()
    con.close()
    assert row[:2] == ("champion", "1") and instances(*row[2:]) == rows[:5]


@pytest.mark.parametrize("body,status,msg", [
    ({"inputs": []}, 400, "non-empty 'inputs'"),
    ({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP64", "data": [1] * 63}]},
     400, "holds 64 values, data has 63"),
    ({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP128", "data": [1] * 64}]},
     400, "unknown datatype"),
    ({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "BYTES", "data": [1] * 64}]},
     400, "does not match datatype"),
    ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
     400, "has 3 values; the model takes 64"),
    ({"inputs": [{"name": "pixel_0_0", "shape": [1], "datatype": "FP64", "data": [1]}]},
     400, "lacks feature"),
    ({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP64", "data": [0] * 64}],
      "outputs": [{"name": "logits"}]}, 400, "unknown output"),
])
def test_bad_inference_requests(gw: Gateway, body, status, msg) -> None:
    r = httpx.post(gw.url + "/v2/models/digits/infer", json=body, timeout=10)
    assert r.status_code == status and msg in r.json()["error"], r.text
    check("inference_error_response", r.json())


def test_v2_follows_the_canary_and_pins_versions(gw: Gateway, digits) -> None:
    rows, _ = digits
    p = state_path(gw.root / ".mlci")
    old = read_state(p)
    st = CanaryState(id="c-v2", model="digits", champion="1", challenger=GOOD, steps=[100],
                     weight=100, generation=old.generation if old else 0)
    write_state(p, st)
    deadline = time.monotonic() + 20
    while gw.readyz().get("generation") != st.generation:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        routed = infer(gw, matrix_request(rows[:1])).json()
        assert routed["model_version"] == GOOD and routed["parameters"]["variant"] == \
            "challenger"
        meta = httpx.get(gw.url + "/v2/models/digits").json()
        assert meta["versions"] == ["1", GOOD]
        pinned = infer(gw, matrix_request(rows[:1]), "/v2/models/digits/versions/1/infer")
        assert pinned.status_code == 200 and pinned.json()["model_version"] == "1"
        assert infer(gw, matrix_request(rows[:1]),
                     "/v2/models/digits/versions/7/infer").status_code == 404
        con = sqlite3.connect(gw.root / ".mlci" / "predictions.db")
        got = {r[0]: r[1:] for r in con.execute(
            "SELECT request_id, variant, canary_id FROM predictions WHERE request_id IN (?, ?)",
            (routed["parameters"]["request_id"], pinned.json()["parameters"]["request_id"]))}
        con.close()
        assert got[routed["parameters"]["request_id"]] == ("challenger", "c-v2")
        # a pinned request is served, but not part of the rollout's evidence
        assert got[pinned.json()["parameters"]["request_id"]] == ("champion", None)
    finally:
        st = read_state(p)
        st.status = "rolled-back"
        write_state(p, st)


# ------------------------------------------------------------------ raw rows: strings, nulls


def _register_mixed(root: Path) -> None:
    """A pipeline on raw columns (a number with missing values, a category, a number that
    had none), registered as `mixed` with a champion, as `mlci train` registers models."""
    import mlflow
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    n = 300
    x = pd.DataFrame({"age": rng.normal(40, 10, n).round(1),
                      "city": [c or np.nan for c in rng.choice(["paris", "lyon", ""], n)],
                      "score": rng.normal(0, 1, n)})
    x.loc[rng.choice(n, 30, replace=False), "age"] = np.nan
    y = np.where((x["city"] == "paris") | (x["score"] > 0.5), "yes", "no")
    pre = ColumnTransformer([
        ("num", SimpleImputer(strategy="median"), ["age", "score"]),
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="__missing__"),
                              OneHotEncoder(handle_unknown="ignore")), ["city"])])
    model = Pipeline([("preprocess", pre), ("model", LogisticRegression())]).fit(x, y)
    uri = f"sqlite:///{(root / '.mlci' / 'mlflow.db').resolve()}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with mlflow.start_run():
        mlflow.sklearn.log_model(model, name="model", signature=infer_signature(x, y),
                                 input_example=x.head(5), registered_model_name="mixed",
                                 serialization_format="cloudpickle",
                                 pip_requirements=["scikit-learn"])
    mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(
        "mixed", "champion", "1")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory):
    root = project(tmp_path_factory.mktemp("serve-mixed") / "digits")
    _register_mixed(root)
    g = Gateway(root, None, "--model", "mixed").start()
    yield g
    g.stop()


def test_raw_rows_with_strings_and_missing_values(mixed: Gateway) -> None:
    ok = [{"age": 31.5, "city": "paris", "score": 0.1},
          {"age": None, "city": None, "score": -1.0},     # missing: the pipeline imputes
          {"age": 50, "city": "berlin", "score": None}]   # unseen category; missing score
    r = httpx.post(mixed.url + "/predict", json={"instances": ok}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["classes"] == ["no", "yes"] and len(r.json()["predictions"]) == 3
    # NaN literal in a column that takes missing values: the same as null
    nan = json.dumps({"instances": [ok[0]]}).replace("31.5", "NaN")
    assert httpx.post(mixed.url + "/predict", content=nan, timeout=10).status_code == 200
    for bad, msg in [({"age": "31", "city": "paris", "score": 0.1}, "must be a number"),
                     ({"age": 31, "city": 3, "score": 0.1}, "must be a string"),
                     ({"age": 31, "score": 0.1}, "lacks feature 'city'"),
                     ({"age": 31, "city": "x" * 2000, "score": 0.1}, "at most 1024")]:
        r = httpx.post(mixed.url + "/predict", json={"instances": [bad]}, timeout=10)
        assert r.status_code == 400 and msg in r.json()["error"], r.text
    # v2: strings as BYTES tensors, null as missing (an extension: the protocol's tensor
    # data has no null, so this request is not checked against its schema)
    meta = httpx.get(mixed.url + "/v2/models/mixed").json()
    check("metadata_model_response", meta)
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
        "age": "FP64", "city": "BYTES", "score": "FP64"}
    body = {"inputs": [
        {"name": "age", "shape": [3], "datatype": "FP64", "data": [31.5, None, 50]},
        {"name": "city", "shape": [3], "datatype": "BYTES", "data": ["paris", None, "berlin"]},
        {"name": "score", "shape": [3, 1], "datatype": "FP64", "data": [0.1, -1.0, None]}]}
    v2 = httpx.post(mixed.url + "/v2/models/mixed/infer", json=body, timeout=10)
    assert v2.status_code == 200, v2.text
    check("inference_response", v2.json())
    out = {o["name"]: o for o in v2.json()["outputs"]}
    assert out["predict"]["datatype"] == "BYTES"
    want = httpx.post(mixed.url + "/predict", json={"instances": ok}, timeout=10).json()
    assert out["predict"]["data"] == want["predictions"]


RULES_MODEL = '''
import mlflow.pyfunc


class Threshold(mlflow.pyfunc.PythonModel):
    """Not scikit-learn: a hand-written rule, served through MLflow's pyfunc flavour."""

    def predict(self, context, model_input, params=None):
        return ["high" if v > 0.5 else "low" for v in model_input["score"]]
'''


def _register_rules(root: Path) -> None:
    """A custom `mlflow.pyfunc.PythonModel` (any model MLflow can log as pyfunc), registered
    with a signature and a champion alias: the gateway must serve it without sklearn."""
    import sys

    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    code = root / "rules_model.py"
    code.write_text(RULES_MODEL)
    sys.path.insert(0, str(root))
    try:
        from rules_model import Threshold  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(root))
    x = pd.DataFrame({"score": [0.1, 0.9, 0.4]})
    uri = f"sqlite:///{(root / '.mlci' / 'mlflow.db').resolve()}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with mlflow.start_run():
        mlflow.pyfunc.log_model(name="model", python_model=Threshold(), code_paths=[str(code)],
                                signature=infer_signature(x, ["low", "high", "low"]),
                                registered_model_name="rules", pip_requirements=["mlflow"])
    mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(
        "rules", "champion", "1")


def test_any_pyfunc_model_is_served(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = project(tmp_path_factory.mktemp("serve-pyfunc") / "digits")
    _register_rules(root)
    g = Gateway(root, None, "--model", "rules").start()
    try:
        r = httpx.post(g.url + "/predict", json={"instances": [{"score": 0.7}, {"score": 0.2}]},
                       timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == ["high", "low"]
        body = {"inputs": [{"name": "score", "shape": [2], "datatype": "FP64",
                            "data": [0.7, 0.2]}]}
        v2 = httpx.post(g.url + "/v2/models/rules/infer", json=body, timeout=10)
        assert v2.status_code == 200, v2.text
        check("inference_response", v2.json())
        out = {o["name"]: o for o in v2.json()["outputs"]}
        assert out["predict"]["data"] == ["high", "low"]
    finally:
        g.stop()
