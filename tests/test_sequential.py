"""Error rates of the confidence-sequence design (`--design sequential`) and the watch, proved
by simulation: each rate is measured on simulated rollouts (the benchmark's own simulator,
fewer replications) and must stay below alpha by a one-sided binomial test at the 5% level,
whose limit a rate twice alpha exceeds with probability above 95% (checked in
`_at_most_alpha`); the previous design is shown to break it. The default group-sequential
design is proved in test_canary_stats.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import bench_module
from scipy import stats

from mlci.stats.decay import decay_test
from mlci.stats.sequential import FIXED, SEQUENTIAL, Arm, decide, halfwidth, mixture_u

ALPHA = 0.05
REPS = 400


B = bench_module("decisions")


def _at_most_alpha(rate: float, reps: int = REPS, level: float = ALPHA) -> bool:
    """Not rejected: 'the true rate is <= level' at the 5% level (binomial); the limit is
    tight enough that a true rate of twice the level passes with probability below 5%."""
    limit = stats.binom.ppf(0.95, reps, level)
    assert stats.binom.cdf(limit, reps, 2 * level) < 0.05, (reps, level)
    return round(rate * reps) <= limit


def _above_alpha(rate: float, reps: int = REPS) -> bool:
    """Shown: the true rate is > alpha at the 1% level."""
    return stats.binom.sf(round(rate * reps) - 1, reps, ALPHA) < 0.01


def test_mixture_boundary_solves_its_equation_and_crosses_rarely() -> None:
    from scipy.special import log_ndtr

    info = np.array([0.5, 10.0, 1e3, 1e6])
    u = mixture_u(info, ALPHA, 0.3)
    c = math.log(1 / ALPHA) + 0.5 * np.log1p(info * 0.09) - math.log(2)
    assert np.allclose(0.5 * u * u + log_ndtr(u), c, atol=1e-9)
    # a Gaussian random walk under the null crosses the one-sided boundary at most alpha
    rng = np.random.default_rng(1)
    walk = rng.normal(size=(2000, 3000)).cumsum(axis=1)
    t = np.arange(1, 3001)
    rho = 0.1
    crossed = (walk >= mixture_u(t, ALPHA, rho) * np.sqrt(t + 1 / rho ** 2)).any(axis=1)
    assert _at_most_alpha(crossed.mean(), 2000)


def test_fixed_halfwidth_is_the_z_bound() -> None:
    assert float(halfwidth(0.04, 0.05, design=FIXED)) == pytest.approx(
        stats.norm.ppf(0.95) * 0.2)


@pytest.mark.parametrize("poll", [5.0, 60.0])
def test_worse_by_the_margin_is_promoted_at_most_alpha_however_often_it_looks(poll) -> None:
    rng = np.random.default_rng(11)
    seq = B.rollout(B.Bernoulli(0.10, 0.02, 0.02, False, REPS), SEQUENTIAL, reps=REPS,
                    poll=poll, rng=rng)
    assert _at_most_alpha(seq.promote)
    err = B.rollout(B.Bernoulli(0.01, 0.01, 0.01, True, REPS), SEQUENTIAL, reps=REPS,
                    poll=poll, rng=rng)
    assert _at_most_alpha(err.promote)


def test_the_previous_design_promotes_worse_challengers_more_than_alpha() -> None:
    rng = np.random.default_rng(12)
    today = B.rollout(B.ErrorRateToday(0.01, 0.01, 0.01, True, REPS), "today", reps=REPS,
                      poll=5.0, rng=rng)
    assert _above_alpha(today.promote)


def test_identical_challenger_is_not_rolled_back_on_evidence() -> None:
    rng = np.random.default_rng(13)
    for chk in (B.Bernoulli(0.10, 0.0, 0.02, False, REPS),
                B.Bernoulli(0.01, 0.0, 0.01, True, REPS)):
        o = B.rollout(chk, SEQUENTIAL, reps=REPS, poll=5.0, rng=rng)
        assert _at_most_alpha(o.rollback), type(chk).__name__


def test_better_challenger_is_promoted_with_fewer_labels_than_the_fixed_design() -> None:
    rng = np.random.default_rng(15)
    n = B.planned_n(0.10, 0.02)
    fixed = B.rollout(B.Bernoulli(0.10, -0.02, 0.02, False, REPS), FIXED, reps=REPS, poll=5.0,
                      rng=rng, planned=n)
    seq = B.rollout(B.Bernoulli(0.10, -0.02, 0.02, False, REPS), SEQUENTIAL, reps=REPS,
                    poll=5.0, rng=rng)
    assert seq.promote >= 0.95 and fixed.promote >= 0.85
    assert seq.median_n < fixed.median_n


def test_sticky_routing_needs_cluster_robust_variance() -> None:
    rng = np.random.default_rng(16)
    naive = B.clustered(SEQUENTIAL, "iid", reps=REPS, rng=rng, delta=0.02)
    robust = B.clustered(SEQUENTIAL, "cluster", reps=REPS, rng=rng, delta=0.02)
    assert _above_alpha(naive) and _at_most_alpha(robust)


def test_watch_rolls_a_fine_champion_back_at_most_alpha_over_many_runs() -> None:
    rng = np.random.default_rng(17)
    seq, _ = B.watch(SEQUENTIAL, reps=REPS, looks=300, rng=rng, drop=0.02)
    today, _ = B.watch("today", reps=REPS, looks=300, rng=rng, drop=0.02)
    assert _at_most_alpha(seq) and _above_alpha(today)
    power, _ = B.watch(SEQUENTIAL, reps=REPS, looks=300, rng=rng, drop=0.06)
    assert power > 0.5


def test_watch_simulation_is_the_decay_test() -> None:
    """The benchmark's vectorised watch and `decay_test` give the same bound."""
    rng = np.random.default_rng(3)
    losses = (rng.random(700) < 0.13).astype(float)
    t = decay_test(losses, None, baseline=0.10, baseline_n=1000, margin=0.02, alpha=ALPHA,
                   binary=True, design=SEQUENTIAL)
    p1 = (losses.sum() + 0.5) / 701
    p0 = (100 + 0.5) / 1001
    lower = losses.mean() - 0.10 - 0.02 - halfwidth(p1 * (1 - p1) / 700, ALPHA / 2, rho=0.04) \
        - halfwidth(p0 * (1 - p0) / 1000, ALPHA / 2, design=FIXED)
    assert t["lower"] == pytest.approx(float(lower))


