"""The rollout on KServe: an `InferenceService` per step, and the analysis from Prometheus.

KServe's canary is a property of the predictor: the spec names the *new* model
(`storageUri` of the challenger) and `canaryTrafficPercent` sends that share to it, the rest
to the last fully rolled-out revision (the champion). So each step renders the challenger with
the step's percentage; promotion renders it without the field (100 % on the new revision);
rollback renders `canaryTrafficPercent: 0`, which pins all traffic to the previous revision.

Each manifest is validated against a minimal schema of the fields rendered
(`schemas/inferenceservice-v1beta1.min.json`, when `jsonschema` is installed), written
atomically to `<out>/canary/inferenceservice.yaml` (plus a numbered copy per change) and, with
`--apply`, applied with `kubectl apply -f`.

With `--metrics-url`, the controller reads the per-variant series of the `mlci serve` gateway
(`mlci_requests_total`, `mlci_errors_total`, `mlci_request_latency_seconds`,
`mlci_feedback_total`, `mlci_feedback_correct_total`, shadow counters) from a Prometheus text
endpoint instead of the prediction log: counts are increases since the rollout started (a
counter that went down was reset by a restart and counts from zero), p99 is interpolated from
the histogram buckets as Prometheus' `histogram_quantile` does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from mlci.errors import MlciError
from mlci.serve.state import PROMOTED, ROLLED_BACK, CanaryState

SCHEMA = Path(__file__).with_name("schemas") / "inferenceservice-v1beta1.min.json"


def k8s_name(name: str) -> str:
    import re

    s = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    if not s:
        raise MlciError(f"cannot make a Kubernetes name from {name!r}")
    return s


def render(st: CanaryState, storage_uri: str, namespace: str | None = None,
           model_format: str = "mlflow") -> dict[str, Any]:
    """The InferenceService for the rollout's current state."""
    if "{version}" not in storage_uri:
        raise MlciError(f"--kserve-storage-uri {storage_uri!r} needs a {{version}} placeholder")
    version = st.challenger if st.challenger else st.champion
    predictor: dict[str, Any] = {}
    if st.status == ROLLED_BACK:
        predictor["canaryTrafficPercent"] = 0
    elif st.status != PROMOTED:
        predictor["canaryTrafficPercent"] = int(round(st.weight))
    predictor["model"] = {"modelFormat": {"name": model_format}, "protocolVersion": "v2",
                          "storageUri": storage_uri.format(version=version)}
    meta: dict[str, Any] = {
        "name": k8s_name(st.model),
        "labels": {"mlci.dev/model": k8s_name(st.model)},
        "annotations": {"mlci.dev/canary-id": st.id, "mlci.dev/champion": st.champion,
                        "mlci.dev/challenger": st.challenger or "",
                        "mlci.dev/status": st.status,
                        "serving.kserve.io/enable-prometheus-scraping": "true"},
    }
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": meta, "spec": {"predictor": predictor}}


def validate(manifest: dict[str, Any]) -> None:
    try:
        import jsonschema
    except ImportError:
        return
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    err = jsonschema.exceptions.best_match(
        jsonschema.Draft7Validator(schema).iter_errors(manifest))
    if err is not None:
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        raise MlciError(f"rendered InferenceService is invalid at {where}: {err.message}")


