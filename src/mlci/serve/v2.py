"""The Open Inference Protocol (KServe v2, REST) beside `/predict`.

    GET  /v2                                        server metadata
    GET  /v2/health/live, /v2/health/ready          liveness, readiness
    GET  /v2/models/{name}[/versions/{v}]           model metadata (inputs, outputs)
    GET  /v2/models/{name}[/versions/{v}]/ready     model readiness
    POST /v2/models/{name}[/versions/{v}]/infer     inference

An inference request goes through the same validation, routing, prediction log and metrics
as `/predict`. Its inputs are either one tensor per feature (named as the model's columns,
shape `[n]` or `[n, 1]`; strings as `BYTES`) or, for a model of numeric features only, one
tensor of shape `[n, features]`. The answer holds `predict` (shape `[n]`) and, for a
classifier, `predict_proba` (shape `[n, classes]`, columns in the order of the metadata's
`classes` parameter); `parameters.request_id` is the id `/feedback` takes. A request for an
explicit version is served by that version if it is one of the two being routed (else 404),
and is logged outside the rollout: it is not a random sample of traffic.

`null` in a tensor's data is accepted as a missing value where the model takes missing
values: an extension of the protocol, whose tensor data holds only numbers, strings and
booleans.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlci.serve.inputs import ANY, BOOL, NUMBER, BadInput, rows_of

if TYPE_CHECKING:
    from mlci.serve.app import Gateway, Loaded, Scored

DATATYPES = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
             "INT64", "FP16", "FP32", "FP64", "BYTES"}
PREDICT, PROBA = "predict", "predict_proba"
MAX_ID = 256


def _datatype(kind: str) -> str:
    return {NUMBER: "FP64", BOOL: "BOOL"}.get(kind, "BYTES")


def _values_type(values: list[Any] | None) -> str:
    vals = [v for v in values or [] if v is not None]
    if vals and all(isinstance(v, bool) for v in vals):
        return "BOOL"
    if vals and all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        return "FP64"
    return "BYTES"


def metadata(gw: Gateway, m: Loaded, versions: list[str]) -> dict[str, Any]:
    spec = m.spec
    if spec.columns is not None:
        inputs = [{"name": c.name, "datatype": _datatype(c.kind), "shape": [-1]}
                  for c in spec.columns]
    else:
        inputs = [{"name": "input-0", "datatype": "FP64", "shape": [-1, spec.width or -1]}]
    outputs = [{"name": PREDICT, "datatype": _values_type(m.classes), "shape": [-1]}]
    params: dict[str, str] = {}
    if m.classes is not None and not m.pyfunc:
        outputs.append({"name": PROBA, "datatype": "FP64", "shape": [-1, len(m.classes)]})
        params["classes"] = ",".join(str(c) for c in m.classes)
    if spec.columns is not None and spec.numeric:
        params["matrix_input"] = f"one FP64 tensor of shape [-1, {len(spec.columns)}]"
    return {"name": gw.name, "versions": versions,
            "platform": "mlflow_pyfunc" if m.pyfunc else "mlflow_sklearn",
            "inputs": inputs, "outputs": outputs, "parameters": params}


# ------------------------------------------------------------------ request -> instances


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise BadInput("a tensor's 'data' must be a list")
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            out.append(v)
        else:
            stack.pop()
    return out


def _tensor(t: Any, i: int) -> tuple[str, list[int], list[Any]]:
    if not isinstance(t, dict):
        raise BadInput(f"input {i} must be an object")
    name, shape, dtype = t.get("name"), t.get("shape"), t.get("datatype")
    if not isinstance(name, str) or not name:
        raise BadInput(f"input {i} needs a 'name'")
    if not isinstance(shape, list) or not shape or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BadInput(f"input {name!r}: 'shape' must be a list of non-negative integers")
    if dtype not in DATATYPES:
        raise BadInput(f"input {name!r}: unknown datatype {dtype!r}")
    data = _flatten(t.get("data"))
    if math.prod(shape) != len(data):
        raise BadInput(f"input {name!r}: shape {shape} holds {math.prod(shape)} values, "
                       f"data has {len(data)}")
    _check_type(name, dtype, data)
    return name, shape, data


def _check_type(name: str, dtype: str, data: list[Any]) -> None:
    """Values must match the declared datatype (null aside, see the module docstring)."""
    if dtype == "BYTES":
        ok = all(v is None or isinstance(v, str) for v in data)
    elif dtype == "BOOL":
        ok = all(v is None or isinstance(v, bool) for v in data)
    else:
        ok = all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                 for v in data)
        if ok and dtype.startswith(("INT", "UINT")):
            ok = all(v is None or float(v).is_integer() for v in data)
    if not ok:
        raise BadInput(f"input {name!r}: data does not match datatype {dtype}")


def instances(body: Any, m: Loaded) -> list[list[Any]]:
    """Checked rows of an inference request for model `m` (the champion)."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) \
            or not body["inputs"]:
        raise BadInput("body must be an inference request with a non-empty 'inputs' list")
    tensors = [_tensor(t, i) for i, t in enumerate(body["inputs"])]
    spec = m.spec
    names = spec.names
    if len(tensors) == 1 and len(tensors[0][1]) == 2 and (names is None or tensors[0][0]
                                                          not in names or len(names) == 1):
        _, (rows, width), data = tensors[0]
        return rows_of([data[i * width:(i + 1) * width] for i in range(rows)], spec)
    if names is None:
        raise BadInput("this model takes one tensor of shape [n, features]")
    by_name: dict[str, list[Any]] = {}
    n: int | None = None
    for name, shape, data in tensors:
        if name not in names:
            raise BadInput(f"input {name!r} is not a feature of the model")
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise BadInput(f"input {name!r}: a feature tensor has shape [n] or [n, 1]")
        if n is not None and shape[0] != n:
            raise BadInput("feature tensors differ in length")
        n = shape[0]
        by_name[name] = data
    lacking = [c for c in names if c not in by_name]
    if lacking:
        raise BadInput(f"the request lacks feature {lacking[0]!r}")
    return rows_of([{c: by_name[c][i] for c in names} for i in range(n or 0)], spec)


