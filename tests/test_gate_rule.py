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
    (1 - confidence) / 2 of the time (a binomial bound over simulated golden sets)."""
    rng = np.random.default_rng(0)
    reps, n, allowed = 300, 300, 0.05
    fails = 0
    cfg = _Cfg("bound")
    cfg.gate = GateConfig(max_regression={"accuracy": allowed})
    for seed in range(reps):
        y = np.zeros(n, dtype=int)
        champ_ok = rng.random(n) < 0.95
        cand_ok = champ_ok & (rng.random(n) < 1 - allowed / 0.95)  # accuracy 0.90 exactly less
        champ = Predictions(y, np.where(champ_ok, 0, 1), None, [0, 1])
        cand = Predictions(y, np.where(cand_ok, 0, 1), None, [0, 1])
        cis = paired_bootstrap("classification", cand, champ, 400, 0.95, seed=seed)
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
