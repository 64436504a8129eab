"""The canary's statistics against scipy, its level and power by simulation, and the
judgement rules on hand-made stats."""

from __future__ import annotations

import math
import random

import pytest
from mlci.canary import (
    FAIL,
    PASS,
    WAIT,
    Params,
    analyse,
    non_inferiority,
    norm_cdf,
    norm_ppf,
    parse_steps,
    wilson,
)
from scipy import stats

from mlci.errors import MlciError
from mlci.serve.predlog import VariantStats, percentile
from mlci.serve.routing import Routing, bucket


@pytest.mark.parametrize("z", [-8.0, -3.1, -1.64, -0.5, 0.0, 0.3, 1.96, 4.2])
def test_norm_cdf_matches_scipy(z: float) -> None:
    assert norm_cdf(z) == pytest.approx(stats.norm.cdf(z), abs=1e-14, rel=1e-12)


@pytest.mark.parametrize("p", [1e-10, 0.001, 0.0249, 0.05, 0.3, 0.5, 0.9, 0.975, 0.99999])
def test_norm_ppf_matches_scipy(p: float) -> None:
    assert norm_ppf(p) == pytest.approx(stats.norm.ppf(p), abs=1e-9)


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (57, 60), (180, 200), (1, 1000)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
    lo, hi = wilson(k, n, 0.95)
    assert (lo, hi) == (pytest.approx(ci.low, abs=1e-9), pytest.approx(ci.high, abs=1e-9))


@pytest.mark.parametrize("x1,n1,x0,n0,m", [(57, 60, 58, 60, 0.1), (29, 60, 655, 678, 0.1),
                                           (190, 200, 188, 200, 0.02), (60, 60, 60, 60, 0.05),
                                           (450, 500, 470, 500, 0.03)])
def test_non_inferiority_against_scipy_reference(x1, n1, x0, n0, m) -> None:
    # Agresti-Caffo: one success and one failure added to each arm, then a Wald z
    p1, p0 = (x1 + 1) / (n1 + 2), (x0 + 1) / (n0 + 2)
    se = math.sqrt(p1 * (1 - p1) / (n1 + 2) + p0 * (1 - p0) / (n0 + 2))
    z = (p1 - p0 + m) / se
    t = non_inferiority(x1, n1, x0, n0, m, 0.05)
    assert t.z == pytest.approx(z, rel=1e-12)
    assert t.p_value == pytest.approx(stats.norm.sf(z), abs=1e-12)
    assert t.p_inferior == pytest.approx(stats.norm.cdf(z), abs=1e-12)
    assert t.lower == pytest.approx(p1 - p0 - stats.norm.ppf(0.95) * se, abs=1e-9)
    # the test and the confidence bound agree: pass exactly when the bound clears -margin
    assert (t.verdict == PASS) == (t.lower > -m)


def test_non_inferiority_verdicts() -> None:
    assert non_inferiority(57, 60, 58, 60, 0.1).verdict == PASS      # equal, wide margin
    assert non_inferiority(29, 60, 655, 678, 0.1).verdict == FAIL    # much worse
    assert non_inferiority(55, 60, 57, 60, 0.02).verdict == WAIT     # too close to call
    assert non_inferiority(60, 60, 60, 60, 0.05).verdict == PASS     # perfect arms: finite z
    with pytest.raises(ValueError):
        non_inferiority(5, 0, 3, 10, 0.1)
    with pytest.raises(ValueError):
        non_inferiority(11, 10, 3, 10, 0.1)


def _rate(p1: float, p0: float, n: int, m: float, sims: int, verdict: str) -> float:
    rng = random.Random(7)
    hits = 0
    for _ in range(sims):
        x1 = sum(rng.random() < p1 for _ in range(n))
        x0 = sum(rng.random() < p0 for _ in range(n))
        hits += non_inferiority(x1, n, x0, n, m, 0.05).verdict == verdict
    return hits / sims


def test_level_at_the_margin_and_power_by_simulation() -> None:
    # true difference exactly -margin: "pass" is a type I error, at most about alpha
    assert _rate(0.80, 0.90, 200, 0.10, 3000, PASS) <= 0.05 + 3 * math.sqrt(.05 * .95 / 3000)
    # equal accuracies: the power matches the normal approximation's
    se = math.sqrt(2 * 0.95 * 0.05 / 200)
    power = stats.norm.sf(stats.norm.ppf(0.95) - 0.05 / se)
    assert _rate(0.95, 0.95, 200, 0.05, 1000, PASS) == pytest.approx(power, abs=0.05)
    # a challenger 30 points worse is declared worse nearly always
    assert _rate(0.65, 0.95, 100, 0.05, 500, FAIL) > 0.99


def _stats(ch: VariantStats, cb: VariantStats, shadow=None) -> dict:
    return {"variants": {"challenger": ch, "champion": cb},
            "shadow": shadow or {"compared": 0, "disagreements": 0, "errors": 0}}


def _v(variant, requests, errors=0, latency=1.0, labelled=0, correct=0) -> VariantStats:
    return VariantStats(variant, "1", requests, errors, [latency] * (requests - errors),
                        labelled, correct)


P = Params(steps=[10, 100], min_samples=100, min_requests=20, margin=0.05)


def test_analyse_waits_below_minimums_and_judges_above() -> None:
    a = analyse(_stats(_v("challenger", 10), _v("champion", 100)), P)
    assert a["verdict"] == WAIT and "error rate" in a["summary"]
    a = analyse(_stats(_v("challenger", 50, labelled=50, correct=49),
                       _v("champion", 500, labelled=500, correct=480)), P)
    assert a["verdict"] == WAIT and a["summary"] == "waiting for: accuracy (non-inferiority)"
    a = analyse(_stats(_v("challenger", 300, labelled=300, correct=290),
                       _v("champion", 500, labelled=500, correct=480)), P)
    assert a["verdict"] == PASS


def test_analyse_fails_on_errors_latency_and_disagreement() -> None:
    ok = dict(labelled=300, correct=290)
    a = analyse(_stats(_v("challenger", 300, errors=30, **ok), _v("champion", 500, **ok)), P)
    assert a["verdict"] == FAIL and a["summary"] == "failed: error rate"
    a = analyse(_stats(_v("challenger", 300, latency=20.0, **ok),
                       _v("champion", 500, latency=2.0, **ok)), P)
    assert a["verdict"] == FAIL and a["summary"] == "failed: p99 latency"
    shadow = {"compared": 400, "disagreements": 200, "errors": 0}
    a = analyse(_stats(_v("challenger", 300, **ok), _v("champion", 500, **ok), shadow), P)
    assert a["verdict"] == PASS  # reported only without a ceiling
    p = Params(**{**P.to_dict(), "max_disagreement": 0.2})
    a = analyse(_stats(_v("challenger", 300, **ok), _v("champion", 500, **ok), shadow), p)
    assert a["verdict"] == FAIL and "shadow disagreement" in a["summary"]


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
