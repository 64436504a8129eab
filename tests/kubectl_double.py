"""Test double of `kubectl` talking to a cluster that runs KServe (no cluster runs here).

It answers the two calls `mlci.serve.kserve.Kubectl` makes, `apply -f FILE` and
`get inferenceservice NAME [-n NS] --ignore-not-found -o json`, from a JSON file standing for
the cluster (`$KUBECTL_DOUBLE_STATE`), and plays the part of KServe's controller the way its
sources do (v0.20, see src/mlci/serve/schemas/README.md):

- an update that changes `serving.kserve.io/deploymentMode` is refused, as the webhook does;
- Knative: each spec change creates a revision `{name}-predictor-0000N`; traffic follows
  `ksvc_reconciler.go`: `canaryTrafficPercent` splits latest/`prev` only once a revision was
  rolled out, otherwise the latest revision gets 100 %; a revision becomes
  `latestRolledoutRevision` once it has 100 %;
- Standard: `status.canaryStatuses` mirrors `spec.canary`;
- the object turns Ready after `$KUBECTL_DOUBLE_READY_AFTER` gets (default 0: at once).

Every call is appended to `$KUBECTL_DOUBLE_STATE.log`, every applied manifest to
`.applied`. Run as `python kubectl_double.py ARGS`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml

MODE_KEY = "serving.kserve.io/deploymentMode"


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _reconcile(obj: dict, old: dict | None) -> None:
    meta, spec = obj["metadata"], obj["spec"]
    mode = (meta.get("annotations") or {}).get(MODE_KEY, "Standard")
    status = (old or {}).get("status") or {}
    status["deploymentMode"] = mode
    status["observedGeneration"] = meta["generation"]
    status["conditions"] = [{"type": "Ready", "status": "False"}]
    status["gets_until_ready"] = int(os.environ.get("KUBECTL_DOUBLE_READY_AFTER", "0"))
    if mode == "Knative":
        comp = status.setdefault("components", {}).setdefault("predictor", {})
        if old is None or old["spec"]["predictor"].get("model") != spec["predictor"].get("model"):
            n = int(comp.get("latestCreatedRevision", "-0").rsplit("-", 1)[1]) + 1
            comp["latestCreatedRevision"] = f"{meta['name']}-predictor-{n:05d}"
        pct = spec["predictor"].get("canaryTrafficPercent")
        rolled = comp.get("latestRolledoutRevision")
        if pct is not None and rolled:
            comp["traffic"] = [{"latestRevision": True, "percent": pct}]
            if pct < 100:
                comp["traffic"].append({"revisionName": rolled, "percent": 100 - pct,
                                        "tag": "prev"})
        else:  # blue-green: everything on the latest revision
            comp["traffic"] = [{"latestRevision": True, "percent": 100}]
    else:
        status["canaryStatuses"] = [{"name": c["predictor"]["name"], "ready": True,
                                     "trafficPercent": c["trafficPercent"]}
                                    for c in spec.get("canary") or []]
    obj["status"] = status


def _ready(obj: dict) -> None:
    status = obj["status"]
    if status.get("gets_until_ready", 0) > 0:
        status["gets_until_ready"] -= 1
        return
    status["conditions"] = [{"type": "Ready", "status": "True"}]
    comp = (status.get("components") or {}).get("predictor")
    full = comp is not None and comp["traffic"] == [{"latestRevision": True, "percent": 100}]
    if full and comp.get("latestRolledoutRevision") != comp["latestCreatedRevision"]:
        comp["previousRolledoutRevision"] = comp.get("latestRolledoutRevision", "")
        comp["latestRolledoutRevision"] = comp["latestCreatedRevision"]


def install(bindir: Path) -> Path:
    """Put a `kubectl` running this double into `bindir`; returns the cluster state file to
    export as KUBECTL_DOUBLE_STATE."""
    bindir.mkdir(parents=True, exist_ok=True)
    exe = bindir / "kubectl"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" "$@"\n')
    exe.chmod(0o755)
    return bindir / "cluster.json"


def applied(state: Path) -> list[dict]:
    """The manifests the cluster accepted so far, in order."""
    path = Path(f"{state}.applied")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() \
        else []


def main(argv: list[str]) -> int:
    state_path = Path(os.environ["KUBECTL_DOUBLE_STATE"])
    with open(f"{state_path}.log", "a") as log:
        log.write(" ".join(argv) + "\n")
    cluster = _load(state_path)
    if argv[:2] == ["apply", "-f"]:
        obj = yaml.safe_load(Path(argv[2]).read_text())
        key = f"{obj['metadata'].get('namespace', 'default')}/{obj['metadata']['name']}"
        old = cluster.get(key)
        if old is not None:
            have = old["status"]["deploymentMode"]
            want = (obj["metadata"].get("annotations") or {}).get(MODE_KEY, have)
            if want != have:
                print(f"Error from server (BadRequest): admission webhook denied the request: "
                      f"update rejected: deploymentMode cannot be changed from '{have}' to "
                      f"'{want}'", file=sys.stderr)
                return 1
        with open(f"{state_path}.applied", "a") as fh:
            fh.write(json.dumps(obj) + "\n")
        obj["metadata"]["generation"] = (old or {}).get("metadata", {}).get("generation", 0) + 1
        _reconcile(obj, old)
        cluster[key] = obj
        print(f"inferenceservice.serving.kserve.io/{obj['metadata']['name']} configured")
    elif argv[:2] == ["get", "inferenceservice"]:
        ns = argv[argv.index("-n") + 1] if "-n" in argv else "default"
        obj = cluster.get(f"{ns}/{argv[2]}")
        if obj is not None:
            _ready(obj)
            print(json.dumps(obj))
    else:
        print(f"kubectl double: unsupported call {argv}", file=sys.stderr)
        return 2
    state_path.write_text(json.dumps(cluster))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
