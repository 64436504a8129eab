"""The minimum KServe versions docs/serving.md states, checked against each release's own CRD
schema: the minimum accepts mlci's manifests (patched too), the release before refuses what
needs the newer one."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from mlci.errors import MlciError
from mlci.serve.kserve import KNATIVE, SCHEMA, STANDARD, apply_patch, render, render_champion
from mlci.serve.kserve import validate as validate_manifest
from mlci.serve.state import CanaryState

ROOT = Path(__file__).resolve().parents[1]
OLD = ROOT / "tests" / "data" / "kserve"
CRDS = {"0.16": OLD / "inferenceservice-v1beta1-v0.16.0.json",
        "0.19": OLD / "inferenceservice-v1beta1-v0.19.0.json", "0.20": SCHEMA}
URI = "s3://models/digits/{version}"
PATCH = {"spec": {"predictor": {"serviceAccountName": "s3-reader", "model": {
    "resources": {"requests": {"cpu": "500m"}, "limits": {"memory": "2Gi"}}}}}}


def _manifests(mode: str) -> list[dict]:
    st = CanaryState(id="c-1", model="digits", champion="1", challenger="2",
                     steps=[10, 50, 100], weight=10)
    plain = [render_champion("digits", "1", URI, mode=mode), render(st, URI, mode=mode)]
    return plain + [apply_patch(m, PATCH) for m in plain]


def _minimums() -> dict[str, str]:
    text = (ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
    return dict(re.findall(r"^\| `(knative|standard)` \| (\d+\.\d+) \|", text, re.M))


def test_the_old_schemas_are_the_ones_recorded() -> None:
    readme = (OLD / "README.md").read_text()
    for f in OLD.glob("*.json"):
        row = next(line for line in readme.splitlines() if f"`{f.name}`" in line)
        assert hashlib.sha256(f.read_bytes()).hexdigest() in row


def test_the_documented_minimums() -> None:
    assert _minimums() == {"knative": "0.16", "standard": "0.20"}


@pytest.mark.parametrize("mode", [KNATIVE, STANDARD])
def test_the_minimum_and_every_later_release_accept_the_manifests(mode: str) -> None:
    least = _minimums()[mode]
    for version, crd in CRDS.items():
        if tuple(map(int, version.split("."))) >= tuple(map(int, least.split("."))):
            for m in _manifests(mode):
                validate_manifest(m, schema=crd)


def test_the_release_before_the_standard_minimum_refuses_its_canary() -> None:
    _, canary, *_ = _manifests(STANDARD)
    with pytest.raises(MlciError, match="canary"):
        validate_manifest(canary, schema=CRDS["0.19"])
