"""The KServe backend: manifests for both deployment modes validated against KServe's own CRD
schema (vendored) and webhook rules, the champion rolled out before any traffic moves (driven
through `kubectl_double`, which stands for kubectl against a cluster running KServe), and the
analysis read back from Prometheus metrics."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import kubectl_double
import pytest

from mlci.errors import MlciError
from mlci.serve.kserve import (
    KNATIVE,
    NAME_MAX,
    SCHEMA,
    STANDARD,
    KServeBackend,
    Kubectl,
    counters,
    histogram_quantile,
    k8s_name,
    render,
    render_champion,
    stats_from_counters,
    validate,
)
from mlci.serve.state import CanaryState

URI = "s3://models/digits/{version}"


def _st(**kw) -> CanaryState:
    base = dict(id="c-1", model="Digits_v", champion="1", challenger="2",
                steps=[10, 50, 100], weight=10)
    return CanaryState(**{**base, **kw})


# ---------------------------------------------------------------- the vendored schema


def test_vendored_schema_is_the_crd_recorded_in_its_readme() -> None:
    readme = (SCHEMA.parent / "README.md").read_text()
    recorded = re.search(r"this file sha256 \| `([0-9a-f]{64})`", readme).group(1)
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == recorded
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    spec = schema["properties"]["spec"]
    assert spec["required"] == ["predictor"]
    assert spec["properties"]["canary"]["items"]["required"] == ["predictor", "trafficPercent"]
    assert "canaryTrafficPercent" in spec["properties"]["predictor"]["properties"]


# ---------------------------------------------------------------- rendering


def test_knative_manifests_per_phase() -> None:
    m = render(_st(weight=50), URI, "ml")
    validate(m)
    assert m["metadata"]["name"] == "digits-v" and m["metadata"]["namespace"] == "ml"
    assert m["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    p = m["spec"]["predictor"]
    assert p["canaryTrafficPercent"] == 50 and "name" not in p  # a rename is a new ksvc
    assert p["model"] == {"modelFormat": {"name": "mlflow"}, "protocolVersion": "v2",
                          "storageUri": "s3://models/digits/2"}
    promoted = render(_st(status="promoted", champion="2", weight=100), URI)["spec"]
    assert "canaryTrafficPercent" not in promoted["predictor"]
    assert promoted["predictor"]["model"]["storageUri"].endswith("/2")
    rolled = render(_st(status="rolled-back", weight=0), URI)["spec"]["predictor"]
    assert rolled["canaryTrafficPercent"] == 0  # all traffic back on the previous revision
    champ = render_champion("Digits_v", "1", URI)["spec"]["predictor"]
    assert champ == {"labels": {"mlci.dev/version": "1"},
                     "model": {**p["model"], "storageUri": "s3://models/digits/1"}}
    assert p["labels"] == {"mlci.dev/version": "2"}  # the challenger's revision's pods
    for st in (_st(), _st(status="promoted"), _st(status="rolled-back")):
        validate(render(st, URI))


def test_standard_manifests_per_phase() -> None:
    m = render(_st(weight=10), URI, "ml", mode=STANDARD)
    validate(m)
    assert m["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    spec = m["spec"]
    assert spec["predictor"]["name"] == "v1"
    assert spec["predictor"]["model"]["storageUri"] == "s3://models/digits/1"
    assert "canaryTrafficPercent" not in spec["predictor"]  # Knative only
    (c,) = spec["canary"]
    assert c["trafficPercent"] == 10 and c["predictor"]["name"] == "v2"
    assert c["predictor"]["model"]["storageUri"] == "s3://models/digits/2"
    # required by the CRD (not by the API reference): the container name, KServe's default
    assert c["predictor"]["model"]["name"] == spec["predictor"]["model"]["name"] == \
        "kserve-container"
    promoted = render(_st(status="promoted", champion="2", weight=100), URI, mode=STANDARD)
    assert promoted["spec"] == {"predictor": {"name": "v2", "labels": {"mlci.dev/version": "2"},
                                              "model": c["predictor"]["model"]}}
    assert spec["predictor"]["labels"] == {"mlci.dev/version": "1"}
    assert c["predictor"]["labels"] == {"mlci.dev/version": "2"}
    rolled = render(_st(status="rolled-back", weight=0), URI, mode=STANDARD)
    assert rolled["spec"] == {"predictor": spec["predictor"]}
    kept = render(_st(), URI, mode=STANDARD, stable_name="prod")["spec"]["predictor"]
    assert kept["name"] == "prod"  # the live predictor's name is kept
    for st in (_st(), _st(status="promoted", champion="2"), _st(status="rolled-back")):
        validate(render(st, URI, mode=STANDARD))
    validate(render_champion("Digits_v", "1", URI, mode=STANDARD))


def _set(m: dict, path: tuple, value) -> dict:
    m = copy.deepcopy(m)
    d = m
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value
    return m


KN, STD = render(_st(), URI), render(_st(), URI, mode=STANDARD)


@pytest.mark.parametrize("m,msg", [
    (_set(KN, ("spec", "predictor", "canaryTrafficPercent"), "10"), "is not of type 'integer'"),
    (_set(KN, ("spec", "predictor", "canaryTrafficPercnt"), 10), "Additional properties"),
    (_set(KN, ("spec", "predictor", "model", "modelFormat"), {}), "'name' is a required"),
    (_set(KN, ("spec", "predictor", "model", "protocolVersion"), 2), "not of type 'string'"),
    (_set(KN, ("spec", "predictors"), {}), "Additional properties"),
    (_set(STD, ("spec", "canary", 0, "trafficPercent"), 120), "greater than the maximum"),
    (_set(STD, ("spec", "canary", 0, "weight"), 1), "Additional properties"),
    (_set(STD, ("spec", "canary", 0, "predictor", "name"), "V2"), "does not match"),
    (_set(KN, ("kind",), "Service"), "is not 'InferenceService'"),
    (_set(STD, ("spec", "canary", 0, "predictor", "model"),
          {k: v for k, v in STD["spec"]["canary"][0]["predictor"]["model"].items()
           if k != "name"}), "'name' is a required"),
], ids=["type", "typo", "required", "protocol", "unknown-spec", "maximum", "canary-typo",
        "predictor-name", "kind", "container-name"])
def test_the_crd_schema_rejects_wrong_manifests(m, msg) -> None:
    with pytest.raises(MlciError, match=msg):
        validate(m)


def test_required_keys_of_the_crd() -> None:
    m = copy.deepcopy(STD)
    del m["spec"]["canary"][0]["trafficPercent"]
    with pytest.raises(MlciError, match="'trafficPercent' is a required"):
        validate(m)
    del m["spec"]["predictor"]
    with pytest.raises(MlciError, match="'predictor' is a required"):
        validate(m)


@pytest.mark.parametrize("m,msg", [
    (_set(KN, ("metadata", "name"), "Bad_Name"), "does not match"),
    (_set(KN, ("metadata", "name"), "1digits"), "does not match"),  # DNS-1035: a letter first
    (_set(KN, ("metadata", "name"), "d" * 46), "longer than 45"),
    (_set(KN, ("metadata", "namespace"), "ML"), "not a Kubernetes namespace"),
    (_set(STD, ("metadata", "annotations", "serving.kserve.io/deploymentMode"),
          "RawDeployment"), "needs the annotation"),  # compared verbatim by the webhook
    (_set(STD, ("spec", "canary", 0, "predictor", "name"), "v1"), "its own predictor.name"),
    (_set(STD, ("spec", "canary"), STD["spec"]["canary"] * 2), "its own predictor.name"),
    (_set(STD, ("spec", "canary"), [
        STD["spec"]["canary"][0] | {"trafficPercent": 60},
        _set(STD["spec"]["canary"][0], ("predictor", "name"), "v3") | {"trafficPercent": 50}]),
     "more than 100"),
    (_set(STD, ("spec", "canary", 0, "predictor", "name"), "v" + "9" * 50), "longer than 63"),
], ids=["chars", "digit-first", "long", "namespace", "legacy-mode", "same-name", "duplicate",
        "sum", "service-name"])
def test_kserve_webhook_rules(m, msg) -> None:
    with pytest.raises(MlciError, match=msg):
        validate(m)


def test_names_valid_for_the_webhook() -> None:
    assert k8s_name("My.Model_v2") == "my-model-v2"
    assert k8s_name("2025 churn") == "m-2025-churn"
    with pytest.raises(MlciError):
        k8s_name("___")
    a, b = k8s_name("x" * 80 + "a"), k8s_name("x" * 80 + "b")
    assert len(a) == NAME_MAX and a != b and re.match(r"^[a-z]([-a-z0-9]*[a-z0-9])?$", a)
    for name in ("x" * 80, "Ünïcode modèl", "-a-", "a" * NAME_MAX):
        for mode in (KNATIVE, STANDARD):
            validate(render(_st(model=name, challenger="123456"), URI, mode=mode))
    with pytest.raises(MlciError, match="placeholder"):
        render(_st(), "s3://models/digits/latest")


def test_a_rename_without_a_new_model_is_refused_over_the_live_object() -> None:
    live = {"spec": render(_st(status="rolled-back"), URI, mode=STANDARD)["spec"],
            "status": {"deploymentMode": "RawDeployment"}}  # legacy name of Standard
    validate(STD, live)
    with pytest.raises(MlciError, match="predictor.name change"):
        validate(render(_st(), URI, mode=STANDARD, stable_name="prod"), live)
    with pytest.raises(MlciError, match="pass --kserve-mode standard"):
        validate(KN, live)


# ---------------------------------------------------------------- against a cluster


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    state = kubectl_double.install(tmp_path / "bin")
    monkeypatch.setenv("KUBECTL_DOUBLE_STATE", str(state))
    return SimpleNamespace(state=state, kubectl=Kubectl(str(tmp_path / "bin" / "kubectl")),
                           dir=tmp_path)


def _backend(cluster, mode: str, **kw) -> tuple[KServeBackend, list[str], list[float]]:
    lines: list[str] = []
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    ctl = SimpleNamespace(path=cluster.dir / "out" / "canary" / "state.json", name="Digits_v",
                          echo=lines.append)
    b = KServeBackend(ctl, storage_uri=URI, namespace="ml", mode=mode, apply=True,
                      kubectl=cluster.kubectl, clock=lambda: now[0], sleep=sleep, poll=5, **kw)
    return b, lines, now


def _live(cluster) -> dict:
    return json.loads(cluster.state.read_text())["ml/digits-v"]


def test_without_the_champion_first_knative_sends_everything_to_the_challenger(cluster) -> None:
    """What the double reproduces from KServe's reconciler: on a fresh InferenceService
    canaryTrafficPercent is ignored."""
    path = cluster.dir / "step.yaml"
    import yaml

    path.write_text(yaml.safe_dump(render(_st(), URI, "ml")))
    cluster.kubectl.apply(path)
    assert cluster.kubectl.get("digits-v", "ml")["status"]["components"]["predictor"][
        "traffic"] == [{"latestRevision": True, "percent": 100}]


def test_knative_rollout_rolls_the_champion_out_first(cluster, monkeypatch) -> None:
    monkeypatch.setenv("KUBECTL_DOUBLE_READY_AFTER", "3")
    b, lines, now = _backend(cluster, KNATIVE)
    b.before_start("1")
    assert now[0] == 15.0  # three polls until Ready, on the injected clock
    assert any("rolling out champion 1 alone first" in line for line in lines)
    rolled = _live(cluster)["status"]["components"]["predictor"]["latestRolledoutRevision"]
    for st in (_st(generation=1), _st(generation=3, weight=50),
               _st(generation=5, status="promoted", champion="2", weight=100)):
        b.on_state(st)
        b.on_state(st)  # a state write that changes nothing is not applied again
        if st.status == "running":
            traffic = cluster.kubectl.get("digits-v", "ml")["status"]["components"][
                "predictor"]["traffic"]
            assert traffic == [{"latestRevision": True, "percent": st.weight},
                               {"revisionName": rolled, "percent": 100 - st.weight,
                                "tag": "prev"}]
    done = []
    for m in kubectl_double.applied(cluster.state):
        p = m["spec"]["predictor"]
        done.append((p["model"]["storageUri"][-1], p.get("canaryTrafficPercent")))
    assert done == [("1", None), ("2", 10), ("2", 50), ("2", None)]
    copies = sorted(p.name for p in (cluster.dir / "out" / "canary" / "kserve").iterdir())
    assert copies == ["c-1-0001-running-10.yaml", "c-1-0003-running-50.yaml",
                      "c-1-0005-promoted-100.yaml", "champion-1.yaml"]
    # the next rollout finds its champion (2) serving and applies nothing first
    b2, lines2, _ = _backend(cluster, KNATIVE)
    b2.before_start("2")
    assert len(kubectl_double.applied(cluster.state)) == 4 and not lines2


def test_knative_champion_pinned_by_a_rollback_counts_as_serving(cluster) -> None:
    b, _, _ = _backend(cluster, KNATIVE)
    b.before_start("1")
    b.on_state(_st(generation=1))
    b.on_state(_st(generation=2, status="rolled-back", weight=0))
    n = len(kubectl_double.applied(cluster.state))
    _backend(cluster, KNATIVE)[0].before_start("1")
    assert len(kubectl_double.applied(cluster.state)) == n
    _backend(cluster, KNATIVE)[0].before_start("3")  # another champion: rolled out first
    assert kubectl_double.applied(cluster.state)[-1]["spec"]["predictor"]["model"][
        "storageUri"].endswith("/3")


def test_standard_rollout_uses_spec_canary(cluster) -> None:
    b, _, _ = _backend(cluster, STANDARD)
    b.before_start("1")
    b.on_state(_st(generation=1))
    live = _live(cluster)
    assert live["status"]["deploymentMode"] == "Standard"
    assert live["status"]["canaryStatuses"] == [{"name": "v2", "ready": True,
                                                 "trafficPercent": 10}]
    b.on_state(_st(generation=2, status="promoted", champion="2", weight=100))
    assert _live(cluster)["spec"]["predictor"]["name"] == "v2"
    assert _live(cluster)["status"]["canaryStatuses"] == []
    with pytest.raises(MlciError, match="runs in Standard mode.*--kserve-mode standard"):
        _backend(cluster, KNATIVE)[0].before_start("2")


def test_standard_keeps_the_name_of_a_live_predictor_serving_the_champion(cluster) -> None:
    import yaml

    path = cluster.dir / "theirs.yaml"
    theirs = render_champion("Digits_v", "1", URI, "ml", mode=STANDARD)
    del theirs["spec"]["predictor"]["name"]  # deployed by hand, default {name}-predictor
    path.write_text(yaml.safe_dump(theirs))
    cluster.kubectl.apply(path)
    b, _, _ = _backend(cluster, STANDARD)
    b.before_start("1")
    b.on_state(_st(generation=1))
    last = kubectl_double.applied(cluster.state)[-1]
    assert len(kubectl_double.applied(cluster.state)) == 2
    assert "name" not in last["spec"]["predictor"] and last["spec"]["canary"]


def test_champion_never_ready_stops_before_any_traffic_moves(cluster, monkeypatch) -> None:
    monkeypatch.setenv("KUBECTL_DOUBLE_READY_AFTER", "1000")
    b, _, now = _backend(cluster, KNATIVE, ready_timeout=60)
    with pytest.raises(MlciError, match="champion 1 not rolled out after 60s.*no traffic moved"):
        b.before_start("1")
    assert 60 <= now[0] <= 65
    assert len(kubectl_double.applied(cluster.state)) == 1  # the champion alone


def test_manifests_only_mode_writes_the_champion_first(tmp_path) -> None:
    lines: list[str] = []
    ctl = SimpleNamespace(path=tmp_path / "canary" / "state.json", name="Digits_v",
                          echo=lines.append)
    b = KServeBackend(ctl, storage_uri=URI, namespace=None)
    b.before_start("1")
    b.on_state(_st(generation=1))
    assert "champion-1.yaml and wait until it is Ready" in lines[0]
    assert sorted(p.name for p in (tmp_path / "canary" / "kserve").iterdir()) == \
        ["c-1-0001-running-10.yaml", "champion-1.yaml"]


def test_bad_backend_options() -> None:
    ctl = SimpleNamespace(path=Path("/nonexistent/canary/state.json"), name="m")
    for kw, msg in [({"storage_uri": None}, "needs --kserve-storage-uri"),
                    ({"storage_uri": "s3://m/latest"}, "placeholder"),
                    ({"storage_uri": URI, "namespace": "Bad_NS"}, "not a Kubernetes"),
                    ({"storage_uri": URI, "mode": "serverless"}, "--kserve-mode")]:
        with pytest.raises(MlciError, match=msg):
            KServeBackend(ctl, **{"namespace": None, **kw})


# ---------------------------------------------------------------- metrics


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


MLSERVER_TEXT = (Path(__file__).parent / "data" / "mlserver_metrics.txt").read_text()


def federated(text: str, **labels: str) -> str:
    """A target's exposition as Prometheus' /federate returns it: every sample with the
    target's labels added (the pod labelmap turns `mlci.dev/version` into
    `mlci_dev_version`)."""
    extra = ",".join(f'{k}="{v}"' for k, v in labels.items())
    lines = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            if "{" in line:
                name, _, rest = line.partition("{")
                line = f"{name}{{{extra},{rest}"
            else:
                name, _, value = line.partition(" ")
                line = f"{name}{{{extra}}} {value}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_the_judge_reads_mlservers_own_request_counters() -> None:
    """A real MLServer counted 4 successes and 1 failure: the judge reads them (issue 24:
    it parsed 0), per variant once Prometheus labels each pod's series with its version."""
    one_pod = counters(MLSERVER_TEXT)
    assert one_pod == {"mlserver_success||": 4.0, "mlserver_failure||": 1.0}
    # one pod's own endpoint cannot say which variant counted: one clear error, not a 0
    with pytest.raises(MlciError, match="no mlci_dev_version label"):
        stats_from_counters(one_pod, {}, {"champion": "1", "challenger": "2"})
    later = MLSERVER_TEXT.replace("success_total{model=\"digits\",version=\"None\"} 4.0",
                                  "success_total{model=\"digits\",version=\"None\"} 10.0")
    base = counters(federated(MLSERVER_TEXT, mlci_dev_version="1", pod="digits-predictor-1"))
    now = counters(federated(later, mlci_dev_version="1", pod="digits-predictor-1")
                   + federated(MLSERVER_TEXT, mlci_dev_version="2", pod="digits-predictor-2"))
    s = stats_from_counters(now, base, {"champion": "1", "challenger": "2"})["variants"]
    assert (s["champion"].requests, s["champion"].errors) == (6, 0)  # 10 - 4 at the start
    assert (s["challenger"].requests, s["challenger"].errors) == (5, 1)  # 4 ok + 1 failed
    assert s["challenger"].labelled == 0 and s["challenger"].p99_ms is None
    # the gateway's own series win when both are there (mlci serve in front of KServe)
    both = {**now, **counters(EXPO.format(r0=5, r1=5, e1=0, c0=5, c1=5))}
    assert stats_from_counters(both, {})["variants"]["champion"].requests == 5


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
