"""`gate.max_regression` decided on the confidence bound (default) or the point estimate, its
error rate by simulation, and the report's better/worse direction next to every delta."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mlci.config import GateConfig
from mlci.evaluate import _compare, gate_checks
from mlci.report.markdown import _direction, _metrics_section
from mlci.stats.metrics import Predictions, metrics_of, paired_bootstrap


class _Cfg:
    def __init__(self, rule: str) -> None:
        self.gate = GateConfig(max_regression={"accuracy": 0.01}, regression_rule=rule)


def _one_flipped_row() -> dict:
    # the Iris case: 30 golden rows, one row flipped, bootstrap CI [-0.100, 0.000]
    return _compare({"accuracy": 29 / 30}, {"accuracy": 1.0}, {"accuracy": (-0.1, 0.0)})


def test_bound_rule_passes_a_near_identical_model_the_point_rule_fails() -> None:
    comp = _one_flipped_row()
    (bound,) = gate_checks(_Cfg("bound"), {"accuracy": 29 / 30}, comp)
    (point,) = gate_checks(_Cfg("point"), {"accuracy": 29 / 30}, comp)
    assert bound["passed"] is True and bound["shown_worse_by"] == pytest.approx(0.0)
    assert point["passed"] is False and point["shown_worse_by"] == pytest.approx(1 / 30)


def test_bound_rule_fails_when_the_whole_interval_is_worse_than_the_allowance() -> None:
    comp = _compare({"mae": 1.3}, {"mae": 1.0}, {"mae": (0.12, 0.48)})
    cfg = _Cfg("bound")
    cfg.gate = GateConfig(max_regression={"mae": 0.1})
    (c,) = gate_checks(cfg, {"mae": 1.3}, comp)
    assert c["passed"] is False and c["shown_worse_by"] == pytest.approx(0.12)


def test_bound_rule_fails_a_candidate_at_the_allowance_rarely() -> None:
    """Candidate truly worse by exactly the allowance: the bound rule fails it at most about
    (1 - confidence) / 2 = 2.5 % of the time. 1,000 golden sets of 100 rows (100 bootstrap
    resamples each, to keep it cheap; the default 1,000 only steadies the interval's ends):
    a rule failing it 5 % of the time would pass this bound with probability about 5 %."""
    rng = np.random.default_rng(0)
    reps, n, allowed = 1000, 100, 0.05
    fails = 0
    cfg = _Cfg("bound")
    cfg.gate = GateConfig(max_regression={"accuracy": allowed})
    for seed in range(reps):
        y = np.zeros(n, dtype=int)
        champ_ok = rng.random(n) < 0.95
        cand_ok = champ_ok & (rng.random(n) < 1 - allowed / 0.95)  # accuracy 0.90 exactly less
        champ = Predictions(y, np.where(champ_ok, 0, 1), None, [0, 1])
        cand = Predictions(y, np.where(cand_ok, 0, 1), None, [0, 1])
        cis = paired_bootstrap("classification", cand, champ, 100, 0.95, seed=seed)
        comp = _compare(metrics_of("classification", cand), metrics_of("classification", champ),
                        cis)
        (c,) = gate_checks(cfg, metrics_of("classification", cand), comp)
        fails += c["passed"] is False
    # true worse_by = allowed: failing it is a type I error, nominal 0.025
    assert fails <= stats.binom.ppf(0.99, reps, 0.025), fails


def test_report_shows_the_direction_next_to_every_delta() -> None:
    assert _direction("accuracy", -0.03) == " (worse)"
    assert _direction("mae", -0.03) == " (better)"
    assert _direction("log_loss", 0.2) == " (worse)"
    assert _direction("r2", 0.0) == " (same)"
    e = {"metrics": {"accuracy": 29 / 30, "log_loss": 0.2},
         "comparison": {"accuracy": {"champion": 1.0, "delta": -1 / 30, "ci": [-0.1, 0.0]},
                        "log_loss": {"champion": 0.3, "delta": -0.1, "ci": None}},
         "confidence": 0.95}
    lines = [ln.replace("\\_", "_") for ln in _metrics_section(e)]  # names are escaped text
    rows = [ln for ln in lines if ln.startswith(("| accuracy", "| log_loss"))]
    assert "(worse)" in rows[0] and "(better)" in rows[1]


def test_a_pass_over_a_broken_point_estimate_carries_a_warning_naming_the_rule() -> None:
    """The Iris case under `regression_rule: bound`: worse by 1/30 > 0.01 but the interval
    reaches 0, so the check passes; the report must not show a bare ✅ over it."""
    from mlci.report.markdown import _gate_section, verdict_of

    comp = _one_flipped_row()
    (c,) = gate_checks(_Cfg("bound"), {"accuracy": 29 / 30}, comp)
    assert c["passed"] is True and c["point_breaks"] is True
    assert c["shown_worse_by"] == 0.0 and str(c["shown_worse_by"]) == "0.0"  # not -0.0
    e = {"checks": [c], "verdict": "pass", "failed": []}
    (row,) = [ln.replace("\\_", "_") for ln in _gate_section(e, 10)  # escaped text
              if ln.startswith("| accuracy")]
    assert "✅ pass ⚠" in row and "regression_rule: bound" in row and "-0.0000" not in row
    verdict, why = verdict_of(None, {}, e)
    assert verdict == "pass" and "⚠" in why and "regression_rule: bound" in why
    (p,) = gate_checks(_Cfg("point"), {"accuracy": 29 / 30}, comp)
    assert p["point_breaks"] is False  # the point rule fails it instead


def test_small_golden_sets_state_their_power_and_warn() -> None:
    """30 rows cannot catch a drop of twice a 0.01 allowance: the check says what it can
    detect and the report warns; a large golden set does not warn."""
    from mlci.report.markdown import _gate_section

    (small,) = gate_checks(_Cfg("bound"), {"accuracy": 29 / 30}, _one_flipped_row())
    assert small["underpowered"] is True and small["detectable"] > 0.05
    text = "\n".join(_gate_section({"checks": [small]}, 10))
    assert "golden set too small" in text and "with 80% power" in text
    big = _compare({"accuracy": 0.95}, {"accuracy": 0.95}, {"accuracy": (-0.004, 0.004)})
    (c,) = gate_checks(_Cfg("bound"), {"accuracy": 0.95}, big)
    assert c["underpowered"] is False and 0.01 < c["detectable"] < 0.02


def _gate_fail_rate(drop: float, *, reps: int, n: int, allowed: float, seed: int
                    ) -> tuple[float, float]:
    """(share of golden sets on which the bound rule fails a candidate truly worse by `drop`,
    median stated detectable drop)."""
    rng = np.random.default_rng(seed)
    cfg = _Cfg("bound")
    cfg.gate = GateConfig(max_regression={"accuracy": allowed})
    fails, stated = 0, []
    for r in range(reps):
        y = np.zeros(n, dtype=int)
        champ_ok = rng.random(n) < 0.95
        cand_ok = champ_ok & (rng.random(n) < 1 - drop / 0.95)
        champ = Predictions(y, np.where(champ_ok, 0, 1), None, [0, 1])
        cand = Predictions(y, np.where(cand_ok, 0, 1), None, [0, 1])
        cis = paired_bootstrap("classification", cand, champ, 200, 0.95, seed=r)
        m = metrics_of("classification", cand)
        (c,) = gate_checks(cfg, m, _compare(m, metrics_of("classification", champ), cis))
        fails += c["passed"] is False
        stated.append(c["detectable"])
    return fails / reps, float(np.median(stated))


def test_the_stated_detectable_drop_is_caught_about_80_percent_of_the_time() -> None:
    _, stated = _gate_fail_rate(0.06, reps=100, n=300, allowed=0.02, seed=1)
    rate, _ = _gate_fail_rate(stated, reps=300, n=300, allowed=0.02, seed=2)
    # 300 golden sets: sd of the rate 0.023; 0.8 +- 0.1 is more than 4 sd either way
    assert 0.7 <= rate <= 0.9, (stated, rate)