def test_cluster_variance_is_the_sandwich() -> None:
    rng = np.random.default_rng(4)
    keys = rng.integers(0, 30, 500).astype(str)
    x = rng.random(500)
    arm = Arm.of(x, keys)
    g = {k: x[keys == k] for k in np.unique(keys)}
    m = x.mean()
    sandwich = sum(((v - m).sum()) ** 2 for v in g.values()) / 500 ** 2 * 30 / 29
    assert float(arm.cluster_var()) == pytest.approx(sandwich)
    assert float(arm.iid_var()) == pytest.approx(x.var(ddof=1) / 500)


def test_decide_verdicts() -> None:
    def arm(k, n):
        return Arm(np.asarray(n), np.asarray(k), np.asarray(k))

    ok = decide(arm(250, 5000), arm(250, 5000), margin=0.02, alpha=ALPHA, binary=True)
    assert ok.verdict == "pass" and ok.upper < 0 < ok.upper + 0.02
    bad = decide(arm(600, 2000), arm(100, 2000), margin=0.02, alpha=ALPHA, binary=True)
    assert bad.verdict == "fail" and bad.lower > 0
    few = decide(arm(5, 50), arm(5, 50), margin=0.02, alpha=ALPHA, binary=True)
    assert few.verdict == "wait"
    # zero errors on both sides is not zero variance: a tiny sample cannot pass
    zero = decide(arm(0, 60), arm(0, 60), margin=0.01, alpha=ALPHA, binary=True)
    assert zero.verdict == "wait"
    fixed = decide(arm(5, 50), arm(5, 50), margin=0.02, alpha=ALPHA, binary=True, design=FIXED,
                   planned=50)
    assert fixed.verdict == "fail"  # the one look came and showed nothing: not promoted
