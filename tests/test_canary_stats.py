"""The canary's judge on hand-made observations: waits below the minimums, passes and fails
each check by its rule, clusters by routing key, and the step and routing rules. The error
rates of its tests are proved by simulation in test_sequential.py."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mlci.errors import MlciError
from mlci.flows.canary import FAIL, PASS, WAIT, Params, parse_steps
from mlci.serve.predlog import percentile
from mlci.serve.routing import Routing, bucket
from mlci.stats.judge import Observations, analyse, latency_check

NO_SHADOW = {"compared": 0, "disagreements": 0, "errors": 0}
P = Params(steps=[10, 100], min_samples=100, min_requests=20, margin=0.05)


def _obs(requests: int, *, errors: int = 0, latency: float = 5.0, labelled: int = 0,
         wrong: int = 0, seed: int = 0, keys: int | None = None) -> Observations:
    rng = np.random.default_rng(seed)
    answered = requests - errors
    lat = rng.lognormal(np.log(latency), 0.3, answered)
    req_keys = None if keys is None else np.array([f"k{i % keys}" for i in range(requests)])
    preds = ["a"] * labelled
    labels = ["b"] * wrong + ["a"] * (labelled - wrong)
    return Observations(version="1", errors=np.r_[np.ones(errors), np.zeros(answered)],
                        request_keys=req_keys, latency_ms=lat,
                        latency_keys=None if req_keys is None else req_keys[errors:],
                        predictions=preds, labels=labels,
                        label_keys=None if req_keys is None else req_keys[:labelled])


def _judge(ch: Observations, cb: Observations, p: Params = P, shadow=None) -> dict:
    return analyse(ch, cb, shadow or NO_SHADOW, p, now=0.0)


def _verdicts(a: dict) -> dict[str, str]:
    return {c["check"].split(" ")[0]: c["verdict"] for c in a["checks"]}


def test_waits_below_minimums_and_passes_a_clearly_fine_challenger() -> None:
    a = _judge(_obs(10), _obs(100))
    assert a["verdict"] == WAIT and "error rate" in a["summary"]
    a = _judge(_obs(3000, labelled=50, wrong=2), _obs(3000, labelled=500, wrong=20))
    assert a["verdict"] == WAIT and a["summary"] == "waiting for: accuracy (non-inferiority)"
    a = _judge(_obs(3000, labelled=3000, wrong=30, seed=1),
               _obs(3000, labelled=3000, wrong=40, seed=2))
    assert a["verdict"] == PASS, a["summary"]
    assert all("higher is" in c["detail"] for c in a["checks"])  # direction next to deltas


def test_fails_on_errors_latency_and_disagreement() -> None:
    ok = {"labelled": 3000, "wrong": 30}
    a = _judge(_obs(3000, errors=300, **ok), _obs(3000, **ok))
    assert a["verdict"] == FAIL and a["summary"] == "failed: error rate"
    a = _judge(_obs(3000, latency=40.0, **ok), _obs(3000, latency=5.0, **ok))
    assert a["verdict"] == FAIL and a["summary"] == "failed: p95 latency (non-inferiority)"
    shadow = {"compared": 400, "disagreements": 200, "errors": 0}
    fine = (_obs(3000, seed=3, **ok), _obs(3000, seed=4, **ok))
    assert _judge(*fine, shadow=shadow)["verdict"] == PASS  # reported only without a ceiling
    p = Params(**{**P.to_dict(), "max_disagreement": 0.2})
    a = _judge(*fine, p, shadow)
    assert a["verdict"] == FAIL and "shadow disagreement" in a["summary"]


def test_latency_allows_the_minimum_effect_size() -> None:
    """A challenger 20% slower passes under the default 1.5x + 2 ms allowance; one 3x slower
    fails; the same challenger passes whatever the absolute level."""
    ok = {"labelled": 3000, "wrong": 30}
    p = Params(steps=[100], min_samples=100, min_requests=50, margin=0.05)
    assert _verdicts(_judge(_obs(3000, latency=6.0, seed=5, **ok),
                            _obs(3000, latency=5.0, seed=6, **ok), p))["p95"] == PASS
    assert _verdicts(_judge(_obs(3000, latency=15.0, **ok), _obs(3000, latency=5.0, **ok),
                            p))["p95"] == FAIL


def _latencies(lat: np.ndarray) -> Observations:
    return Observations(version="1", errors=np.zeros(len(lat)), latency_ms=lat)


def test_latency_threshold_is_not_set_by_a_slow_start() -> None:
    """The champion's first 50 answered requests are slow (2 ms: the gateway loading the
    challenger), the rest take 0.3-0.6 ms. Calibrated on those 50, t was 2 ms, which no later
    champion request reaches, so both shares were 0 and an identical challenger waited
    whatever the traffic. Calibrated on every other request, t is the rollout's p95 and the
    challenger passes."""
    rng = np.random.default_rng(21)
    champion = np.r_[np.full(50, 2.0), rng.uniform(0.3, 0.6, 3950)]
    assert not (champion[50:] >= np.quantile(champion[:50], 0.95)).any()  # the old t
    same = np.r_[np.full(3, 2.0), rng.uniform(0.3, 0.6, 1997)]
    p = Params(steps=[100], min_samples=100, min_requests=50)
    c = latency_check(_latencies(same), _latencies(champion), p, 3)
    assert c["verdict"] == PASS, c["detail"]
    assert c["threshold_ms"] == pytest.approx(np.quantile(champion[0::2], 0.95), abs=1e-3)
    assert 0.55 < c["threshold_ms"] < 0.6 and c["calibration_n"] == 2000
    assert "every other" in c["detail"] and "slower than" in c["detail"]


def test_latency_after_a_slow_start_still_fails_a_slower_challenger() -> None:
    rng = np.random.default_rng(22)
    champion = np.r_[np.full(50, 2.0), rng.uniform(0.3, 0.6, 3950)]
    slower = np.r_[np.full(3, 2.0), rng.uniform(1.5, 4.0, 1997)]  # p95 3.9 > 1.5 x 0.59 + 2
    p = Params(steps=[100], min_samples=100, min_requests=50)
    c = latency_check(_latencies(slower), _latencies(champion), p, 3)
    assert c["verdict"] == FAIL, c["detail"]
    assert c["limit_ms"] == pytest.approx(1.5 * c["threshold_ms"] + 2, abs=2e-3)


def test_latency_tests_the_other_half_with_its_routing_keys() -> None:
    """Routing keys go with their requests into the tested half (clustered variance, arrays
    aligned)."""
    rng = np.random.default_rng(23)
    champion = rng.uniform(0.3, 0.6, 4000)
    keys = np.array([f"k{i % 40}" for i in range(4000)], dtype=object)
    ch = Observations(errors=np.zeros(2000), latency_ms=rng.uniform(0.3, 0.6, 2000),
                      latency_keys=np.array([f"c{i % 40}" for i in range(2000)], dtype=object))
    cb = Observations(errors=np.zeros(4000), latency_ms=champion, latency_keys=keys)
    p = Params(steps=[100], min_samples=100, min_requests=50)
    c = latency_check(ch, cb, p, 3)
    assert c["test"]["clustered"] and c["test"]["n_champion"] == 2000
    assert c["verdict"] == PASS


def test_regression_quality_is_mae_non_inferiority() -> None:
    rng = np.random.default_rng(9)
    y = rng.normal(0, 1, 4000)

    def reg(noise: float, seed: int) -> Observations:
        r = np.random.default_rng(seed)
        return Observations(version="1", errors=np.zeros(4000), latency_ms=np.full(4000, 5.0),
                            predictions=list(y + r.normal(0, noise, 4000)), labels=list(y))

    p = Params(steps=[100], min_samples=100, min_requests=50, margin=0.1, latency_slack_ms=50)
    same = _judge(reg(0.5, 1), reg(0.5, 2), p)
    q = [c for c in same["checks"] if c["check"].startswith("mae")][0]
    assert q["metric"] == "mae" and q["verdict"] == PASS and "lower is better" in q["detail"]
    worse = _judge(reg(0.8, 1), reg(0.5, 2), p)
    assert _verdicts(worse)["mae"] == FAIL


def test_sticky_keys_widen_the_bounds() -> None:
    """The same counts with 20 routing keys instead of independent requests: the clustered
    bound is wider, so an error rate that passes unclustered waits."""
    rng = np.random.default_rng(2)

    def obs(keys):
        e = np.zeros(3000)
        # errors concentrated on a few keys: correlated within a key
        k = np.array([f"k{i % 20}" for i in range(3000)]) if keys else None
        e[(np.arange(3000) % 20) < 2] = rng.random(300) < 0.3
        return Observations(version="1", errors=e, request_keys=k,
                            latency_ms=np.full(3000, 5.0))

    p = Params(steps=[100], min_samples=10_000, min_requests=50, max_error_increase=0.02)
    iid = [c for c in _judge(obs(False), obs(False), p)["checks"] if c["check"] == "error rate"]
    clu = [c for c in _judge(obs(True), obs(True), p)["checks"] if c["check"] == "error rate"]
    assert clu[0]["test"]["clustered"] and not iid[0]["test"]["clustered"]
    assert clu[0]["test"]["upper"] > iid[0]["test"]["upper"]


def test_percentile_matches_numpy() -> None:
    import numpy as np

    xs = [random.Random(i).random() * 10 for i in range(257)]
    for q in (50, 90, 99, 100):
        assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))


@pytest.mark.parametrize("text", ["", "50,10,100", "0,100", "10,50", "10,x,100", "10,150"])
def test_parse_steps_rejects(text: str) -> None:
    with pytest.raises(MlciError):
        parse_steps(text)


def test_sticky_routing_is_stable_and_monotone() -> None:
    keys = [f"user-{i}" for i in range(2000)]
    at = {w: {k: Routing("1", "2", w, canary_id="c-x").choose(k) for k in keys}
          for w in (5, 25, 50, 100)}
    for w, chosen in at.items():  # the same key always gets the same answer
        assert all(Routing("1", "2", w, canary_id="c-x").choose(k) == v
                   for k, v in list(chosen.items())[:200])
        share = sum(v == "challenger" for v in chosen.values()) / len(keys)
        assert share == pytest.approx(w / 100, abs=0.04)
    for lo, hi in ((5, 25), (25, 50), (50, 100)):  # a challenger key stays a challenger key
        assert all(at[hi][k] == "challenger" for k in keys if at[lo][k] == "challenger")
    # another rollout reshuffles who goes first
    assert bucket("c-x", "user-1") != bucket("c-y", "user-1") or \
        bucket("c-x", "user-2") != bucket("c-y", "user-2")