def requested_outputs(body: dict[str, Any], m: Loaded) -> set[str]:
    have = {PREDICT} | ({PROBA} if m.classes is not None and not m.pyfunc else set())
    asked = body.get("outputs")
    if asked is None:
        return have
    if not isinstance(asked, list) or not all(isinstance(o, dict) for o in asked):
        raise BadInput("'outputs' must be a list of objects with a 'name'")
    names = {o.get("name") for o in asked}
    unknown = names - have
    if unknown:
        raise BadInput(f"unknown output {sorted(map(str, unknown))[0]!r} "
                       f"(this model has {sorted(have)})")
    return names


def response(gw: Gateway, s: Scored, request_id: Any, outputs: set[str]) -> dict[str, Any]:
    preds = s.predictions or []
    out = []
    if PREDICT in outputs:
        dtype = _values_type(preds)
        data = [None if p is None else (str(p) if dtype == "BYTES" else p) for p in preds]
        out.append({"name": PREDICT, "datatype": dtype, "shape": [len(preds)], "data": data})
    if PROBA in outputs and s.probabilities is not None:
        k = len(s.probabilities[0]) if s.probabilities else 0
        out.append({"name": PROBA, "datatype": "FP64", "shape": [len(preds), k],
                    "data": [p for row in s.probabilities for p in row]})
    return {"model_name": gw.name, "model_version": s.version,
            "id": request_id if request_id is not None else s.request_id,
            "parameters": {"request_id": s.request_id, "variant": s.variant},
            "outputs": out}


# ------------------------------------------------------------------ endpoints


def _error(status: int, msg: str) -> JSONResponse:
    return JSONResponse({"error": msg}, status_code=status)


