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
from mlci.stats.judge import Observations, Steps, analyse, latency_check

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


# ---------------------------------------------------------------- the group-sequential design


def _sim():
    from conftest import bench_module

    return bench_module("canary_sim")


SIM = _sim()


def _at_most(rate: float, reps: int, level: float, confidence: float = 0.95) -> bool:
    """Not rejected: 'the true rate is <= level', one-sided binomial at 1 - confidence; the
    limit is tight enough that a true rate of twice the level passes with probability below
    5%. (Rates near their level are measured with 99% confidence, on more replications.)"""
    from scipy import stats

    limit = stats.binom.ppf(confidence, reps, level)
    assert stats.binom.cdf(limit, reps, 2 * level) < 0.05, (reps, level)
    return round(rate * reps) <= limit


def _at_least(rate: float, reps: int, level: float) -> bool:
    """Not rejected: 'the true rate is >= level'; a failure share twice 1 - level is caught
    with probability above 95%."""
    return _at_most(1 - rate, reps, 1 - level, 0.99)


def test_identical_challenger_meets_the_targets_with_every_label_at_once() -> None:
    """20 requests/s, 30-minute deadlines, every request labelled at once: promoted >= 90%
    (measured 100%), never rolled back on evidence (<= alpha), about 43 minutes as planned."""
    r = SIM.simulate(SIM.Scenario(), 400, np.random.default_rng(31))
    assert _at_least(r.promoted, 400, 0.90) and r.promoted >= 0.97
    assert _at_most(r.evidence, 400, 0.05)
    assert r.plan["ok"] and 35 < r.plan["expected_seconds_to_promotion"] / 60 < 50
    assert 35 < np.median(r.minutes) < 55


def test_identical_challenger_meets_the_target_with_a_third_labelled_late() -> None:
    """30% of the requests labelled 10 minutes later: promoted >= 80% (measured 99.6%)."""
    r = SIM.simulate(SIM.Scenario(label_share=0.3, label_delay=600), 300,
                     np.random.default_rng(32))
    assert _at_least(r.promoted, 300, 0.80) and r.promoted >= 0.95
    assert _at_most(r.evidence, 300, 0.05)


@pytest.mark.parametrize("kw", [{"d_wrong": 0.02}, {"d_error": 0.01},
                                {"lat_scale": 1.5, "lat_shift": 2.0}],
                         ids=["accuracy", "error rate", "latency"])
def test_worse_by_the_allowance_is_promoted_at_most_alpha(kw) -> None:
    """Worse by exactly one allowance (the others identical), all checks looked at every 5 s
    over the whole rollout: promoted at most alpha (latency with a whole-ms timer: the
    symmetric tie rule)."""
    r = SIM.simulate(SIM.Scenario(**kw), 600, np.random.default_rng(33))
    assert _at_most(r.promoted, 600, 0.05, 0.99), r.promoted


def test_shared_drift_and_a_cold_start_roll_nothing_back() -> None:
    """Both arms drift (accuracy 0.94 -> 0.86, errors 0.5% -> 3% in 40 minutes); the steps are
    strata, so the drift cancels (pooled, it rolled an identical challenger back 15.7% / 8%).
    A 30-request cold start falls in the bake, which latency does not test (it rolled an
    identical challenger back 99.5%)."""
    rng = np.random.default_rng(34)
    drift = SIM.simulate(SIM.Scenario(wrong=0.06, wrong_end=0.14, error=0.005, error_end=0.03),
                         300, rng)
    assert _at_most(drift.by_check["quality"] + drift.by_check["error rate"], 300, 0.05)
    assert drift.promoted >= 0.95
    cold = SIM.simulate(SIM.Scenario(cold=30), 300, rng)
    assert _at_most(cold.by_check["latency"], 300, 0.05) and cold.promoted >= 0.95


def test_shadow_ceiling_rolls_back_on_evidence_only() -> None:
    """A true disagreement of 0.095 under a ceiling of 0.10 (rolled back 49.5% by the point
    rule): rolled back at most alpha/4; one of 0.15 is caught."""
    rng = np.random.default_rng(35)
    fail, _ = SIM.shadow_ceiling(0.10, 0.10, 2000, rng, ticks=400)
    assert _at_most(fail, 2000, 0.05 / 4)  # at the ceiling itself: fail at alpha / 4
    fail, ok = SIM.shadow_ceiling(0.15, 0.10, 200, rng, ticks=100)
    assert fail >= 0.99 and ok == 0


