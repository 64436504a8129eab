"""The Open Inference Protocol (KServe v2, REST) beside `/predict`.

    GET  /v2                                        server metadata
    GET  /v2/health/live, /v2/health/ready          liveness, readiness
    GET  /v2/models/{name}[/versions/{v}]           model metadata (inputs, outputs)
    GET  /v2/models/{name}[/versions/{v}]/ready     model readiness
    POST /v2/models/{name}[/versions/{v}]/infer     inference

An inference request goes through the same validation, routing, prediction log and metrics
as `/predict`. Its inputs are either one tensor per feature (named as the model's columns,
shape `[n]` or `[n, 1]`; strings as `BYTES`) or, for a model of numeric features only, one
tensor of shape `[n, features]`; an image model takes one tensor, its own `UINT8`
`[n, H, W, C]` or `BYTES` `[n]` of encoded images (base64 in JSON, raw in binary data; see
`imaging`). Inputs and outputs may use the binary tensor data extension (`tensors`). The
answer holds `predict` (shape `[n]`) and, for a
classifier, `predict_proba` (shape `[n, classes]`, columns in the order of the metadata's
`classes` parameter); `parameters.request_id` is the id `/feedback` takes. A request for an
explicit version is served by that version if it is one of the two being routed (else 404),
and is logged outside the rollout: it is not a random sample of traffic.

`null` in a tensor's data is accepted as a missing value where the model takes missing
values: an extension of the protocol, whose tensor data holds only numbers, strings and
booleans.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlci.serve import imaging
from mlci.serve.inputs import ANY, BOOL, NUMBER, BadInput, Column, rows_of
from mlci.serve.tensors import (
    HEADER,
    Tensor,
    binary_outputs,
    body_with_binary,
    encode,
    parse_inputs,
    split,
)

if TYPE_CHECKING:
    from mlci.serve.app import Gateway, Loaded, Rows, Scored

PREDICT, PROBA = "predict", "predict_proba"
MAX_ID = 256


SIGNATURE_TYPES = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32",
                   "boolean": "BOOL", "string": "BYTES", "binary": "BYTES",
                   "datetime": "BYTES"}


def _datatype(c: Column) -> str:
    """The protocol datatype of a column: its signature's type, else its kind."""
    return SIGNATURE_TYPES.get(c.type) or {NUMBER: "FP64", BOOL: "BOOL"}.get(c.kind, "BYTES")


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
        inputs = [{"name": c.name, "datatype": _datatype(c), "shape": [-1]}
                  for c in spec.columns]
    elif spec.image is not None:
        inputs = [{"name": spec.input_name or "input-0", "datatype": "UINT8",
                   "shape": [-1, *spec.image.shape]}]
    else:
        inputs = [{"name": "input-0", "datatype": "FP64", "shape": [-1, spec.width or -1]}]
    outputs = [{"name": PREDICT, "datatype": _values_type(m.classes), "shape": [-1]}]
    params: dict[str, str] = {}
    if m.classes is not None and not m.pyfunc:
        outputs.append({"name": PROBA, "datatype": "FP64", "shape": [-1, len(m.classes)]})
        params["classes"] = ",".join(str(c) for c in m.classes)
    if spec.columns is not None and spec.numeric:
        params["matrix_input"] = f"one FP64 tensor of shape [-1, {len(spec.columns)}]"
    if spec.image is not None or gw.image_max is not None:
        params["image_input"] = ("or one BYTES tensor of shape [-1]: a PNG, JPEG or WebP "
                                 "image each (base64 in JSON, raw in binary data)")
    return {"name": gw.name, "versions": versions,
            "platform": "mlflow_pyfunc" if m.pyfunc else "mlflow_sklearn",
            "inputs": inputs, "outputs": outputs, "parameters": params}


# ------------------------------------------------------------------ request -> instances


def instances(gw: Gateway, tensors: list[Tensor], m: Loaded) -> Rows:
    """Checked rows (or images) of an inference request's tensors for model `m`."""
    spec = m.spec
    names = spec.names
    if len(tensors) == 1 and tensors[0].datatype == "BYTES" and (
            names is None or tensors[0].name not in names) and spec.numeric:
        return gw.images(_encoded(tensors[0]), m)  # (a model of strings: a misnamed one)
    if spec.image is not None:
        if len(tensors) != 1:
            raise BadInput("this model takes one image tensor: BYTES [n] (encoded images) "
                           f"or UINT8 [n, {spec.image.height}, {spec.image.width}, "
                           f"{spec.image.channels}]")
        t = tensors[0]
        if t.binary:
            return imaging.from_pixels(t.data.reshape(t.shape), spec.image)
        return imaging.from_pixels(_pixels(t), spec.image)
    if len(tensors) == 1 and len(tensors[0].shape) == 2 and (names is None or tensors[0].name
                                                             not in names or len(names) == 1):
        t = tensors[0]
        rows, width = t.shape
        data = t.values()
        return rows_of([data[i * width:(i + 1) * width] for i in range(rows)], spec)
    if names is None:
        raise BadInput("this model takes one tensor of shape [n, features]")
    by_name: dict[str, list[Any]] = {}
    n: int | None = None
    for t in tensors:
        if t.name not in names:
            raise BadInput(f"input {t.name!r} is not a feature of the model")
        if len(t.shape) > 2 or (len(t.shape) == 2 and t.shape[1] != 1):
            raise BadInput(f"input {t.name!r}: a feature tensor has shape [n] or [n, 1]")
        if n is not None and t.shape[0] != n:
            raise BadInput("feature tensors differ in length")
        n = t.shape[0]
        by_name[t.name] = t.values()
    lacking = [c for c in names if c not in by_name]
    if lacking:
        raise BadInput(f"the request lacks feature {lacking[0]!r}")
    return rows_of([{c: by_name[c][i] for c in names} for i in range(n or 0)], spec)