class KServeBackend:
    """Follows every state the controller writes: render, validate, write, maybe apply."""

    def __init__(self, ctl: Any, *, storage_uri: str | None, namespace: str | None,
                 apply: bool = False, metrics_url: str | None = None) -> None:
        if not storage_uri:
            raise MlciError("--backend kserve needs --kserve-storage-uri "
                            "(e.g. s3://models/digits/{version})")
        if "{version}" not in storage_uri:
            raise MlciError(f"--kserve-storage-uri {storage_uri!r} needs a {{version}} "
                            "placeholder")
        if apply and shutil.which("kubectl") is None:
            raise MlciError("--apply needs kubectl on PATH")
        self.ctl, self.storage_uri, self.namespace = ctl, storage_uri, namespace
        self.apply, self.metrics_url = apply, metrics_url
        self.dir = Path(ctl.path).parent
        self._last: str | None = None

    def on_state(self, st: CanaryState) -> Path:
        import yaml

        from mlci.io import atomic_write_text

        m = render(st, self.storage_uri, self.namespace)
        validate(m)
        text = yaml.safe_dump(m, sort_keys=False)
        path = self.dir / "inferenceservice.yaml"
        if text == self._last:  # a state write that changed nothing KServe sees
            return path
        self._last = text
        path = atomic_write_text(self.dir / "inferenceservice.yaml", text)
        atomic_write_text(self.dir / "kserve" / f"{st.generation:04d}-{st.status}-"
                          f"{int(st.weight)}.yaml", text)
        if self.apply:
            p = subprocess.run(["kubectl", "apply", "-f", str(path)], capture_output=True,
                               text=True, timeout=120)
            if p.returncode != 0:
                first = (p.stderr.strip() or p.stdout.strip() or "failed").splitlines()[0]
                raise MlciError(f"kubectl apply failed: {first}")
        return path

    # -- the analysis from Prometheus metrics

    def scrape(self) -> dict[str, Any]:
        import httpx

        assert self.metrics_url
        try:
            r = httpx.get(self.metrics_url, timeout=10)
            r.raise_for_status()
        except httpx.HTTPError as exc:
            raise MlciError(f"cannot read metrics from {self.metrics_url}: "
                            f"{type(exc).__name__}") from None
        return counters(r.text)

    def stats(self, st: CanaryState) -> dict[str, Any]:
        now = self.scrape()
        base = (st.backend or {}).get("metrics_baseline") or {}
        return stats_from_counters(now, base)


def counters(text: str) -> dict[str, float]:
    """The mlci_* samples of a Prometheus text exposition, keyed `name{variant,le}`."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if not s.name.startswith("mlci_"):
                continue
            key = s.name + "|" + s.labels.get("variant", "") + "|" + s.labels.get("le", "")
            out[key] = out.get(key, 0.0) + float(s.value)  # summed over versions
    return out


def _inc(now: dict[str, float], base: dict[str, float], key: str) -> float:
    a, b = now.get(key, 0.0), base.get(key, 0.0)
    return a - b if a >= b else a  # a reset counter counts from zero


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over (upper bound, cumulative count) pairs."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_c) / (c - prev_c) if c > prev_c
                                               else 0.0)
        prev_le, prev_c = le, c
    return prev_le


def stats_from_counters(now: dict[str, float], base: dict[str, float]) -> dict[str, Any]:
    from mlci.serve.predlog import VariantStats

    out = {}
    for v in ("champion", "challenger"):
        req = _inc(now, base, f"mlci_requests_total|{v}|")
        err = _inc(now, base, f"mlci_errors_total|{v}|")
        les = sorted({k.split("|")[2] for k in now
                      if k.startswith(f"mlci_request_latency_seconds_bucket|{v}|")},
                     key=float)
        buckets = [(float(le), _inc(now, base, f"mlci_request_latency_seconds_bucket|{v}|{le}"))
                   for le in les]
        p99 = histogram_quantile(0.99, buckets)
        s = VariantStats(v, None, int(req), int(err), [],
                         int(_inc(now, base, f"mlci_feedback_total|{v}|")),
                         int(_inc(now, base, f"mlci_feedback_correct_total|{v}|")))
        s.p99_ms = p99 * 1000 if p99 is not None else None
        out[v] = s
    shadow = {"compared": int(_inc(now, base, "mlci_shadow_compared_total||")),
              "disagreements": int(_inc(now, base, "mlci_shadow_disagreements_total||")),
              "errors": 0}
    return {"variants": out, "shadow": shadow}
