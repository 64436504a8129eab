"""The gateway: a Starlette application serving champion and challenger of one model.

    POST /predict   {"instances": [[numbers...] | {"col": value, ...} | image pixels, ...]}
                    or {"images": ["<base64 PNG, JPEG or WebP>", ...]} (see `imaging`)
                    -> {"request_id", "variant", "model_version", "predictions",
                        "probabilities", "classes"}
    POST /feedback  {"request_id": "...", "label": 3}  (a list for a batch; bearer token)
    /v2/...         the Open Inference Protocol (KServe v2), see `v2`
    GET  /metrics   Prometheus text format
    GET  /healthz   the process is up
    GET  /readyz    a champion is loaded and the prediction log takes writes

Routing follows the rollout state file (`<out>/canary/state.json`), polled a few times a
second: new versions are loaded on a worker thread first and the routing table is then swapped
as one object, so a weight or version change needs no restart and drops no request. Without a
running rollout the gateway serves `@champion` and re-reads that alias every few seconds.

The event loop only accepts, routes and answers: parsing, validation, image decoding,
prediction and every prediction-log access run on a small thread pool, so a heavy request or
a locked log never delays `/healthz`.

The prediction log keeps what its retention allows (size and age; the oldest rows go first,
the running rollout's last), and each client address may add at most a share of that size
per minute (429 beyond). When the log cannot take a write, the policy decides: `open` (the
default) answers anyway, counts the request in `mlci_unlogged_requests_total` and shows the
failure on `/readyz` (still 200: a full disk is not an outage); `closed` refuses the request
with 503 (an answer that is not logged is missing from the canary's and the monitor's
evidence) and `/readyz` turns 503. Either way `mlci_prediction_log_failures_total` counts it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import os
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlci.serve import imaging
from mlci.serve.guard import Guard, Limits, client_of, token_ok
from mlci.serve.imaging import ImageBatch
from mlci.serve.inputs import (
    MAX_INSTANCES,
    BadInput,
    InputSpec,
    Mismatch,
    labels_of,
    matrix,
    rows_of,
    spec_of,
)
from mlci.serve.metrics import Metrics
from mlci.serve.predlog import DuplicateLabel, LogUnavailable, PredictionLog, Retention, same
from mlci.serve.routing import CHALLENGER, CHAMPION, Routing, route_key
from mlci.serve.share import ClientShare
from mlci.serve.state import read_state

log = logging.getLogger("mlci.serve")
Rows = list[list[Any]] | ImageBatch  # checked instances: feature rows, or a batch of images
MAX_REQUEST_ID = 64
ENDPOINTS = ("predict", "feedback", "v2", "metrics", "healthz", "readyz")  # metric labels


@dataclass
class Loaded:
    version: str
    model: Any
    classes: list[Any] | None
    spec: InputSpec
    frame_only: bool = False  # takes a DataFrame only (a pipeline, or a pyfunc model)
    pyfunc: bool = False
    types: dict[str, str] = field(default_factory=dict)  # column -> its signature's type

    @property
    def features(self) -> list[str] | None:
        return self.spec.names

    def predict(self, x: Any, columns: list[str] | None) -> tuple[list[Any],
                                                                  list[list[float]] | None]:
        """Score `x` (a float matrix whose columns are `columns`, or a DataFrame).

        When this model was fitted on exactly those columns in that order, a matrix goes in
        as is (building a DataFrame costs ten times the prediction); otherwise as a DataFrame,
        so the estimator itself matches or rejects the columns by name."""
        if not hasattr(x, "columns") and columns is not None and (
                self.frame_only or self.features != columns):
            import pandas as pd

            x = pd.DataFrame(x, columns=columns)
        if self.pyfunc:
            from mlci.registry.models import cast

            # JSON numbers arrive as floats; pyfunc refuses them for an integer column
            out = self.model.predict(cast(x, self.types) if self.types else x)
            return [_py(v) for v in _one_per_row(out)], None
        if self.classes is not None and hasattr(self.model, "predict_proba"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "no feature names": checked
                proba = self.model.predict_proba(x)
            idx = proba.argmax(axis=1)
            return [_py(self.classes[i]) for i in idx], proba.round(6).tolist()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return [_py(v) for v in self.model.predict(x)], None

    def scores_missing(self) -> bool:
        """Whether the model scores a row whose every value is missing (it imputes)."""
        if not self.spec.width:
            return False
        try:
            self.predict(matrix([[None] * self.spec.width], self.spec), self.features)
        except Exception:  # noqa: BLE001 - any refusal means: no missing values
            return False
        return True


def _py(v: Any) -> Any:
    v = v.item() if hasattr(v, "item") else v
    return None if isinstance(v, float) and math.isnan(v) else v


def _one_per_row(out: Any) -> list[Any]:
    """A pyfunc model's answer as one prediction per row: a column of a frame, or of a
    tensor model's dict of outputs (MLflow's onnx flavour answers {output name: array}; a
    `label` output, else the only one). Scores of several classes are not a prediction:
    the model must answer labels (e.g. a PythonModel taking the argmax)."""
    import numpy as np

    if isinstance(out, dict):
        key = next((k for k in out if str(k).lower() in ("label", "output_label")), None)
        if key is None and len(out) != 1:
            raise ValueError(f"the model answered outputs {sorted(map(str, out))[:4]}, none "
                             "named 'label'")
        out = out[key if key is not None else next(iter(out))]
    if hasattr(out, "iloc"):
        return list(out.iloc[:, 0]) if out.ndim == 2 else list(out)
    arr = np.asarray(out)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"the model answered an array of shape {list(arr.shape)}, not one "
                         "label per row")
    return list(arr)


def _first_line(exc: BaseException) -> str:
    s = str(exc).strip()
    return f"{type(exc).__name__}: {s.splitlines()[0] if s else ''}".strip(": ")


def _frame_only(model: Any) -> bool:
    from sklearn.pipeline import Pipeline

    return isinstance(model, Pipeline)


@dataclass
class Scored:
    """One scored request, as both protocols answer it."""

    request_id: str
    variant: str
    version: str
    predictions: list[Any] | None
    probabilities: list[list[float]] | None
    classes: list[Any] | None
    error: str | None = None
    shadow: tuple | None = field(default=None, repr=False)
    log_cost: int | None = None  # bytes its inputs take in the log, when not the body's size


class Incompatible(Exception):
    """The routed variant cannot take a request of this shape that the champion takes."""

    def __init__(self, msg: str, rows: Rows) -> None:
        super().__init__(msg)
        self.rows = rows


class Refused(Exception):
    """A request refused before or instead of scoring: status, reason, message."""

    def __init__(self, status: int, reason: str, msg: str) -> None:
        super().__init__(msg)
        self.status, self.reason = status, reason


class Gateway:
    def __init__(self, model_name: str, *, log_path: Path, state_file: Path,
                 key_header: str = "x-mlci-key", poll: float = 0.25, refresh: float = 5.0,
                 image_max: float | None = None, limits: Limits | None = None,
                 feedback_token: str | None = None, predict_token: str | None = None,
                 secret: bytes = b"", log_lock_timeout: float = 2.0,
                 log_max_bytes: int | None = None, workers: int | None = None,
                 retention: Retention | None = None, log_failure: str = "open",
                 client_share: float = 0.05, hide_variant: bool = False) -> None:
        self.name = model_name
        self.state_file = Path(state_file)
        self.key_header = key_header.lower()
        self.poll, self.refresh, self.image_max = poll, refresh, image_max
        self.limits = limits or Limits()
        self.feedback_token, self.predict_token = feedback_token, predict_token
        self.secret = secret
        self.log = PredictionLog(log_path, lock_timeout=log_lock_timeout,
                                 max_bytes=log_max_bytes, retention=retention)
        if log_failure not in ("open", "closed"):
            raise ValueError(f"log_failure must be 'open' or 'closed', not {log_failure!r}")
        self.log_failure = log_failure
        # answers do not say which variant (or version) served them: a client cannot find
        # the routing keys that reach the challenger and aim its traffic there
        self.hide_variant = hide_variant
        size = self.log.retention.max_bytes or log_max_bytes
        # each client's share of the log (None: no size to take a share of)
        self.share = ClientShare(size * client_share) if size and client_share < 1 else None
        self.log_error: str | None = None  # the last failed write, until one succeeds
        self._last_probe = 0.0
        self.metrics = Metrics()
        self.pool = ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) + 2),
                                       thread_name_prefix="mlci-score")
        self._cache: dict[str, Loaded] = {}
        self._classes: dict[str, list[Any] | None] = {}  # every version loaded, for labels
        # (routing, the models it routes to): swapped as one object, read once per request
        self.active: tuple[Routing, dict[str, Loaded]] | None = None
        self._seen: tuple[int, int] | None = None
        self._last_alias_check = 0.0
        self.pending: str | None = None  # last failure to apply a routing change
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------ models and routing

    def load(self, version: str) -> Loaded:
        if version in self._cache:
            return self._cache[version]
        from mlci.registry import models, tracking

        m = models.load_version(tracking.env_client(), self.name, version, role="served model")
        model, pyfunc, schema = m.native, m.pyfunc, m.schema
        classes = None if pyfunc else getattr(model, "classes_", None)
        loaded = Loaded(version, model, [_py(c) for c in classes] if classes is not None
                        else None, spec_of(model, schema), pyfunc or _frame_only(model), pyfunc,
                        dict(m.inputs or []))
        loaded.spec.missing_ok = loaded.scores_missing()
        self._cache[version] = loaded
        self._classes[version] = loaded.classes
        return loaded

    @property
    def routing(self) -> Routing | None:
        return self.active[0] if self.active else None

    def champion_alias(self) -> str | None:
        from mlci.registry import tracking
        from mlci.registry.aliases import current

        return current(tracking.env_client(), self.name, "champion")

    def desired(self) -> Routing | None:
        """The routing the state file (or, without a running rollout, the registry) asks for."""
        st = read_state(self.state_file)
        if st is not None and st.model == self.name and st.running:
            return Routing(st.champion, st.challenger, float(st.weight), bool(st.shadow),
                           st.id, st.generation)
        gen = st.generation if st is not None else 0
        v = self.champion_alias()
        if v is None:
            if st is not None and st.model == self.name:
                return Routing(st.champion, None, 0.0, False, None, gen)
            return None
        return Routing(v, None, 0.0, False, None, gen)

    def apply(self, r: Routing) -> None:
        """Load what the routing needs, then swap it in (one assignment)."""
        models = {r.champion: self.load(r.champion)}
        if r.challenger:
            models[r.challenger] = self.load(r.challenger)
        self.active = (r, models)
        self.metrics.routing(r.weight if r.challenger else 0.0, r.generation)
        self.pending = None
        self._cache = dict(models)  # drop versions no longer routed
        self.log.keep = r.canary_id  # retention prunes the running rollout's rows last

    def _changed(self) -> bool:
        try:
            s = self.state_file.stat()
            sig = (s.st_mtime_ns, s.st_size)
        except FileNotFoundError:
            sig = None
        if sig != self._seen:
            self._seen = sig
            return True
        now = time.monotonic()
        running = self.routing is not None and self.routing.canary_id is not None
        if not running and now - self._last_alias_check >= self.refresh:
            self._last_alias_check = now
            return True
        return False

    def sync(self) -> None:
        """One poll: apply a changed state. Errors keep the current routing (retried)."""
        if not self._changed():
            return
        try:
            r = self.desired()
            if r is not None and r != self.routing:
                self.apply(r)
        except Exception as exc:  # noqa: BLE001 - keep serving; report on /readyz
            self.pending = _first_line(exc)
            self._seen = None  # try again next poll
            log.warning("routing change not applied: %s", self.pending)

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.poll)
            await loop.run_in_executor(None, self.sync)

    # ------------------------------------------------------------ input (worker threads)

    def instances(self, body: Any, m: Loaded) -> Rows:
        """Checked rows of a /predict body for model `m`: the variant that will score them
        (champion and challenger may differ, e.g. in taking missing values)."""
        if not isinstance(body, dict):
            raise BadInput("body must be a JSON object with 'instances' or 'images'")
        keys = [k for k in ("instances", "images") if k in body]
        if len(keys) != 1:
            raise BadInput("body must have exactly one of 'instances' or 'images'")
        if keys[0] == "instances":
            if m.spec.image is not None:
                return imaging.from_instances(body["instances"], m.spec.image)
            return rows_of(body["instances"], m.spec)
        items = body["images"]
        if not isinstance(items, list) or not items:
            raise BadInput("'images' must be a non-empty list")
        if len(items) > MAX_INSTANCES:
            raise BadInput(f"at most {MAX_INSTANCES} images per request, got {len(items)}")
        return self.images([_b64(s, i) for i, s in enumerate(items)], m)

    def images(self, raws: list[bytes], m: Loaded) -> Rows:
        """Encoded images for model `m`: its declared image tensor, or (only when the
        operator set --image-max) the rows of a flat square-pixel model."""
        budget = self.limits.max_image_pixels
        if m.spec.image is not None:
            return imaging.decode_all(raws, m.spec.image, budget)
        if self.image_max is None:
            raise Mismatch(imaging.NO_IMAGES)
        return rows_of(imaging.flat_rows(raws, m.spec.width, self.image_max, budget), m.spec)

    # ------------------------------------------------------------ scoring (worker threads)

    def pick(self, r: Routing, key: str | None,
             version: str | None = None) -> tuple[str, str, str | None]:
        """(variant, version, rollout id) that scores a request. `version` pins a routed
        version (the client asked for it): such requests are logged outside the rollout,
        as they are not a random sample."""
        if version is None:
            variant = r.choose(key, secret=self.secret)
            return variant, r.version(variant), r.canary_id
        return (CHAMPION if version == r.champion else CHALLENGER), version, None

    def checked(self, active: tuple[Routing, dict[str, Loaded]], picked: tuple[str, str, Any],
                check: Any) -> Rows:
        """`check(model)` for the model that scores the request: values that variant cannot
        take (a null where it does not impute, a wrong type) are the client's error, counted
        apart by variant, never a model error. A request of another shape than the variant
        takes, that the champion takes, is the variant's fault: `Incompatible` (scored as
        that variant's error), so a challenger that cannot serve production traffic is still
        rolled back."""
        variant, version, _ = picked
        try:
            return check(active[1][version])
        except Mismatch as exc:
            champion = active[1][active[0].champion]
            if version != champion.version:
                try:
                    rows = check(champion)
                except BadInput:
                    pass
                else:
                    raise Incompatible(str(exc), rows) from None
            self.metrics.input_refused.labels(variant, version).inc()
            raise
        except BadInput:
            self.metrics.input_refused.labels(variant, version).inc()
            raise

    def score(self, active: tuple[Routing, dict[str, Loaded]], rows: Rows,
              key: str | None, version: str | None = None,
              picked: tuple[str, str, str | None] | None = None,
              incompatible: str | None = None) -> Scored:
        """Route (unless `picked` already did), predict, log. `rows` are checked against
        the spec of the version that scores them (or, when that version is `incompatible`
        with them, the champion's: a model error without predicting). Raises Refused when
        the log cannot take the row and the log fails closed."""
        r, models = active
        variant, version, canary_id = picked or self.pick(r, key, version)
        m = models[version]
        x = None
        if incompatible is None:
            x = rows.array if isinstance(rows, ImageBatch) else matrix(rows, m.spec)
        rid = uuid.uuid4().hex
        t0 = time.perf_counter()
        err = incompatible
        preds: list[Any] | None = None
        probs = None
        try:
            if x is not None:
                preds, probs = m.predict(x, m.features)
        except Exception as exc:  # noqa: BLE001 - a model error is a 500 and is counted
            err = _first_line(exc)
        dt = time.perf_counter() - t0
        try:
            self.log.log(request_id=rid, model=self.name, variant=variant, version=version,
                         canary_id=canary_id, route_key=route_key(key, self.secret),
                         inputs=rows.records if isinstance(rows, ImageBatch) else rows,
                         outputs=preds, probabilities=probs, latency_ms=dt * 1000,
                         error=err, n=len(rows))
        except LogUnavailable as exc:
            self._log_failed("predict", exc)
            if self.log_failure == "closed":
                raise Refused(503, "", "prediction log unavailable; the request was not "
                                       "answered") from None
            self.metrics.unlogged.labels(variant).inc()  # fail open: answered, not logged
        else:
            self.log_error = None
        self.metrics.requests.labels(variant, version).inc()
        if err is not None:
            self.metrics.errors.labels(variant, version).inc()
        else:
            self.metrics.latency.labels(variant).observe(dt)
        shadow = None
        if err is None and r.shadow and r.challenger and variant == CHAMPION \
                and canary_id is not None:
            shadow = (rid, models[r.challenger], rows, m.spec, preds)
        cost = len(json.dumps(rows.records)) if isinstance(rows, ImageBatch) else None
        return Scored(rid, variant, version, preds, probs, m.classes, err, shadow, cost)

    def _log_failed(self, op: str, exc: BaseException) -> None:
        self.metrics.log_failures.labels(op).inc()
        self.log_error = str(exc)
        log.error("prediction log: %s", exc)

    def _shadow(self, rid: str, m: Loaded, rows: Rows,
                spec: InputSpec, served: list[Any]) -> None:
        """The challenger scores champion traffic, on rows checked against its own spec:
        rows it cannot take are counted as refused input, not as its errors."""
        try:
            if isinstance(rows, ImageBatch):
                if m.spec.image is None:
                    raise Mismatch(imaging.NO_IMAGES)
                x = imaging.again(rows, m.spec.image, self.limits.max_image_pixels).array
            else:
                x = matrix(rows_of([dict(zip(spec.names, r, strict=True)) for r in rows]
                                   if spec.names and m.spec.names else rows, m.spec), m.spec)
        except BadInput:
            self.metrics.input_refused.labels("shadow", m.version).inc()
            return
        try:
            out, _ = m.predict(x, m.features)
            err = None
        except Exception as exc:  # noqa: BLE001
            out, err = None, _first_line(exc)
        try:
            self.log.log_shadow(rid, m.version, out, err)
        except LogUnavailable as exc:
            self._log_failed("shadow", exc)
            return
        if out is not None:
            self.metrics.shadow.inc(len(out))
            self.metrics.disagree.inc(sum(not same(a, b)
                                          for a, b in zip(out, served, strict=False)))

    def _predict(self, raw: bytes, key: str | None,
                 active: tuple[Routing, dict[str, Loaded]]) -> tuple[Response, int]:
        """The answer, and what the request costs its client's share of the log."""
        try:
            body = _json(raw)
            picked = self.pick(active[0], key)
            try:
                rows, bad = self.checked(active, picked, lambda m: self.instances(body, m)), None
            except Incompatible as exc:
                rows, bad = exc.rows, str(exc)
            s = self.score(active, rows, key, picked=picked, incompatible=bad)
        except BadInput as exc:
            return self.refuse("predict", Refused(400, exc.reason, str(exc))), 0
        except Refused as exc:
            return self.refuse("predict", exc), 0
        if s.error is not None:
            return JSONResponse(self.shown({
                "error": f"model {self.name}/{s.version} failed: {s.error}"
                if not self.hide_variant else f"model {self.name} failed: {s.error}",
                "request_id": s.request_id, "variant": s.variant,
                "model_version": s.version}), status_code=500), 0
        return JSONResponse(self.shown({
            "request_id": s.request_id, "variant": s.variant, "model_version": s.version,
            "predictions": s.predictions, "probabilities": s.probabilities,
            "classes": s.classes}), background=self.shadow_task(s)), self.cost(s, raw)

    def shown(self, answer: dict[str, Any]) -> dict[str, Any]:
        """`answer` without the variant and version when the operator hides them."""
        if self.hide_variant:
            for k in ("variant", "model_version"):
                answer.pop(k, None)
            answer.get("parameters", {}).pop("variant", None)
        return answer

    def _feedback(self, raw: bytes) -> Response:
        try:
            return self._record_label(_json(raw))
        except BadInput as exc:
            return self.refuse("feedback", Refused(400, exc.reason, str(exc)))
        except Refused as exc:
            return self.refuse("feedback", exc)

    def _record_label(self, body: Any) -> Response:
        rid = body.get("request_id") if isinstance(body, dict) else None
        if not isinstance(rid, str) or "label" not in body:
            raise BadInput('body must be {"request_id": "...", "label": ...}')
        if len(rid) > MAX_REQUEST_ID:
            raise Refused(404, "unknown_request", "unknown request_id")
        try:
            found = self.log.lookup(rid)
        except LogUnavailable as exc:
            self._log_failed("feedback", exc)
            raise Refused(503, "", "prediction log unavailable; label not recorded") from None
        if found is None:
            raise Refused(404, "unknown_request", f"unknown request_id {rid!r}")
        variant, version, outputs, labelled = found
        if labelled:
            raise Refused(409, "duplicate_label", f"request {rid} already has a label")
        classes = self._classes.get(version or "")
        if classes is None and self.active is not None and version not in self._classes:
            classes = self.active[1][self.active[0].champion].classes
        n = len(outputs) if outputs is not None else (
            len(body["label"]) if isinstance(body["label"], list) else 1)
        numeric = outputs is None or all(isinstance(p, (int, float)) for p in outputs)
        try:
            labels = labels_of(body["label"], n, classes, numeric)
        except BadInput as exc:
            raise Refused(400, "bad_label", str(exc)) from None
        stored = labels if isinstance(body["label"], list) else labels[0]
        try:
            self.log.feedback(rid, stored)
        except DuplicateLabel:
            raise Refused(409, "duplicate_label", f"request {rid} already has a label") \
                from None
        except LogUnavailable as exc:
            self._log_failed("feedback", exc)
            raise Refused(503, "", "prediction log unavailable; label not recorded") from None
        if outputs is None:
            return JSONResponse({"recorded": True, "note": "the request had failed"})
        correct = sum(same(p, y) for p, y in zip(outputs, labels, strict=True))
        self.metrics.feedback(variant, n, correct)
        return JSONResponse({"recorded": True, "correct": correct, "n": n})

    # ------------------------------------------------------------ endpoints (event loop)

    def refuse(self, endpoint: str, exc: Refused) -> JSONResponse:
        if exc.reason:  # log failures are counted as such, not as refusals
            self.metrics.refuse(endpoint, exc.reason)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)

    def unauthorized(self, request: Request, endpoint: str, token: str | None,
                     required: bool) -> Response | None:
        """A 401 (or 403 when no token is configured but one is required), else None."""
        if token is None:
            if not required:
                return None
            return self.refuse(endpoint, Refused(
                403, "unauthorized", f"/{endpoint} is disabled: start the gateway with "
                                     "MLCI_FEEDBACK_TOKEN or --feedback-token-file"))
        if token_ok(request.headers.get("authorization"), token):
            return None
        return self.refuse(endpoint, Refused(401, "unauthorized",
                                             "missing or wrong bearer token"))

    async def run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def shadow_task(self, s: Scored) -> BackgroundTask | None:
        return BackgroundTask(self.run, self._shadow, *s.shadow) if s.shadow else None

    async def predict(self, request: Request) -> Response:
        if (denied := self.unauthorized(request, "predict", self.predict_token, False)):
            return denied
        active = self.active
        if active is None:
            return JSONResponse({"error": "no model loaded yet"}, status_code=503)
        raw = await request.body()
        if (over := self.over_share(request, "predict", raw)):
            return over
        return self.charged(request, *await self.run(
            self._predict, raw, request.headers.get(self.key_header), active))

    @staticmethod
    def cost(s: Scored, raw: bytes) -> int:
        """What an answered request adds to the log: its body's size, or for images what is
        logged of them (a digest each, not the pixels)."""
        return s.log_cost if s.log_cost is not None else len(raw)

    def charged(self, request: Request, response: Response, cost: int) -> Response:
        """`response`, its `cost` charged to its client's share of the log when it was
        answered (so logged): refused requests cost nothing."""
        if self.share is not None and response.status_code == 200:
            self.share.charge(client_of(request.scope), cost)
        return response

    def over_share(self, request: Request, endpoint: str, raw: bytes) -> Response | None:
        """A 429 when this client has used its share of the prediction log, else None."""
        if self.share is None or self.share.has_room(client_of(request.scope), len(raw)):
            return None
        self.metrics.refuse(endpoint, "log_share")
        return JSONResponse({"error": "this client is over its share of the prediction log; "
                                      "retry later"}, status_code=429,
                            headers={"Retry-After": str(self.share.retry_after(len(raw)))})

    async def feedback(self, request: Request) -> Response:
        if (denied := self.unauthorized(request, "feedback", self.feedback_token, True)):
            return denied
        return await self.run(self._feedback, await request.body())

    async def metrics_endpoint(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        self.metrics.pruned.set(self.log.pruned)
        return Response(generate_latest(self.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def _probe_log(self) -> None:
        """While the log is failing, try one small write (at most once a second)."""
        now = time.monotonic()
        if self.log_error is None or now - self._last_probe < 1.0:
            return
        self._last_probe = now
        try:
            self.log.probe()
            self.log_error = None
        except LogUnavailable as exc:
            self.log_error = str(exc)

    def ready(self) -> bool:
        """A champion is loaded and answers are logged, or (failing open) would still be
        answered: a log failure takes a fail-open gateway out of no load balancer."""
        return self.routing is not None and (self.log_error is None
                                             or self.log_failure == "open")

    async def readyz(self, request: Request) -> Response:
        if self.log_error is not None:
            await self.run(self._probe_log)
        r = self.routing
        info: dict[str, Any] = {"model": self.name, "ready": self.ready(),
                                "pending_error": self.pending, "log_error": self.log_error,
                                "logging": self.log_error is None,
                                "log_failure": self.log_failure}
        if r is not None:
            info.update(champion=r.champion, challenger=r.challenger,
                        weight=r.weight if r.challenger else 0.0, shadow=r.shadow,
                        canary_id=r.canary_id, generation=r.generation)
        return JSONResponse(info, status_code=200 if self.ready() else 503)

    # ------------------------------------------------------------ app

    def app(self) -> Any:
        from contextlib import asynccontextmanager

        from mlci.serve import v2

        @asynccontextmanager
        async def lifespan(app: Starlette):
            self._task = asyncio.create_task(self.watch())
            try:
                yield
            finally:
                self._task.cancel()
                self.pool.shutdown(wait=True, cancel_futures=True)
                self.log.close()

        async def internal_error(request: Request, exc: Exception) -> Response:
            # the last resort for a bug: counted, and JSON like every other answer
            endpoint = request.url.path.strip("/").split("/")[0]
            self.metrics.internal.labels(endpoint if endpoint in ENDPOINTS else "-").inc()
            log.error("internal error on %s: %s", request.url.path, _first_line(exc))
            return JSONResponse({"error": "internal error (in the gateway's log)"},
                                status_code=500)

        async def http_error(request: Request, exc: Exception) -> Response:
            # unknown paths (404) and methods (405): JSON like every other answer
            status = getattr(exc, "status_code", 500)
            return JSONResponse({"error": f"{getattr(exc, 'detail', '') or 'error'}: "
                                          f"{request.method} {request.url.path}"},
                                status_code=status, headers=getattr(exc, "headers", None))

        app = Starlette(exception_handlers={Exception: internal_error,
                                            HTTPException: http_error}, routes=[
            Route("/predict", self.predict, methods=["POST"]),
            Route("/feedback", self.feedback, methods=["POST"]),
            Route("/metrics", self.metrics_endpoint, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            *v2.routes(self),
        ], lifespan=lifespan)
        return Guard(app, self.limits, self.metrics.refuse)


def _b64(s: Any, i: int) -> bytes:
    if not isinstance(s, str):
        raise BadInput(f"image {i} must be a base64 string")
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(f"image {i} is not base64 (a PNG, JPEG or WebP file, base64-encoded)") \
            from None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:  # also UnicodeDecodeError, and integers over 4300 digits
        raise Refused(400, "bad_json", "body is not valid JSON") from None
    except RecursionError:  # thousands of nested brackets: the parser's stack runs out
        raise Refused(400, "bad_json", "body is nested too deeply") from None


__all__ = ["Gateway", "BadInput", "CHAMPION", "CHALLENGER"]
