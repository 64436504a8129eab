"""`--kserve-patch`: what a cluster needs beyond the rollout (a service account that reads the
model bucket, resources) added to every rendered InferenceService, validated against KServe's
vendored CRD like the rest, without touching what mlci steers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from mlci.errors import MlciError
from mlci.serve.kserve import (
    KNATIVE,
    STANDARD,
    KServeBackend,
    apply_patch,
    load_patch,
    render,
    validate,
)
from mlci.serve.state import CanaryState

URI = "s3://models/digits/{version}"
MERGE = {"metadata": {"labels": {"team": "ml"}},
         "spec": {"predictor": {"serviceAccountName": "s3-reader",
                                "model": {"resources": {"limits": {"cpu": "1",
                                                                   "memory": "2Gi"}}}}}}


def _st(**kw) -> CanaryState:
    base = dict(id="c-1", model="digits", champion="1", challenger="2", steps=[10, 50, 100],
                weight=10)
    return CanaryState(**{**base, **kw})


@pytest.mark.parametrize("mode", [KNATIVE, STANDARD])
def test_a_merge_patch_reaches_every_predictor_and_validates(mode: str) -> None:
    m = apply_patch(render(_st(), URI, "ml", mode=mode), MERGE)
    validate(m)  # the vendored CRD, strict: the patched fields are real ones
    preds = [m["spec"]["predictor"], *(c["predictor"] for c in m["spec"].get("canary", []))]
    assert len(preds) == (2 if mode == STANDARD else 1)
    for p in preds:  # the challenger's pods read the bucket too
        assert p["serviceAccountName"] == "s3-reader"
        assert p["model"]["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
        assert p["model"]["storageUri"].startswith("s3://models/digits/")
    assert m["metadata"]["labels"] == {"mlci.dev/model": "digits", "team": "ml"}


def test_a_json_patch_is_applied_as_written() -> None:
    ops = [{"op": "add", "path": "/spec/predictor/serviceAccountName", "value": "sa"},
           {"op": "add", "path": "/spec/predictor/nodeSelector", "value": {"gpu": "no"}},
           {"op": "test", "path": "/kind", "value": "InferenceService"},
           {"op": "remove", "path": "/metadata/annotations/mlci.dev~1status"}]
    m = apply_patch(render(_st(), URI, mode=STANDARD), ops)
    validate(m)
    assert m["spec"]["predictor"]["serviceAccountName"] == "sa"
    assert "serviceAccountName" not in m["spec"]["canary"][0]["predictor"]  # only where told
    assert "mlci.dev/status" not in m["metadata"]["annotations"]


@pytest.mark.parametrize("patch,msg", [
    ({"spec": {"predictor": {"model": {"storageUri": "s3://elsewhere/1"}}}},
     "changes spec.predictor.model.storageUri"),
    ({"spec": {"predictor": {"canaryTrafficPercent": 100}}},
     "changes spec.predictor.canaryTrafficPercent"),
    ({"metadata": {"name": "other"}}, "changes metadata.name"),
    ([{"op": "replace", "path": "/spec/canary/0/trafficPercent", "value": 100}],
     "changes spec.canary"),
    ([{"op": "replace", "path": "/spec/nothing/here", "value": 1}], "no such location"),
    ([{"op": "test", "path": "/kind", "value": "Deployment"}], "test failed"),
])
def test_what_mlci_steers_cannot_be_patched(patch, msg) -> None:
    with pytest.raises(MlciError, match=msg):
        apply_patch(render(_st(), URI, mode=STANDARD), patch)


def test_a_misspelt_field_is_refused_by_the_crd() -> None:
    m = apply_patch(render(_st(), URI), {"spec": {"predictor": {"serviceAcountName": "sa"}}})
    with pytest.raises(MlciError, match="serviceAcountName"):
        validate(m)


@pytest.mark.parametrize("text,msg", [
    ("- {op: frobnicate, path: /x}", "not a JSON patch operation"),
    ("just text", "a mapping \\(merge patch\\) or a list"),
    ("{unclosed", "not YAML or JSON"),
])
def test_bad_patch_files(tmp_path: Path, text: str, msg: str) -> None:
    f = tmp_path / "patch.yaml"
    f.write_text(text)
    with pytest.raises(MlciError, match=msg):
        load_patch(f)
    with pytest.raises(MlciError, match="not found"):
        load_patch(tmp_path / "missing.yaml")


def test_the_backend_writes_patched_manifests(tmp_path: Path) -> None:
    f = tmp_path / "patch.yaml"
    f.write_text(yaml.safe_dump(MERGE))
    ctl = SimpleNamespace(path=tmp_path / "canary" / "state.json", name="digits",
                          echo=lambda s: None)
    b = KServeBackend(ctl, storage_uri=URI, namespace="ml", mode=STANDARD, patch=f)
    b.before_start("1")
    path = b.on_state(_st(generation=1))
    m = yaml.safe_load(path.read_text())
    assert m["spec"]["canary"][0]["predictor"]["serviceAccountName"] == "s3-reader"
    champion = yaml.safe_load((path.parent / "kserve" / "champion-1.yaml").read_text())
    assert champion["spec"]["predictor"]["serviceAccountName"] == "s3-reader"