def routes(gw: Gateway) -> list[Route]:
    from mlci.serve.app import Incompatible, Refused, _json

    def model_of(request: Request) -> tuple[Loaded, list[str]] | Response:
        """The champion (or the version the path names) and the routed versions."""
        active = gw.active
        if active is None:
            return _error(503, "no model loaded yet")
        name, version = request.path_params["name"], request.path_params.get("version")
        r, models = active
        if name != gw.name:
            gw.metrics.refuse("v2", "unknown_model")
            return _error(404, f"unknown model {name!r}; this gateway serves {gw.name!r}")
        versions = [r.champion] + ([r.challenger] if r.challenger else [])
        if version is not None and version not in versions:
            gw.metrics.refuse("v2", "unknown_model")
            return _error(404, f"version {version!r} of {name} is not being served "
                               f"(served: {', '.join(versions)})")
        return models[version or r.champion], versions

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        if gw.log_error is not None:
            await gw.run(gw._probe_log)
        return JSONResponse({"ready": gw.ready()}, status_code=200 if gw.ready() else 503)

    async def server(request: Request) -> Response:
        from mlci import __version__

        return JSONResponse({"name": "mlci", "version": __version__, "extensions": []})

    async def model_metadata(request: Request) -> Response:
        got = model_of(request)
        if isinstance(got, Response):
            return got
        return JSONResponse(metadata(gw, *got))

    async def model_ready(request: Request) -> Response:
        got = model_of(request)
        if isinstance(got, Response):
            return got if got.status_code != 503 else JSONResponse(
                {"name": gw.name, "ready": False}, status_code=503)
        ok = gw.ready()
        return JSONResponse({"name": gw.name, "ready": ok}, status_code=200 if ok else 503)

    def _infer(raw: bytes, key: str | None, active: Any, version: str | None) -> Response:
        try:
            body = _json(raw)
            picked = gw.pick(active[0], key, version)  # its spec checks the input
            try:
                rows, bad = gw.checked(active, picked, lambda m: instances(body, m)), None
            except Incompatible as exc:
                rows, bad = exc.rows, str(exc)
            rid = body.get("id")
            if rid is not None and (not isinstance(rid, str) or len(rid) > MAX_ID):
                raise BadInput(f"'id' must be a string of at most {MAX_ID} characters")
            outputs = requested_outputs(body, active[1][version or active[0].champion])
            s = gw.score(active, rows, key, picked=picked, incompatible=bad)
        except BadInput as exc:
            return gw.refuse("v2", Refused(400, exc.reason, str(exc)))
        except Refused as exc:
            return gw.refuse("v2", exc)
        if s.error is not None:
            shown = gw.name if gw.hide_variant else f"{gw.name}/{s.version}"
            return _error(500, f"model {shown} failed: {s.error}")
        return JSONResponse(gw.shown(response(gw, s, rid, outputs)),
                            background=gw.shadow_task(s))

    async def infer(request: Request) -> Response:
        if (denied := gw.unauthorized(request, "v2", gw.predict_token, False)):
            return denied
        got = model_of(request)
        if isinstance(got, Response):
            return got
        active = gw.active
        raw = await request.body()
        if (over := gw.over_share(request, "v2", raw)):
            return over
        return gw.charged(request, raw, await gw.run(
            _infer, raw, request.headers.get(gw.key_header), active,
            request.path_params.get("version")))

    base, ver = "/v2/models/{name}", "/v2/models/{name}/versions/{version}"
    return [
        Route("/v2", server, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route(base, model_metadata, methods=["GET"]),
        Route(ver, model_metadata, methods=["GET"]),
        Route(base + "/ready", model_ready, methods=["GET"]),
        Route(ver + "/ready", model_ready, methods=["GET"]),
        Route(base + "/infer", infer, methods=["POST"]),
        Route(ver + "/infer", infer, methods=["POST"]),
    ]


__all__ = ["routes", "metadata", "instances", "response", "ANY"]