def test_preflight_plans_refuses_and_advises() -> None:
    from mlci.stats.canary_plan import Profile, preflight

    p = Params(steps=[5, 25, 50, 100])
    ok = preflight(p, Profile(rate=20.0))
    assert ok["ok"] and ok["power"] > 0.99 and ok["max_seconds"] == 3 * 1860
    slow = preflight(p, Profile(rate=2.0))
    assert not slow["ok"] and "--deadline" in slow["advice"]
    assert not preflight(Params(steps=[100]), Profile(rate=20.0))["ok"]
    # the plan's power against the simulated rate at 2 requests/s (refused: it is low)
    r = SIM.simulate(SIM.Scenario(rate=2.0), 200, np.random.default_rng(36))
    assert r.promoted < 0.9 and slow["power"] <= r.promoted + 0.05  # the plan is not rosy


def test_canary_plan_command(tmp_path) -> None:
    from click.testing import CliRunner

    from mlci.cli import cli

    base = ["canary", "plan", "--model", "m", "-c", str(tmp_path / "none.yaml"), "--out",
            str(tmp_path / ".mlci")]
    r = CliRunner().invoke(cli, [*base, "--traffic", "20"])
    assert r.exit_code == 0, r.output
    assert "identical challenger promoted: 100.0%" in r.output and "min" in r.output
    r = CliRunner().invoke(cli, [*base, "--traffic", "2", "--label-share", "0.3"])
    assert r.exit_code == 2 and "refused" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, base)
    assert r.exit_code == 2 and "give --traffic" in r.output


# ---------------------------------------------------------------- the judge's rules


def _timed(lat: np.ndarray, ts: np.ndarray) -> Observations:
    return Observations(version="1", errors=np.zeros(len(lat)), latency_ms=lat,
                        request_ts=ts, latency_ts=ts)


def test_latency_threshold_is_fixed_and_bakes_are_not_tested() -> None:
    """t comes from the champion's traffic before the rollout; the challenger's cold start
    (its first 30 requests, 40 ms) falls in the bake and is not tested; ties are symmetric:
    a challenger at exactly ratio x t + slack is not slow, as a champion at t is not."""
    rng = np.random.default_rng(41)
    steps = Steps([0.0], [50.0], bake=60.0)
    ts1, ts0 = np.linspace(0, 600, 2000), np.linspace(0, 600, 2000)
    champion = np.round(rng.lognormal(np.log(8), 0.35, 2000))
    same = np.round(rng.lognormal(np.log(8), 0.35, 2000))
    same[:30] = 40.0
    p = Params(steps=[50, 100], min_requests=50, latency_threshold_ms=14.0)
    c = latency_check(_timed(same, ts1), _timed(champion, ts0), p, 3, steps)
    assert c["verdict"] == PASS and c["threshold_ms"] == 14.0, c["detail"]
    assert c["test"]["n_challenger"] == int((ts1 >= 60).sum())
    # at the allowance exactly (1.5 x 14 + 2 = 23): both shares count "above", not "at"
    at = np.where(champion > 14, 23.5, 23.0)
    c = latency_check(_timed(at, ts1), _timed(champion, ts0), p, 3, steps)
    assert c["test"]["estimate"] == pytest.approx(0.0, abs=1e-12)
    # judged with the bake included, the cold start alone rolled it back
    p0 = Params(steps=[50, 100], min_requests=50, latency_threshold_ms=14.0, bake=0.0)
    c = latency_check(_timed(same[:300], ts1[:300]), _timed(champion[:600], ts0[:600]), p0, 3,
                      Steps([0.0], [50.0], bake=0.0))
    assert c["verdict"] == FAIL


