"""The gateway: a Starlette application serving champion and challenger of one model.

    POST /predict   {"instances": [[...64 pixels...] | {"col": value, ...}, ...]}
                    or {"images": ["<base64 PNG>", ...]}
                    -> {"request_id", "variant", "model_version", "predictions",
                        "probabilities", "classes"}
    POST /feedback  {"request_id": "...", "label": 3}  (a list for a batch)
    GET  /metrics   Prometheus text format
    GET  /healthz   the process is up
    GET  /readyz    a champion is loaded; shows the routing applied

Routing follows the rollout state file (`<out>/canary/state.json`), polled a few times a
second: new versions are loaded on a worker thread first and the routing table is then swapped
as one object, so a weight or version change needs no restart and drops no request. Without a
running rollout the gateway serves `@champion` and re-reads that alias every few seconds.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import logging
import math
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlci.serve.metrics import Metrics
from mlci.serve.predlog import PredictionLog, same
from mlci.serve.routing import CHALLENGER, CHAMPION, Routing
from mlci.serve.state import read_state

log = logging.getLogger("mlci.serve")
MAX_INSTANCES = 1024


class BadInput(ValueError):
    """The request body is not something the model can score (HTTP 400)."""


@dataclass
class Loaded:
    version: str
    model: Any
    classes: list[Any] | None
    features: list[str] | None
    n_features: int | None

    def predict(self, x: Any, columns: list[str] | None) -> tuple[list[Any],
                                                                  list[list[float]] | None]:
        """Score a float matrix whose columns are `columns` (the champion's features).

        When this model was fitted on exactly those columns in that order, the matrix goes in
        as is (building a DataFrame costs ten times the prediction); otherwise as a DataFrame,
        so the estimator itself matches or rejects the columns by name."""
        if self.features is not None and self.features != columns:
            import pandas as pd

            x = pd.DataFrame(x, columns=columns)
        if self.classes is not None and hasattr(self.model, "predict_proba"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "no feature names": checked
                proba = self.model.predict_proba(x)
            idx = proba.argmax(axis=1)
            return [_py(self.classes[i]) for i in idx], proba.round(6).tolist()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return [_py(v) for v in self.model.predict(x)], None


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _first_line(exc: BaseException) -> str:
    s = str(exc).strip()
    return f"{type(exc).__name__}: {s.splitlines()[0] if s else ''}".strip(": ")


class Gateway:
    def __init__(self, model_name: str, *, log_path: Path, state_file: Path,
                 key_header: str = "x-mlci-key", poll: float = 0.25, refresh: float = 5.0,
                 image_max: float = 16.0) -> None:
        self.name = model_name
        self.state_file = Path(state_file)
        self.key_header = key_header.lower()
        self.poll, self.refresh, self.image_max = poll, refresh, image_max
        self.log = PredictionLog(log_path)
        self.metrics = Metrics()
        self._cache: dict[str, Loaded] = {}
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
        import mlflow.sklearn

        model = mlflow.sklearn.load_model(f"models:/{self.name}/{version}")
        classes = getattr(model, "classes_", None)
        feats = getattr(model, "feature_names_in_", None)
        loaded = Loaded(version, model, list(classes) if classes is not None else None,
                        [str(f) for f in feats] if feats is not None else None,
                        getattr(model, "n_features_in_", None))
        self._cache[version] = loaded
        return loaded

    @property
    def routing(self) -> Routing | None:
        return self.active[0] if self.active else None

    def champion_alias(self) -> str | None:
        from mlflow import MlflowClient

        from mlci.registry.aliases import current

        return current(MlflowClient(), self.name, "champion")

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

    # ------------------------------------------------------------ input

    def frame(self, body: Any, m: Loaded) -> tuple[Any, list[list[float]]]:
        import numpy as np

        if not isinstance(body, dict):
            raise BadInput("body must be a JSON object with 'instances' or 'images'")
        keys = [k for k in ("instances", "images") if k in body]
        if len(keys) != 1:
            raise BadInput("body must have exactly one of 'instances' or 'images'")
        items = body[keys[0]]
        if not isinstance(items, list) or not items:
            raise BadInput(f"'{keys[0]}' must be a non-empty list")
        if len(items) > MAX_INSTANCES:
            raise BadInput(f"at most {MAX_INSTANCES} instances per request, got {len(items)}")
        cols = m.features
        width = len(cols) if cols else m.n_features
        if keys[0] == "images":
            rows = [self._image(s, width, i) for i, s in enumerate(items)]
        elif all(isinstance(x, dict) for x in items):
            if not cols:
                raise BadInput("this model has no feature names; send lists of numbers")
            missing = [c for c in cols if c not in items[0]]
            if missing:
                raise BadInput(f"instance 0 lacks feature {missing[0]!r}")
            try:
                rows = [[float(x[c]) for c in cols] for x in items]
            except KeyError as exc:
                raise BadInput(f"an instance lacks feature {exc.args[0]!r}") from None
            except (TypeError, ValueError):
                raise BadInput("feature values must be numbers") from None
        else:
            rows = [self._flat(x, width, i) for i, x in enumerate(items)]
        return np.asarray(rows, dtype=float), rows

    @staticmethod
    def _flat(x: Any, width: int | None, i: int) -> list[float]:
        if not isinstance(x, list):
            raise BadInput(f"instance {i} must be a list of numbers or an object")
        if x and isinstance(x[0], list):  # an image as rows of pixels
            x = [v for row in x for v in (row if isinstance(row, list) else [row])]
        try:
            vals = [float(v) for v in x]
        except (TypeError, ValueError):
            raise BadInput(f"instance {i} holds a value that is not a number") from None
        if width is not None and len(vals) != width:
            raise BadInput(f"instance {i} has {len(vals)} values; the model takes {width}")
        if not all(math.isfinite(v) for v in vals):
            raise BadInput(f"instance {i} holds NaN or infinity")
        return vals

    def _image(self, s: Any, width: int | None, i: int) -> list[float]:
        from PIL import Image, UnidentifiedImageError

        if not isinstance(s, str):
            raise BadInput(f"image {i} must be a base64 string")
        side = math.isqrt(width or 0)
        if not width or side * side != width:
            raise BadInput("this model does not take square images")
        try:
            raw = base64.b64decode(s, validate=True)
            img = Image.open(io.BytesIO(raw)).convert("L")
        except (binascii.Error, ValueError, UnidentifiedImageError, OSError):
            raise BadInput(f"image {i} is not a base64-encoded PNG") from None
        if img.size != (side, side):
            img = img.resize((side, side), Image.Resampling.BILINEAR)
        return [round(p * self.image_max / 255, 4) for p in img.getdata()]

    # ------------------------------------------------------------ endpoints

    def _bad(self, msg: str, status: int = 400) -> JSONResponse:
        self.metrics.bad.inc()
        return JSONResponse({"error": msg}, status_code=status)

    async def predict(self, request: Request) -> Response:
        if self.active is None:
            return JSONResponse({"error": "no model loaded yet"}, status_code=503)
        r, models = self.active
        try:
            body = await request.json()
        except ValueError:
            return self._bad("body is not valid JSON")
        key = request.headers.get(self.key_header)
        variant = r.choose(key)
        version = r.version(variant)
        m = models[version]
        champ = models[r.champion]
        try:
            frame, rows = self.frame(body, champ)  # one input schema: the champion's
        except BadInput as exc:
            return self._bad(str(exc))
        rid = uuid.uuid4().hex
        t0 = time.perf_counter()
        err = None
        preds: list[Any] | None = None
        probs = None
        try:
            preds, probs = m.predict(frame, champ.features)
        except Exception as exc:  # noqa: BLE001 - a model error is a 500 and is counted
            err = _first_line(exc)
        dt = time.perf_counter() - t0
        self.log.log(request_id=rid, model=self.name, variant=variant, version=version,
                     canary_id=r.canary_id, route_key=_hash_key(key), inputs=rows,
                     outputs=preds, probabilities=probs, latency_ms=dt * 1000, error=err,
                     n=len(rows))
        self.metrics.requests.labels(variant, version).inc()
        if err is not None:
            self.metrics.errors.labels(variant, version).inc()
            return JSONResponse({"error": f"model {self.name}/{version} failed: {err}",
                                 "request_id": rid, "variant": variant,
                                 "model_version": version}, status_code=500)
        self.metrics.latency.labels(variant).observe(dt)
        payload = {"request_id": rid, "variant": variant, "model_version": version,
                   "predictions": preds, "probabilities": probs,
                   "classes": [_py(c) for c in m.classes] if m.classes is not None else None}
        task = None
        if r.shadow and r.challenger and variant == CHAMPION:
            task = BackgroundTask(self._shadow, rid, models[r.challenger], frame,
                                  champ.features, preds)
        return JSONResponse(payload, background=task)

    async def _shadow(self, rid: str, m: Loaded, frame: Any, columns: list[str] | None,
                      served: list[Any]) -> None:
        version = m.version
        try:
            out, _ = m.predict(frame, columns)
            err = None
        except Exception as exc:  # noqa: BLE001
            out, err = None, _first_line(exc)
        self.log.log_shadow(rid, version, out, err)
        if out is not None:
            self.metrics.shadow.inc(len(out))
            self.metrics.disagree.inc(sum(not same(a, b)
                                          for a, b in zip(out, served, strict=False)))

    async def feedback(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return self._bad("body is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("request_id"), str) \
                or "label" not in body:
            return self._bad("body must be {\"request_id\": \"...\", \"label\": ...}")
        label = body["label"]
        found = self.log.lookup(body["request_id"])
        if found is None:
            return self._bad(f"unknown request_id {body['request_id']!r}", 404)
        variant, outputs, labelled = found
        if outputs is None:
            self.log.feedback(body["request_id"], label)
            return JSONResponse({"recorded": True, "note": "the request had failed"})
        labels = label if isinstance(label, list) else [label]
        if len(labels) != len(outputs):
            return self._bad(f"{len(labels)} labels for {len(outputs)} predictions")
        self.log.feedback(body["request_id"], label)
        correct = sum(same(p, y) for p, y in zip(outputs, labels, strict=True))
        if not labelled:  # a corrected label is stored but counted once in the metrics
            self.metrics.feedback(variant, len(labels), correct)
        return JSONResponse({"recorded": True, "correct": correct, "n": len(labels)})

    async def metrics_endpoint(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(self.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        r = self.routing
        info: dict[str, Any] = {"model": self.name, "ready": r is not None,
                                "pending_error": self.pending}
        if r is not None:
            info.update(champion=r.champion, challenger=r.challenger,
                        weight=r.weight if r.challenger else 0.0, shadow=r.shadow,
                        canary_id=r.canary_id, generation=r.generation)
        return JSONResponse(info, status_code=200 if r is not None else 503)

    # ------------------------------------------------------------ app

    def app(self) -> Starlette:
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def lifespan(app: Starlette):
            self._task = asyncio.create_task(self.watch())
            try:
                yield
            finally:
                self._task.cancel()
                self.log.close()

        return Starlette(routes=[
            Route("/predict", self.predict, methods=["POST"]),
            Route("/feedback", self.feedback, methods=["POST"]),
            Route("/metrics", self.metrics_endpoint, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
        ], lifespan=lifespan)


def _hash_key(key: str | None) -> str | None:
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest() if key else None


__all__ = ["Gateway", "BadInput", "CHAMPION", "CHALLENGER"]
