"""`mlci canary run` end to end: a real gateway on 127.0.0.1, real digits models in a real
MLflow SQLite store, bounded traffic with labelled feedback, and the three outcomes.

The rollouts share one gateway and one store; each compares its challenger with whatever the
champion is at the time, so the outcomes do not depend on the order the tests run in.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from test_serve_support import (
    BROKEN,
    FAST,
    GOOD,
    WORSE,
    Gateway,
    Load,
    alias,
    audit_events,
    canary,
    project,
    state,
)

# timed: alone under xdist
pytestmark = [pytest.mark.e2e, pytest.mark.exclusive, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    root = project(tmp_path_factory.mktemp("canary") / "digits")
    gw = Gateway(root).start()
    yield root, gw
    gw.stop()


def _run(root: Path, gw: Gateway, version: str, *extra: str, seed: int = 0):
    with Load(gw.url, seed=seed) as load:
        r = canary(root, "run", "--version", version, "--gateway", gw.url, "--json", *FAST,
                   *extra)
    return r, json.loads(r.out.strip().splitlines()[-1]), load.result


def _checks(result: dict) -> dict[str, str]:
    return {c["check"]: c["verdict"] for c in result["checks"]}


def test_worse_challenger_is_rolled_back_on_quality_alone(live) -> None:
    root, gw = live
    champion = alias(root, "champion")
    r, res, _ = _run(root, gw, WORSE, seed=1)
    assert r.code == 1, r.err
    assert res["decision"] == "rolled-back"
    checks = _checks(res)
    assert checks["accuracy (non-inferiority)"] == "fail"
    # "on quality alone": no other check failed (an anytime-valid design may roll back
    # before the others are shown within their allowance, so they pass or still wait)
    assert checks["error rate"] != "fail" and checks["p95 latency (non-inferiority)"] != "fail"
    acc = [c for c in res["checks"] if c["check"].startswith("accuracy")][0]
    # shown worse than the allowance: the whole confidence bound of the loss contrast is > 0
    assert acc["test"]["design"] == "group-sequential" and acc["test"]["lower"] > 0, acc
    assert alias(root, "champion") == champion and alias(root, "challenger") is None
    assert gw.readyz()["challenger"] is None  # traffic back on the champion
    assert (root / ".mlci" / "canary" / "report.md").read_text().count("fail") >= 1


def test_erroring_challenger_is_rolled_back_on_error_rate(live) -> None:
    root, gw = live
    champion = alias(root, "champion")
    r, res, load = _run(root, gw, BROKEN, seed=2)
    assert r.code == 1, r.err
    assert _checks(res)["error rate"] == "fail"
    assert "error rate" in res["reason"]
    assert any(s.status == 500 and s.variant == "challenger" for s in load.sent)
    assert alias(root, "champion") == champion and alias(root, "challenger") is None


def test_shadowed_challenger_is_rolled_back_on_disagreement(live) -> None:
    """With --shadow the challenger also scores the champion's traffic; with a ceiling on
    disagreement it is rolled back on that alone (accuracy still waits for its samples)."""
    root, gw = live
    fast = [*FAST]
    fast[fast.index("--min-samples") + 1] = "100000"
    with Load(gw.url, seed=7):
        r = canary(root, "run", "--version", WORSE, "--gateway", gw.url, "--json", *fast,
                   "--shadow", "--max-disagreement", "0.2")
    assert r.code == 1, r.err
    res = json.loads(r.out.strip().splitlines()[-1])
    checks = _checks(res)
    assert checks["shadow disagreement"] == "fail"
    assert checks["accuracy (non-inferiority)"] == "wait"
    assert res["reason"].endswith("failed: shadow disagreement")


def test_good_challenger_is_promoted_through_every_step(live) -> None:
    root, gw = live
    before = alias(root, "champion")
    r, res, load = _run(root, gw, GOOD, seed=3)
    assert r.code == 0, r.err + r.out
    assert res["decision"] == "promoted" and res["champion"] == GOOD
    assert alias(root, "champion") == GOOD and alias(root, "challenger") is None
    st = state(root)
    # the last step with a champion share (50 %) promotes: 100 % has none to compare with
    assert [h["weight"] for h in st["history"]] == [10, 50]
    assert all(h["verdict"] == "pass" for h in st["history"])
    assert all(_checks(res)[c] == "pass" for c in ("error rate",
                                                     "p95 latency (non-inferiority)",
                                                     "accuracy (non-inferiority)"))
    # three weight changes and a version swap at runtime: not one request dropped
    assert load.sent and all(s.status == 200 for s in load.sent)


    # sticky: in the log, no key goes back from the challenger to the champion
    con = sqlite3.connect(root / ".mlci" / "predictions.db")
    rows = con.execute("SELECT route_key, variant FROM predictions WHERE canary_id = ? "
                       "ORDER BY ts", (st["id"],)).fetchall()
    con.close()
    seen: dict[str, str] = {}
    first: dict[str, str] = {}
    for key, variant in rows:
        assert not (seen.get(key) == "challenger" and variant == "champion"), key
        seen[key] = variant
        first.setdefault(key, variant)
    # at the first step (10%) about one key in ten went to the challenger, the rest stayed
    to_challenger = sum(v == "challenger" for v in first.values()) / len(first)
    assert len(first) >= 200 and 0.02 <= to_challenger <= 0.3, (len(first), to_challenger)
    # the gateway now serves the new champion only
    deadline = time.monotonic() + 10
    while gw.readyz()["champion"] != GOOD and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gw.readyz()["champion"] == GOOD
    # the audit trail shows the start, every step and the promotion with its evidence
    evs = [e for e in audit_events(root) if e.action == "canary"
           and st["id"] in (e.message or "") + (e.reason or "")]
    msgs = [(e.alias, e.message) for e in evs]
    assert any(a == "challenger" and "started" in m for a, m in msgs)
    assert sum(1 for a, m in msgs if a == "challenger" and "passed" in m) == 1  # 10 %; 50 %
    # is the promotion below
    promoted = [e for e in evs if e.message == "promoted"]
    assert len(promoted) == 1 and promoted[0].to_version == GOOD
    assert promoted[0].from_version == before and promoted[0].evidence_digest
    assert "non-inferiority" in promoted[0].reason and "bound" in promoted[0].reason


def test_kserve_backend_renders_each_step_and_judges_from_metrics(live, tmp_path) -> None:
    """--backend kserve: the champion rolled out alone, then an InferenceService per change
    (applied with `kubectl_double`, standing for kubectl and KServe, as no cluster runs
    here), judged from the gateway's /metrics."""
    import os

    import kubectl_double
    import yaml
    from conftest import run_mlci
    from test_serve_support import clean_env

    from mlci.serve.kserve import validate

    root, gw = live
    bindir = tmp_path / "bin"
    cluster = kubectl_double.install(bindir)
    env = clean_env(PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}",
                    KUBECTL_DOUBLE_STATE=str(cluster))
    with Load(gw.url, seed=6):
        r = run_mlci("canary", "run", "--version", WORSE, "--gateway", gw.url, "--json",
                     "--backend", "kserve", "--kserve-storage-uri",
                     "s3://models/digits/{version}", "--kserve-namespace", "ml", "--apply",
                     "--metrics-url", gw.url + "/metrics", *FAST, cwd=root, env=env,
                     timeout=180)
    assert r.code == 1, r.err
    res = json.loads(r.out.strip().splitlines()[-1])
    assert _checks(res)["accuracy (non-inferiority)"] == "fail"
    assert res["variants"]["challenger"]["p99_ms"] is not None  # from the histogram
    manifests = sorted((root / ".mlci" / "canary" / "kserve").glob("*.yaml"))
    docs = [yaml.safe_load(p.read_text()) for p in manifests]
    st = state(root)
    mine = [d for d in docs if d["metadata"]["annotations"]["mlci.dev/canary-id"] == st["id"]]
    for d in mine:
        validate(d)
    pcts = [d["spec"]["predictor"]["canaryTrafficPercent"] for d in mine]
    assert pcts[0] == 10 and pcts[-1] == 0
    assert {d["spec"]["predictor"]["model"]["storageUri"] for d in mine} == \
        {f"s3://models/digits/{WORSE}"}
    first, *applied = kubectl_double.applied(cluster)
    assert first["metadata"]["annotations"]["mlci.dev/status"] == "champion"
    assert applied == mine