def test_latency_threshold_without_prior_traffic_is_the_first_bake() -> None:
    rng = np.random.default_rng(42)
    ts = np.linspace(0, 600, 3000)
    champion = rng.lognormal(np.log(8), 0.35, 3000)
    p = Params(steps=[50, 100], min_requests=50)
    c = latency_check(_timed(champion.copy(), ts), _timed(champion, ts), p, 3,
                      Steps([0.0], [50.0], bake=60.0))
    cal = champion[ts < 60]
    assert c["threshold_ms"] == pytest.approx(np.quantile(cal, 0.95), abs=1e-3)
    assert c["test"]["n_champion"] == int((ts >= 60).sum())


def test_auto_quality_is_mae_for_a_regressor_whatever_its_labels() -> None:
    """Whole-number labels (counts) and a regressor 16x worse in MAE: `auto` judged accuracy
    before (exact matches are rare for both, so it passed); now MAE, and it fails."""
    rng = np.random.default_rng(43)
    y = rng.poisson(20, 3000).astype(int)

    def reg(noise: float, seed: int) -> Observations:
        r = np.random.default_rng(seed)
        return Observations(version="1", errors=np.zeros(3000), latency_ms=np.full(3000, 5.0),
                            predictions=list(y + r.normal(0, noise, 3000)), labels=list(y))

    p = Params(steps=[100], min_samples=100, min_requests=50, margin=0.1, latency_slack_ms=50)
    a = _judge(reg(8.0, 1), reg(0.5, 2), p)
    q = [c for c in a["checks"] if c["check"].startswith("mae")][0]
    assert q["verdict"] == FAIL
    # with the task from the config, MAE even when predictions are whole numbers too
    rounded = reg(8.0, 1)
    rounded.predictions = [round(v) for v in rounded.predictions]
    champion = reg(0.5, 2)
    champion.predictions = [round(v) for v in champion.predictions]
    a = _judge(rounded, champion, Params(**{**p.to_dict(), "task": "regression"}))
    assert _verdicts(a)["mae"] == FAIL
    assert "accuracy" in _verdicts(_judge(rounded, champion, p))  # no task: classes


def test_steps_are_strata_shared_drift_cancels() -> None:
    """Errors rise from 1% to 4% between two steps for both arms. Pooled, the challenger
    (mostly seen in the second step, at 50%) looks 1.8 points worse than the champion (mostly
    seen in the first, at 5%); within each step the two are the same."""
    n = 100_000
    ts = np.sort(np.random.default_rng(44).uniform(0, 2000, n))
    second = ts >= 1000
    arm = np.where(second, np.arange(n) % 2 == 0, np.arange(n) % 20 == 0)
    rate = np.where(second, 0.04, 0.01)
    errors = (np.random.default_rng(45).random(n) < rate).astype(float)
    ch = Observations(errors=errors[arm], request_ts=ts[arm], latency_ms=np.zeros(0))
    cb = Observations(errors=errors[~arm], request_ts=ts[~arm], latency_ms=np.zeros(0))
    p = Params(steps=[5, 50, 100], max_error_increase=0.01, min_requests=50)
    from mlci.stats.judge import error_check

    pooled = error_check(ch, cb, p, 3)
    strata = error_check(ch, cb, p, 3, Steps([0.0, 1000.0], [5.0, 50.0]))
    assert pooled["verdict"] == FAIL and pooled["test"]["estimate"] > 0.005
    assert strata["verdict"] == PASS and strata["test"]["strata"] == 2
    assert abs(strata["test"]["estimate"] + 0.01) < 0.004


def test_shown_checks_stay_shown_and_the_plan_ends_the_test() -> None:
    ok = {"labelled": 300, "wrong": 30}
    a = _judge(_obs(60, **ok), _obs(60, **ok))
    assert a["verdict"] == WAIT
    b = analyse(_obs(60, **ok), _obs(60, **ok), NO_SHADOW, P, now=0.0,
                shown=[c["check"] for c in a["checks"]])
    assert b["verdict"] == PASS and "earlier look" in b["checks"][0]["detail"]
    planned = Params(**{**P.to_dict(), "plan": {"n_max": {"requests": 10.0, "latency": 10.0,
                                                           "labels": 10.0}}})
    c = analyse(_obs(60, **ok), _obs(60, **ok), NO_SHADOW, planned, now=0.0)
    assert c["exhausted"] and all(x["test"]["final"] for x in c["checks"] if "test" in x)
