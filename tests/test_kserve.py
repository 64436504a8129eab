"""The KServe backend: rendered InferenceServices validated against the schema of the fields
rendered (a minimal schema vendored in the package; the full CRD is not shipped), and the
analysis read back from Prometheus metrics."""

from __future__ import annotations

import json

import jsonschema
import pytest

from mlci.errors import MlciError
from mlci.serve.kserve import (
    SCHEMA,
    counters,
    histogram_quantile,
    k8s_name,
    render,
    stats_from_counters,
    validate,
)
from mlci.serve.state import CanaryState

URI = "s3://models/digits/{version}"


def _st(**kw) -> CanaryState:
    base = dict(id="c-1", model="Digits_v", champion="1", challenger="2",
                steps=[10, 50, 100], weight=10)
    return CanaryState(**{**base, **kw})


def test_schema_is_a_valid_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(json.loads(SCHEMA.read_text()))


def test_render_each_phase() -> None:
    m = render(_st(weight=50), URI, "ml")
    validate(m)
    assert m["apiVersion"] == "serving.kserve.io/v1beta1" and m["kind"] == "InferenceService"
    assert m["metadata"] == {**m["metadata"], "name": "digits-v", "namespace": "ml"}
    p = m["spec"]["predictor"]
    assert p["canaryTrafficPercent"] == 50
    assert p["model"] == {"modelFormat": {"name": "mlflow"}, "protocolVersion": "v2",
                          "storageUri": "s3://models/digits/2"}
    promoted = render(_st(status="promoted", champion="2", weight=100), URI)["spec"]
    assert "canaryTrafficPercent" not in promoted["predictor"]
    assert promoted["predictor"]["model"]["storageUri"].endswith("/2")
    rolled = render(_st(status="rolled-back", weight=0), URI)["spec"]["predictor"]
    assert rolled["canaryTrafficPercent"] == 0  # all traffic back on the previous revision
    for st in (_st(), _st(status="promoted"), _st(status="rolled-back")):
        validate(render(st, URI))


@pytest.mark.parametrize("path,value,msg", [
    (("spec", "predictor", "canaryTrafficPercent"), "10", "is not of type 'integer'"),
    (("spec", "predictor", "canaryTrafficPercent"), 120, "greater than the maximum"),
    (("spec", "predictor", "model", "modelFormat"), {}, "'name' is a required property"),
    (("metadata", "name"), "Bad_Name", "does not match"),
    (("kind",), "Service", "was expected"),
])
def test_schema_rejects_wrong_manifests(path, value, msg) -> None:
    m = render(_st(), URI)
    d = m
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value
    with pytest.raises(MlciError, match=msg):
        validate(m)


def test_bad_names_and_templates() -> None:
    with pytest.raises(MlciError, match="placeholder"):
        render(_st(), "s3://models/digits/latest")
    with pytest.raises(MlciError):
        k8s_name("___")
    assert k8s_name("My.Model_v2") == "my-model-v2"


def test_histogram_quantile_like_prometheus() -> None:
    b = [(0.001, 10), (0.002, 60), (0.005, 95), (0.01, 99), (float("inf"), 100)]
    # rank 0.5 * 100 = 50 lies in (0.001, 0.002]: 0.001 + 0.001 * (50 - 10) / 50
    assert histogram_quantile(0.5, b) == pytest.approx(0.0018)
    # rank 99 reaches the 0.01 bucket exactly
    assert histogram_quantile(0.99, b) == pytest.approx(0.01)
    # in the +Inf bucket the highest finite bound is returned
    assert histogram_quantile(0.999, b) == pytest.approx(0.01)
    assert histogram_quantile(0.5, []) is None


EXPO = """# TYPE mlci_requests_total counter
mlci_requests_total{{variant="champion",version="1"}} {r0}
mlci_requests_total{{variant="challenger",version="2"}} {r1}
# TYPE mlci_errors_total counter
mlci_errors_total{{variant="challenger",version="2"}} {e1}
# TYPE mlci_feedback_total counter
mlci_feedback_total{{variant="champion"}} {r0}
mlci_feedback_total{{variant="challenger"}} {r1}
# TYPE mlci_feedback_correct_total counter
mlci_feedback_correct_total{{variant="champion"}} {c0}
mlci_feedback_correct_total{{variant="challenger"}} {c1}
# TYPE mlci_request_latency_seconds histogram
mlci_request_latency_seconds_bucket{{le="0.001",variant="challenger"}} {r1}
mlci_request_latency_seconds_bucket{{le="+Inf",variant="challenger"}} {r1}
mlci_request_latency_seconds_count{{variant="challenger"}} {r1}
mlci_request_latency_seconds_sum{{variant="challenger"}} 0.01
"""


def test_stats_from_metrics_use_increases_since_the_start() -> None:
    base = counters(EXPO.format(r0=1000, r1=50, e1=1, c0=900, c1=40))
    now = counters(EXPO.format(r0=1300, r1=150, e1=3, c0=1190, c1=135))
    s = stats_from_counters(now, base)["variants"]
    ch, cb = s["challenger"], s["champion"]
    assert (ch.requests, ch.errors, ch.labelled, ch.correct) == (100, 2, 100, 95)
    assert (cb.requests, cb.labelled, cb.correct) == (300, 300, 290)
    assert ch.p99() == pytest.approx(0.99)  # ms, interpolated in the first bucket
    # a gateway restart resets the counters: the new values count from zero
    reset = counters(EXPO.format(r0=20, r1=5, e1=0, c0=19, c1=5))
    assert stats_from_counters(reset, base)["variants"]["champion"].requests == 20
