"""The rollout on KServe: an `InferenceService` per step, and the analysis from Prometheus.

KServe splits traffic in two ways, one per deployment mode (the annotation
`serving.kserve.io/deploymentMode`, always rendered so the cluster default never decides):

- **Knative**: the predictor names the *new* model and `canaryTrafficPercent` sends that share
  to its revision, the rest to the last revision rolled out at 100 % (tag `prev`). Promotion
  drops the field; rollback sets it to 0, which pins all traffic to `prev`. KServe ignores the
  field while no revision was ever rolled out, so a first rollout would send *everything* to
  the challenger: the champion is rolled out alone first (`before_start`).
- **Standard** (formerly RawDeployment; KServe >= 0.20): the predictor stays the champion and
  `spec.canary[]` holds the challenger as a second, named predictor with its
  `trafficPercent`. Promotion makes the challenger the predictor under its own name (no
  restart) and drops the canary; rollback drops the canary.

Every manifest is validated against the CRD's own `openAPIV3Schema` (vendored from KServe, see
`schemas/README.md`), strictly as `kubectl apply` does (unknown fields are errors), and against
the webhook rules the schema cannot say (names, the canary rules); it is written atomically
to `<out>/canary/inferenceservice.yaml` plus one copy per change under `<out>/canary/kserve/`,
in the order to apply them, and with `--apply` applied by `kubectl apply -f`.

The mlflow model format is served by KServe's MLServer runtime, which speaks only the Open
Inference Protocol, so the predictor says `protocolVersion: v2` — the protocol of the `mlci
serve` gateway's `/v2/models/{name}/infer` too.

With `--metrics-url`, the controller reads the per-variant series of the `mlci serve` gateway
(`mlci_requests_total`, `mlci_errors_total`, `mlci_request_latency_seconds`,
`mlci_feedback_total`, `mlci_feedback_correct_total`, shadow counters) from a Prometheus text
endpoint instead of the prediction log: counts are increases since the rollout started (a
counter that went down was reset by a restart and counts from zero), p99 is interpolated from
the histogram buckets as Prometheus' `histogram_quantile` does.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlci.errors import MlciError
from mlci.serve.state import PROMOTED, ROLLED_BACK, CanaryState

SCHEMA = Path(__file__).with_name("schemas") / "inferenceservice-v1beta1.json"
KNATIVE, STANDARD = "knative", "standard"
MODES = {KNATIVE: "Knative", STANDARD: "Standard"}  # the annotation's values
LEGACY_MODES = {"Serverless": "Knative", "RawDeployment": "Standard"}
MODE_KEY = "serving.kserve.io/deploymentMode"
MODEL_FORMAT = "mlflow"
PROTOCOL = "v2"  # kserve-mlserver, the mlflow format's runtime, lists only v2
CONTAINER = "kserve-container"  # pkg/constants InferenceServiceContainerName

DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # KServe's IsvcNameFmt
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # a namespace
LABEL_MAX = 63
# The longest name KServe derives from the InferenceService name must stay a 63-character
# label: Knative's tagged route `latest-{name}-predictor` (+17) and revision
# `{name}-predictor-00001` (+16); Standard's `{name}-v{version}-predictor` (+11 + the version).
NAME_MAX = 45
PREDICTOR_SUFFIX = "-predictor"
VERSION_POD_LABEL = "mlci.dev/version"
VERSION_LABEL = "mlci_dev_version"  # the same, as Prometheus' labelmap spells it


# ---------------------------------------------------------------- names


def k8s_name(name: str) -> str:
    """A valid InferenceService name for a model name: lower case, DNS-1035, at most
    NAME_MAX characters (a long name keeps its start and gets a digest of the whole)."""
    s = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    s = re.sub(r"-{2,}", "-", s)
    if not s:
        raise MlciError(f"cannot make a Kubernetes name from {name!r}")
    if not s[0].isalpha():
        s = "m-" + s
    if len(s) > NAME_MAX:
        digest = hashlib.sha256(name.encode()).hexdigest()[:6]
        s = s[:NAME_MAX - 7].rstrip("-") + "-" + digest
    return s


def predictor_name(version: str) -> str:
    """The Standard-mode predictor name of a model version: `v<version>`."""
    s = "v" + re.sub(r"[^a-z0-9]+", "-", str(version).lower()).strip("-")
    if not DNS1035.match(s):
        raise MlciError(f"cannot make a predictor name from version {version!r}")
    return s


def check_namespace(namespace: str | None) -> None:
    if namespace is not None and not (DNS1123.match(namespace) and len(namespace) <= LABEL_MAX):
        raise MlciError(f"--kserve-namespace {namespace!r} is not a Kubernetes namespace "
                        "(lower-case letters, digits and '-', at most 63)")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise MlciError(f"--kserve-mode {mode!r}: use one of {', '.join(MODES)}")
    return mode


# ---------------------------------------------------------------- rendering


def _model(uri: str, mode: str = KNATIVE) -> dict[str, Any]:
    m = {"modelFormat": {"name": MODEL_FORMAT}, "protocolVersion": PROTOCOL, "storageUri": uri}
    if mode == STANDARD:
        # the CRD requires the container name in spec.canary[].predictor.model; the same
        # value (KServe's default) everywhere keeps a promotion from restarting the pod
        m = {"name": CONTAINER, **m}
    return m


def _pod_labels(version: str) -> dict[str, dict[str, str]]:
    """The label a predictor's pods carry (KServe copies `predictor.labels` to them): which
    registered version they serve. Prometheus' usual pod `labelmap` turns it into the
    `mlci_dev_version` label of every series scraped from them (MLServer's included)."""
    return {"labels": {VERSION_POD_LABEL: str(version)}}


def _uri(template: str, version: str) -> str:
    if "{version}" not in template:
        raise MlciError(f"--kserve-storage-uri {template!r} needs a {{version}} placeholder")
    return template.format(version=version)


def _meta(model: str, namespace: str | None, mode: str,
          notes: dict[str, str]) -> dict[str, Any]:
    name = k8s_name(model)
    meta: dict[str, Any] = {
        "name": name,
        "labels": {"mlci.dev/model": name},
        "annotations": {MODE_KEY: MODES[check_mode(mode)],
                        "serving.kserve.io/enable-prometheus-scraping": "true",
                        **{f"mlci.dev/{k}": v for k, v in notes.items()}},
    }
    if namespace:
        check_namespace(namespace)
        meta["namespace"] = namespace
    return meta


def _isvc(meta: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": meta, "spec": spec}


def _named(stable_name: str | None, version: str) -> dict[str, str]:
    """Standard mode's stable predictor name: `v<version>`, or the live one ("" = unnamed)."""
    name = predictor_name(version) if stable_name is None else stable_name
    return {"name": name} if name else {}


def render_champion(model: str, champion: str, storage_uri: str, namespace: str | None = None,
                    *, mode: str = KNATIVE, stable_name: str | None = None) -> dict[str, Any]:
    """The champion alone at 100 %: what must be rolled out before a canary starts."""
    predictor: dict[str, Any] = {**_pod_labels(champion),
                                 "model": _model(_uri(storage_uri, champion), mode)}
    if mode == STANDARD:
        predictor = {**_named(stable_name, champion), **predictor}
    meta = _meta(model, namespace, mode, {"canary-id": "", "champion": champion,
                                          "challenger": "", "status": "champion"})
    return _isvc(meta, {"predictor": predictor})


def render(st: CanaryState, storage_uri: str, namespace: str | None = None, *,
           mode: str = KNATIVE, stable_name: str | None = None) -> dict[str, Any]:
    """The InferenceService for the rollout's current state (see the module docstring)."""
    challenger = st.challenger or st.champion
    weight = int(round(st.weight))
    if not 0 <= weight <= 100:
        raise MlciError(f"canary weight {st.weight} is outside 0..100")
    meta = _meta(st.model, namespace, mode, {
        "canary-id": st.id, "champion": st.champion, "challenger": st.challenger or "",
        "status": st.status})
    if check_mode(mode) == KNATIVE:
        predictor: dict[str, Any] = {}
        if st.status == ROLLED_BACK:
            predictor["canaryTrafficPercent"] = 0
        elif st.status != PROMOTED:
            predictor["canaryTrafficPercent"] = weight
        predictor.update(_pod_labels(challenger))  # a new revision's pods, not the champion's
        predictor["model"] = _model(_uri(storage_uri, challenger))
        return _isvc(meta, {"predictor": predictor})
    if st.status == PROMOTED:  # the canary becomes the predictor under its own name
        return _isvc(meta, {"predictor": {
            "name": predictor_name(challenger), **_pod_labels(challenger),
            "model": _model(_uri(storage_uri, challenger), STANDARD)}})
    spec: dict[str, Any] = {"predictor": {
        **_named(stable_name, st.champion), **_pod_labels(st.champion),
        "model": _model(_uri(storage_uri, st.champion), STANDARD)}}
    if st.status != ROLLED_BACK:
        spec["canary"] = [{"predictor": {"name": predictor_name(challenger),
                                         **_pod_labels(challenger),
                                         "model": _model(_uri(storage_uri, challenger),
                                                         STANDARD)},
                           "trafficPercent": weight}]
    return _isvc(meta, spec)


# ---------------------------------------------------------------- patches
#
# What mlci renders is the minimum a rollout needs; a cluster needs more (a service account that
# reads the model bucket, CPU and memory, node selectors). `--kserve-patch FILE` applies the
# same patch to every manifest before it is validated:
#   - a mapping: a JSON merge patch (RFC 7386). Its `spec.predictor` also patches each
#     `spec.canary[].predictor` (Standard mode), so the challenger's pods get the same
#     service account and resources as the champion's;
#   - a list: a JSON patch (RFC 6902: add, remove, replace, test), applied as written.
# The fields mlci steers (OWNED) must come out unchanged, else the patch is refused.

OWNED = ("apiVersion", "kind", "metadata.name", "metadata.namespace",
         f"metadata.annotations.{MODE_KEY}", "spec.predictor.name",
         "spec.predictor.canaryTrafficPercent", "spec.predictor.model.storageUri",
         "spec.predictor.model.modelFormat", "spec.predictor.model.protocolVersion", "spec.canary")
JSON_PATCH_OPS = {"add", "remove", "replace", "test"}


def load_patch(path: Path) -> Any:
    import yaml

    try:
        patch = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MlciError(f"--kserve-patch {path}: not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise MlciError(f"--kserve-patch {path}: not YAML or JSON ({type(exc).__name__})") \
            from None
    if isinstance(patch, list):
        for i, op in enumerate(patch):
            if not (isinstance(op, dict) and op.get("op") in JSON_PATCH_OPS
                    and isinstance(op.get("path"), str) and op["path"].startswith("/")):
                raise MlciError(f"--kserve-patch {path}: operation {i} is not a JSON patch "
                                f"operation ({', '.join(sorted(JSON_PATCH_OPS))} with a /path)")
    elif not isinstance(patch, dict):
        raise MlciError(f"--kserve-patch {path}: a mapping (merge patch) or a list (JSON "
                        "patch) is needed")
    return patch


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: mappings merge, `null` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902's add, remove, replace and test; a path that does not resolve is an error."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = _pointer(op["path"])
        node = doc
        try:
            for key in parents:
                node = node[int(key)] if isinstance(node, list) else node[key]
            if isinstance(node, list):
                index = len(node) if last == "-" else int(last)
                if op["op"] == "add":
                    node.insert(index, copy.deepcopy(op["value"]))
                elif op["op"] == "remove":
                    del node[index]
                elif op["op"] == "replace":
                    node[index] = copy.deepcopy(op["value"])
                elif node[index] != op["value"]:
                    raise MlciError(f"--kserve-patch: test failed at {op['path']}")
            elif op["op"] in ("add", "replace"):
                if op["op"] == "replace" and last not in node:
                    raise KeyError(last)
                node[last] = copy.deepcopy(op["value"])
            elif op["op"] == "remove":
                del node[last]
            elif node[last] != op["value"]:
                raise MlciError(f"--kserve-patch: test failed at {op['path']}")
        except (KeyError, IndexError, ValueError, TypeError):
            raise MlciError(f"--kserve-patch: {op['op']} {op['path']}: no such location in "
                            "the rendered InferenceService") from None
    return doc


def _get(doc: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def _owned(doc: dict[str, Any]) -> dict[str, Any]:
    """The values of OWNED in a manifest; of a canary entry: its name, model and weight."""
    def entry(c: dict[str, Any]) -> dict[str, Any]:
        pred = c.get("predictor") or {}
        model = pred.get("model") or {}
        return {"name": pred.get("name"), "trafficPercent": c.get("trafficPercent"),
                "model": {k: model.get(k) for k in ("storageUri", "modelFormat",
                                                    "protocolVersion")}}

    return {k: [entry(c) for c in _get(doc, k) or []] if k == "spec.canary" else _get(doc, k)
            for k in OWNED}


def apply_patch(manifest: dict[str, Any], patch: Any) -> dict[str, Any]:
    """The manifest with the user's patch applied; refused when it moves what mlci steers."""
    if patch is None:
        return manifest
    if isinstance(patch, list):
        out = json_patch(manifest, patch)
    else:
        out = merge_patch(manifest, patch)
        pred = _get(patch, "spec.predictor")
        if isinstance(pred, dict) and isinstance(_get(out, "spec.canary"), list):
            for entry in out["spec"]["canary"]:
                entry["predictor"] = merge_patch(entry.get("predictor"), pred)
    if not isinstance(out, dict):
        raise MlciError("--kserve-patch: the result is not an InferenceService")
    before, after = _owned(manifest), _owned(out)
    changed = [k for k in OWNED if before[k] != after[k]]
    if changed:
        raise MlciError(f"--kserve-patch changes {changed[0]}, which mlci sets for the rollout")
    return out


# ---------------------------------------------------------------- validation


def _strict(node: Any) -> Any:
    """Unknown fields are errors, as with `kubectl apply` (server-side field validation
    Strict): close every object schema that lists its properties and does not say
    `x-kubernetes-preserve-unknown-fields`."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


@lru_cache(maxsize=4)
def _validator(schema_path: Path = SCHEMA) -> Any:
    try:
        import jsonschema
    except ImportError:
        raise MlciError("--backend kserve needs jsonschema: pip install 'mlci[serve]'") \
            from None
    schema = _strict(json.loads(schema_path.read_text(encoding="utf-8")))
    return jsonschema.Draft7Validator(schema)


def _fail(where: str, message: str) -> None:
    raise MlciError(f"rendered InferenceService is invalid at {where}: {message}")


def stable_uri(predictor: dict[str, Any]) -> str | None:
    """The storage URI of a predictor, whichever implementation it uses."""
    for v in predictor.values():
        if isinstance(v, dict) and "storageUri" in v:
            return v["storageUri"]
    return predictor.get("storageUri")


def _check_names(m: dict[str, Any]) -> None:
    meta, spec = m.get("metadata") or {}, m.get("spec") or {}
    name = meta.get("name", "")
    if not DNS1035.match(name):
        _fail("metadata/name", f"{name!r} does not match {DNS1035.pattern} (KServe's webhook)")
    if len(name) > NAME_MAX:
        _fail("metadata/name", f"{name!r} is longer than {NAME_MAX} characters")
    check_namespace(meta.get("namespace"))
    for where, p in [("spec/predictor", spec.get("predictor") or {})] + [
            (f"spec/canary/{i}/predictor", c.get("predictor") or {})
            for i, c in enumerate(spec.get("canary") or [])]:
        service = f"{name}-{p['name']}{PREDICTOR_SUFFIX}" if p.get("name") else name
        if len(service) > LABEL_MAX:
            _fail(where + "/name", f"the Service {service!r} would be longer than 63")


def _check_canary(m: dict[str, Any]) -> None:
    """KServe's validateCanarySpecs (pkg/apis/serving/v1beta1/inference_service_validation.go)."""
    spec, ann = m["spec"], m["metadata"].get("annotations") or {}
    canary = spec.get("canary") or []
    if not canary:
        return
    if ann.get(MODE_KEY) != MODES[STANDARD]:
        _fail("spec/canary", f"needs the annotation {MODE_KEY}: Standard")
    if stable_uri(spec["predictor"]) is None:
        _fail("spec/predictor", "spec.canary needs a stable predictor with a storageUri")
    names = [c["predictor"].get("name") for c in canary]
    if not all(names) or len(set(names)) != len(names) or \
            spec["predictor"].get("name") in names:
        _fail("spec/canary", "each canary needs its own predictor.name, unlike the predictor's")
    if sum(c["trafficPercent"] for c in canary) > 100:
        _fail("spec/canary", "the trafficPercent values add up to more than 100")


def _check_update(m: dict[str, Any], live: dict[str, Any]) -> None:
    """KServe's validateDeploymentMode and validatePredictorNameChange on an update."""
    have = (live.get("status") or {}).get("deploymentMode", "")
    have = LEGACY_MODES.get(have, have)
    want = m["metadata"]["annotations"][MODE_KEY]
    if have and have != want:
        raise MlciError(f"InferenceService {m['metadata']['name']} runs in {have} mode; "
                        f"KServe cannot change it to {want}: pass --kserve-mode "
                        f"{have.lower()}")
    old, new = (live.get("spec") or {}).get("predictor") or {}, m["spec"]["predictor"]
    if old.get("name", "") != new.get("name", "") and stable_uri(old) == stable_uri(new):
        _fail("spec/predictor/name", "KServe refuses a predictor.name change without a new "
                                     "storageUri")


def validate(manifest: dict[str, Any], live: dict[str, Any] | None = None, *,
             schema: Path = SCHEMA) -> None:
    """Raise MlciError unless KServe would accept `manifest` (over `live`, when given);
    `schema` is another release's CRD schema (the tests check the minimum versions with it)."""
    import jsonschema

    for key, want in (("apiVersion", "serving.kserve.io/v1beta1"), ("kind", "InferenceService")):
        if manifest.get(key) != want:
            _fail(key, f"{manifest.get(key)!r} is not {want!r}")
    err = jsonschema.exceptions.best_match(_validator(schema).iter_errors(manifest))
    if err is not None:
        _fail("/".join(str(p) for p in err.absolute_path) or "(root)", err.message)
    _check_names(manifest)
    _check_canary(manifest)
    if live is not None:
        _check_update(manifest, live)


# ---------------------------------------------------------------- the cluster


def _condition(obj: dict[str, Any], kind: str) -> bool:
    conds = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conds)


def asks_for(live: dict[str, Any] | None, champion: str, uri: str, mode: str) -> str | None:
    """None when the spec of `live` asks for the champion at full traffic, else why not."""
    if live is None:
        return "the InferenceService does not exist"
    ann = (live.get("metadata") or {}).get("annotations") or {}
    predictor = (live.get("spec") or {}).get("predictor") or {}
    if stable_uri(predictor) == uri and predictor.get("canaryTrafficPercent") in (None, 100):
        return None
    if mode == KNATIVE and ann.get("mlci.dev/status") == ROLLED_BACK \
            and ann.get("mlci.dev/champion") == champion:
        return None  # canaryTrafficPercent 0: all traffic on `prev`, the champion's revision
    if mode == STANDARD and stable_uri(predictor) == uri:
        return None  # the stable predictor; a canary left behind is replaced by the next step
    return f"it does not serve {uri} at 100 %"


def rolled_out(live: dict[str, Any], mode: str) -> str | None:
    """None when KServe has done what the spec of `live` asks, else why not."""
    meta, status = live.get("metadata") or {}, live.get("status") or {}
    if status.get("observedGeneration", 0) < meta.get("generation", 0) or \
            not _condition(live, "Ready"):
        return "not Ready yet"
    predictor = (status.get("components") or {}).get("predictor") or {}
    if mode == KNATIVE and not predictor.get("latestRolledoutRevision"):
        return "no revision rolled out yet"
    return None


def serving(live: dict[str, Any] | None, champion: str, uri: str, mode: str) -> str | None:
    """None when `live` serves the champion at full traffic, else why not."""
    why = asks_for(live, champion, uri, mode)
    return why if why is not None or live is None else rolled_out(live, mode)


class Kubectl:
    """The few kubectl calls the backend makes; one line of stderr on failure."""

    def __init__(self, exe: str = "kubectl") -> None:
        self.exe = exe

    def _run(self, *args: str) -> str:
        p = subprocess.run([self.exe, *args], capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            first = (p.stderr.strip() or p.stdout.strip() or "failed").splitlines()[0]
            raise MlciError(f"kubectl {args[0]} failed: {first}")
        return p.stdout

    def get(self, name: str, namespace: str | None) -> dict[str, Any] | None:
        ns = ["-n", namespace] if namespace else []
        out = self._run("get", "inferenceservice", name, *ns, "--ignore-not-found",
                        "-o", "json")
        return json.loads(out) if out.strip() else None

    def apply(self, path: Path) -> None:
        self._run("apply", "-f", str(path))


class KServeBackend:
    """Follows every state the controller writes: render, validate, write, maybe apply."""

    def __init__(self, ctl: Any, *, storage_uri: str | None, namespace: str | None,
                 mode: str = KNATIVE, apply: bool = False, metrics_url: str | None = None,
                 ready_timeout: float = 600.0, poll: float = 5.0,
                 kubectl: Kubectl | None = None, patch: Path | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not storage_uri:
            raise MlciError("--backend kserve needs --kserve-storage-uri "
                            "(e.g. s3://models/digits/{version})")
        _uri(storage_uri, "1")
        check_namespace(namespace)
        check_mode(mode)
        if apply and kubectl is None and shutil.which("kubectl") is None:
            raise MlciError("--apply needs kubectl on PATH")
        _validator()
        self.patch = load_patch(patch) if patch is not None else None
        self.ctl, self.storage_uri, self.namespace = ctl, storage_uri, namespace
        self.mode, self.apply, self.metrics_url = mode, apply, metrics_url
        self.kubectl = kubectl or Kubectl()
        self.ready_timeout, self.poll, self.clock, self.sleep = ready_timeout, poll, clock, sleep
        self.dir = Path(ctl.path).parent
        self.stable_name: str | None = None  # Standard: the live predictor's name, if kept
        self._last: str | None = None

    def _echo(self, text: str) -> None:
        getattr(self.ctl, "echo", print)(f"kserve: {text}")

    def _write(self, m: dict[str, Any], copy: str) -> Path:
        import yaml

        from mlci.io import atomic_write_text

        text = yaml.safe_dump(m, sort_keys=False)
        path = self.dir / "inferenceservice.yaml"
        if text == self._last:  # a state write that changed nothing KServe sees
            return path
        self._last = text
        atomic_write_text(self.dir / "kserve" / copy, text)
        return atomic_write_text(path, text)

    def _learn(self, live: dict[str, Any] | None, champion: str) -> None:
        """Standard mode: keep the live predictor's name while it serves the champion (a
        rename without a new model is refused by KServe)."""
        p = ((live or {}).get("spec") or {}).get("predictor") or {}
        if self.mode == STANDARD and stable_uri(p) == _uri(self.storage_uri, champion):
            self.stable_name = p.get("name", "")

    def before_start(self, champion: str | None) -> None:
        """Make sure the champion is rolled out in the InferenceService before a rollout
        moves any traffic: with --apply, roll it out alone when it is not, and wait."""
        if champion is None:
            return  # the controller refuses a rollout without a champion
        uri = _uri(self.storage_uri, champion)
        live = self.kubectl.get(k8s_name(self.ctl.name), self.namespace) if self.apply \
            else None
        self._learn(live, champion)
        m = apply_patch(render_champion(self.ctl.name, champion, self.storage_uri,
                                        self.namespace, mode=self.mode,
                                        stable_name=self.stable_name), self.patch)
        validate(m, live)
        path = self._write(m, f"champion-{champion}.yaml")
        if not self.apply:
            if self.mode == KNATIVE:
                self._echo(f"apply {path.parent / 'kserve' / f'champion-{champion}.yaml'} "
                           "and wait until it is Ready before the first step")
            return
        if serving(live, champion, uri, self.mode) is None:
            return
        why = asks_for(live, champion, uri, self.mode)
        if why is not None:
            self._echo(f"rolling out champion {champion} alone first ({why})")
            self.kubectl.apply(path)
        self._wait_champion(champion, uri)

    def _wait_champion(self, champion: str, uri: str) -> None:
        from mlci.progress import Progress

        name = k8s_name(self.ctl.name)
        deadline = self.clock() + self.ready_timeout
        with Progress(f"kserve: champion {champion} in {name}", clock=self.clock) as bar:
            while True:
                why = serving(self.kubectl.get(name, self.namespace), champion, uri,
                              self.mode)
                if why is None:
                    return
                if self.clock() >= deadline:
                    bar.fail(why)
                    raise MlciError(f"InferenceService {name}: champion {champion} not rolled "
                                    f"out after {self.ready_timeout:.0f}s ({why}); no traffic "
                                    "moved")
                bar.update(detail=why)
                self.sleep(self.poll)

    def on_state(self, st: CanaryState) -> Path:
        live = self.kubectl.get(k8s_name(st.model), self.namespace) if self.apply else None
        if st.status != PROMOTED:
            self._learn(live, st.champion)
        m = apply_patch(render(st, self.storage_uri, self.namespace, mode=self.mode,
                               stable_name=self.stable_name), self.patch)
        validate(m, live)
        before = self._last
        path = self._write(m, f"{st.id}-{st.generation:04d}-{st.status}-{int(st.weight)}.yaml")
        if self.apply and self._last != before:
            self.kubectl.apply(path)
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
        return stats_from_counters(now, base, {"champion": st.champion,
                                               "challenger": st.challenger})


# MLServer's own counters (mlserver/handlers/dataplane.py: labels `model`, `version`), keyed
# by the registered version of the pod that counted them (VERSION_LABEL)
MLSERVER = {"model_infer_request_success_total": "mlserver_success",
            "model_infer_request_failure_total": "mlserver_failure"}


def counters(text: str) -> dict[str, float]:
    """The samples the judge reads from a Prometheus text exposition: the gateway's mlci_*
    series keyed `name|variant|le`, and MLServer's request counters keyed
    `mlserver_success|<version>|` (the version from the `mlci_dev_version` label)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise MlciError(f"the metrics are not in the Prometheus text format ({exc})") from None
    for fam in families:
        for s in fam.samples:
            if s.name.startswith("mlci_"):
                key = s.name + "|" + s.labels.get("variant", "") + "|" + s.labels.get("le", "")
            elif s.name in MLSERVER:
                key = MLSERVER[s.name] + "|" + s.labels.get(VERSION_LABEL, "") + "|"
            else:
                continue
            out[key] = out.get(key, 0.0) + float(s.value)  # summed over versions, pods
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


def stats_from_counters(now: dict[str, float], base: dict[str, float],
                        versions: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Per-variant evidence since the baseline: from the gateway's series, else (KServe
    without `mlci serve` in front) from MLServer's request counters of each variant's
    version, which count no labelled feedback."""
    from mlci.serve.predlog import VariantStats

    if not any(k.startswith("mlci_requests_total|") for k in now) and \
            any(k.startswith("mlserver_") for k in now):
        return _from_mlserver(now, base, versions or {})
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


def _from_mlserver(now: dict[str, float], base: dict[str, float],
                   versions: dict[str, str | None]) -> dict[str, Any]:
    from mlci.serve.predlog import VariantStats

    if any(k.split("|")[1] == "" for k in now if k.startswith("mlserver_")):
        raise MlciError(f"MLServer's request counters carry no {VERSION_LABEL} label, so "
                        "champion and challenger cannot be told apart: scrape the "
                        "predictor pods with Prometheus' pod labelmap (mlci labels them "
                        f"{VERSION_POD_LABEL}) and pass its /federate URL, or run mlci serve "
                        "in front")
    out = {}
    for variant in ("champion", "challenger"):
        v = versions.get(variant) or ""
        ok = _inc(now, base, f"mlserver_success|{v}|")
        failed = _inc(now, base, f"mlserver_failure|{v}|")
        s = VariantStats(variant, v or None, int(ok + failed), int(failed), [], 0, 0)
        s.p99_ms = None  # latency is not judged from metrics
        out[variant] = s
    return {"variants": out, "shadow": {"compared": 0, "disagreements": 0, "errors": 0}}