def _encoded(t: Tensor) -> list[bytes]:
    """The images of a BYTES tensor of shape [n] or [n, 1]: raw in binary data, base64 in
    JSON (KServe's and MLServer's convention for binary content in a JSON tensor)."""
    from mlci.serve.app import _b64

    if len(t.shape) > 2 or (len(t.shape) == 2 and t.shape[1] != 1):
        raise BadInput(f"input {t.name!r}: images are a BYTES tensor of shape [n] or [n, 1]")
    if t.binary:
        return list(t.data)
    return [_b64(v, i) for i, v in enumerate(t.data)]


def _pixels(t: Tensor) -> Any:
    import numpy as np

    if any(v is None for v in t.data):
        raise BadInput(f"input {t.name!r}: pixel values cannot be missing")
    return np.asarray(t.data, dtype=float).reshape(t.shape)


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


def response(gw: Gateway, s: Scored, request_id: Any, outputs: set[str],
             binary: tuple[bool, dict[str, bool]] = (False, {})) -> Response:
    """The inference response; outputs the request asked for in binary go after the JSON
    header (the binary tensor data extension)."""
    preds = s.predictions or []
    out: list[tuple[dict[str, Any], list[Any]]] = []
    if PREDICT in outputs:
        dtype = _values_type(preds)
        data = [None if p is None else (str(p) if dtype == "BYTES" else p) for p in preds]
        out.append(({"name": PREDICT, "datatype": dtype, "shape": [len(preds)]}, data))
    if PROBA in outputs and s.probabilities is not None:
        k = len(s.probabilities[0]) if s.probabilities else 0
        out.append(({"name": PROBA, "datatype": "FP64", "shape": [len(preds), k]},
                    [p for row in s.probabilities for p in row]))
    default, per = binary
    blobs = []
    for o, data in out:
        if per.get(o["name"], default):
            if o["datatype"] not in ("BYTES", "FP64") and any(v is None for v in data):
                o["datatype"] = "FP64"  # a missing value is NaN in binary data
            blob = encode(data, o["datatype"])
            o["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            o["data"] = data
    doc = gw.shown({"model_name": gw.name, "model_version": s.version,
                    "id": request_id if request_id is not None else s.request_id,
                    "parameters": {"request_id": s.request_id, "variant": s.variant},
                    "outputs": [o for o, _ in out]})
    if not blobs:
        return JSONResponse(doc, background=gw.shadow_task(s))
    content, head = body_with_binary(doc, blobs)
    return Response(content, media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(head)},
                    background=gw.shadow_task(s))


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

        return JSONResponse({"name": "mlci", "version": __version__,
                             "extensions": ["binary_tensor_data"]})

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

    def _infer(raw: bytes, header_length: str | None, key: str | None, active: Any,
               version: str | None) -> tuple[Response, int]:
        try:
            head, binary = split(raw, header_length)
            body = _json(head)
            tensors = parse_inputs(body, binary, len(raw))
            rid = body.get("id")
            if rid is not None and (not isinstance(rid, str) or len(rid) > MAX_ID):
                raise BadInput(f"'id' must be a string of at most {MAX_ID} characters")
            outputs = requested_outputs(body, active[1][version or active[0].champion])
            asked = binary_outputs(body)
            picked = gw.pick(active[0], key, version)  # its spec checks the input
            try:
                rows, bad = gw.checked(active, picked,
                                       lambda m: instances(gw, tensors, m)), None
            except Incompatible as exc:
                rows, bad = exc.rows, str(exc)
            s = gw.score(active, rows, key, picked=picked, incompatible=bad)
        except BadInput as exc:
            return gw.refuse("v2", Refused(400, exc.reason, str(exc))), 0
        except Refused as exc:
            return gw.refuse("v2", exc), 0
        if s.error is not None:
            shown = gw.name if gw.hide_variant else f"{gw.name}/{s.version}"
            return _error(500, f"model {shown} failed: {s.error}"), 0
        return response(gw, s, rid, outputs, asked), gw.cost(s, raw)

    async def infer(request: Request) -> Response:
        if (denied := gw.unauthorized(request, "v2", gw.predict_token, False)):
            return denied
        got = model_of(request)
        if isinstance(got, Response):
            return got
        encoding = request.headers.get("content-encoding", "identity").lower()
        if encoding != "identity":  # inflating a body is a way round --max-body: refused
            return gw.refuse("v2", Refused(400, "bad_input", "compressed request bodies "
                                           f"(Content-Encoding: {encoding[:20]}) are not "
                                           "accepted; send the body uncompressed"))
        active = gw.active
        raw = await request.body()
        if (over := gw.over_share(request, "v2", raw)):
            return over
        return gw.charged(request, *await gw.run(
            _infer, raw, request.headers.get(HEADER), request.headers.get(gw.key_header), active,
            request.path_params.get("version")))

    base, ver = "/v2/models/{name}", "/v2/models/{name}/versions/{version}"
    return [
        Route("/v2", server, methods=["GET"]),
        Route("/v2/", server, methods=["GET"]),  # as the OpenAPI description spells it
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
