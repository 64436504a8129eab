"""Anytime-valid comparisons of two arms' mean losses: confidence sequences that may be looked
at after every request, and the fixed-sample test they replace.

Each check of a rollout compares per-unit *losses* (1 for an error, a wrong answer or a slow
request, the absolute error of a regression) of the challenger (arm 1) and the champion
(arm 0) through the contrast

    theta = mean1 - scale * mean0 - margin        (worse is positive)

so `margin` is an absolute allowance (scale 1) and `scale = 1 + r` a relative one (the
challenger's MAE may be at most (1 + r) times the champion's). A check *passes* when the upper
bound of theta is below 0 (the challenger is shown not worse than the allowance) and *fails*
when the lower bound is above 0 (shown worse by more than the allowance).

Sequential design: the bounds are a one-sided normal-mixture confidence sequence (Robbins'
method of mixtures; Howard, Ramdas, McAuliffe & Sekhon 2021, "Time-uniform, nonparametric,
nonasymptotic confidence sequences", Annals of Statistics 49(2); the mixture SPRT of Johari,
Koomen, Pekelis & Walsh 2017/2022, "Always valid inference", Operations Research 70(3)). With
V the variance of the estimate and I = 1/V its information, the martingale

    M = 2 / sqrt(1 + I rho^2) * Phi(W / sqrt(I + rho^-2)) * exp(W^2 / (2 (I + rho^-2))),
    W = (estimate - theta) * I,

is a nonnegative supermartingale under theta, so by Ville's inequality it ever exceeds 1/alpha
with probability at most alpha, at whatever looks and stopping times. The bound is where it
does: theta +- u * sqrt(V * (1 + V / rho^2)), with u solving
u^2 / 2 + log Phi(u) = log(1 / alpha) + log(1 + I rho^2) / 2 - log 2. The mixing scale rho is the
effect the test is tuned to detect soonest. The variance is estimated (a plug-in, as in Johari
et al. and the asymptotic confidence sequences of Waudby-Smith et al. 2021); the simulations in
`bench/decisions.py` and tests/test_sequential.py measure the resulting error rates.

Group-sequential design (`group-sequential`, the canary's default): a rollout with a deadline
has a maximum sample, so the pass bound spends alpha over the information fraction
f = n_eff / n_max (n_eff: the effective two-arm size, sum over strata of n1 n0 / (n1 + n0);
n_max: its planned value at the deadline) with the O'Brien-Fleming-type spending function of
Lan & DeMets (1983, "Discrete sequential boundaries for clinical trials", Biometrika 70(3)),
alpha(f) = 2 - 2 Phi(z_{alpha/2} / sqrt(f)). That function is exactly the probability that a
Brownian motion crosses the flat boundary z_{alpha/2} in the score scale before time f, so the
boundary Z <= -z_{alpha/2} / sqrt(f) is valid however often and whenever it is looked at
(discrete looks only lower the crossing probability), and no recursive integration is needed.
The test ends at f = 1 (the planned maximum), where its half-width is z_{alpha/2} se (1.23x
the sample of a one-look test at 90 % power, against ~3x for the confidence sequence). The
fail bound stays the confidence sequence at alpha_fail (anytime-valid, no plan needed, and
tighter early, when a bad challenger should be caught at a small share).

Stratified contrast: with data from several ramp steps (different shares and different
moments), each step is a stratum: theta is estimated within each stratum, where both arms
served at the same time, and combined with weights h_s = n1_s n0_s / (n1_s + n0_s). Drift that
both arms share (traffic mix, load, label quality) cancels within a stratum; pooling across
steps would compare a challenger seen mostly late with a champion seen mostly early.

Fixed-sample design: one z-test when both arms reach the planned size.

Variance: rates use a binomial variance with half a success and half a failure added, taken
at the null boundary (the challenger's rate between its estimate and the champion's plus the
margin, whichever is nearer 1/2), so a run of zero errors cannot claim zero variance. With
sticky routing the randomised unit is the routing key, not the request: each arm's variance is
the cluster-robust (CR1) sandwich over keys, and for rates it is never below the binomial one.

Every function takes numpy arrays (any shape, broadcast together) so the benchmark runs
thousands of rollouts at once with the same code as the gateway's judge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PASS, FAIL, WAIT = "pass", "fail", "wait"
SEQUENTIAL, FIXED, GROUP = "sequential", "fixed", "group-sequential"
DESIGNS = (GROUP, SEQUENTIAL, FIXED)


def _log_ndtr(u: np.ndarray) -> np.ndarray:
    from scipy.special import log_ndtr

    return log_ndtr(u)


def mixture_u(info: np.ndarray, alpha: float, rho: float) -> np.ndarray:
    """The standardised one-sided boundary u(I) of the half-normal mixture at level alpha."""
    info = np.asarray(info, dtype=float)
    c = math.log(1 / alpha) + 0.5 * np.log1p(info * rho * rho) - math.log(2)
    u = np.sqrt(2 * np.maximum(c, 1e-12))  # g(u) <= c here: the root lies to the right
    for _ in range(40):  # Newton on the convex increasing g(u) = u^2/2 + log Phi(u)
        lp = _log_ndtr(u)
        g = 0.5 * u * u + lp - c
        dg = u + np.exp(-0.5 * u * u - 0.5 * math.log(2 * math.pi) - lp)
        step = g / dg
        u = u - step
        if np.all(np.abs(step) < 1e-10):
            break
    return u


def halfwidth(var: np.ndarray | float, alpha: float, *, design: str = SEQUENTIAL,
              rho: float = 0.05) -> np.ndarray:
    """One-sided half-width at level alpha for an estimate of variance `var`."""
    var = np.maximum(np.asarray(var, dtype=float), 1e-300)
    if design == FIXED:
        from scipy.special import ndtri

        return ndtri(1 - alpha) * np.sqrt(var)
    if design == GROUP:
        raise ValueError("the group-sequential half-width needs the information fraction: "
                         "use gs_halfwidth")
    u = mixture_u(np.asarray(1.0 / var), alpha, rho)
    with np.errstate(over="ignore"):
        return u * np.sqrt(var * (1.0 + var / (rho * rho)))


def gs_halfwidth(var: np.ndarray | float, frac: np.ndarray | float, alpha: float
                 ) -> np.ndarray:
    """One-sided half-width of the group-sequential pass bound at information fraction `frac`
    (capped at 1: the planned maximum): z_{alpha/2} * sqrt(var / frac)."""
    from scipy.special import ndtri

    var = np.maximum(np.asarray(var, dtype=float), 1e-300)
    f = np.clip(np.asarray(frac, dtype=float), 1e-9, 1.0)
    with np.errstate(over="ignore"):
        return ndtri(1 - alpha / 2) * np.sqrt(var / f)


def gs_power(drift: float, alpha: float) -> float:
    """Probability that the group-sequential bound is crossed by f = 1 under continuous looks
    when the standardised effect at the maximum is `drift` (theta / se at f = 1): the
    first-passage probability of a Brownian motion with drift through a flat boundary."""
    from scipy.special import ndtr, ndtri

    c = float(ndtri(1 - alpha / 2))
    tail = math.exp(min(2 * c * drift, 700.0)) * float(ndtr(-c - drift))
    return float(min(1.0, 1 - ndtr(c - drift) + tail))


@dataclass
class Arm:
    """Sufficient statistics of one arm's losses (numpy arrays or numbers).

    `n`, `total`, `sumsq`: count, sum and sum of squares of the losses. For sticky routing the
    per-key sums: `keys` (number of routing keys), `key_sq` = sum over keys of (key sum)^2,
    `key_cross` = sum of key sum * key count, `key_n2` = sum of key count^2; `keys` None means
    independent requests.
    """

    n: np.ndarray
    total: np.ndarray
    sumsq: np.ndarray
    keys: np.ndarray | None = None
    key_sq: np.ndarray | None = None
    key_cross: np.ndarray | None = None
    key_n2: np.ndarray | None = None

    @classmethod
    def of(cls, losses: np.ndarray, keys: np.ndarray | None = None) -> Arm:
        x = np.asarray(losses, dtype=float)
        arm = cls(np.asarray(len(x)), np.asarray(x.sum()), np.asarray((x * x).sum()))
        if keys is not None and len(x):
            _, idx = np.unique(np.asarray(keys, dtype=str), return_inverse=True)
            s, c = np.bincount(idx, weights=x), np.bincount(idx).astype(float)
            arm.keys, arm.key_sq = np.asarray(len(s)), np.asarray((s * s).sum())
            arm.key_cross, arm.key_n2 = np.asarray((s * c).sum()), np.asarray((c * c).sum())
        return arm

    @property
    def mean(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n > 0, self.total / np.maximum(self.n, 1), 0.0)

    def iid_var(self) -> np.ndarray:
        """Variance of the mean with independent units: s^2 / n."""
        n = np.maximum(self.n, 2)
        s2 = np.maximum(self.sumsq - self.total * self.total / n, 0.0) / (n - 1)
        return s2 / n

    def cluster_var(self) -> np.ndarray:
        """CR1 cluster-robust variance of the mean over routing keys."""
        assert self.keys is not None
        m = self.mean
        g = np.maximum(self.keys, 2)
        resid = np.maximum(self.key_sq - 2 * m * self.key_cross + m * m * self.key_n2, 0.0)
        return g / (g - 1) * resid / np.maximum(self.n, 1) ** 2


def _bvar(p: np.ndarray) -> np.ndarray:
    return p * (1 - p)


def contrast_var(a1: Arm, a0: Arm, *, scale: float, margin: float, binary: bool
                 ) -> np.ndarray:
    """Variance of mean1 - scale * mean0 (see the module docstring for the rules)."""
    if binary:
        p1 = (a1.total + 0.5) / (a1.n + 1)
        p0 = (a0.total + 0.5) / (a0.n + 1)
        lo, hi = np.minimum(p1, scale * p0 + margin), np.maximum(p1, scale * p0 + margin)
        v1 = _bvar(np.clip(0.5, np.clip(lo, 0, 1), np.clip(hi, 0, 1))) / np.maximum(a1.n, 1)
        v0 = _bvar(p0) / np.maximum(a0.n, 1)
        if a1.keys is not None:
            v1 = v1 * np.maximum(1.0, a1.cluster_var() / np.maximum(a1.iid_var(), 1e-300))
        if a0.keys is not None:
            v0 = v0 * np.maximum(1.0, a0.cluster_var() / np.maximum(a0.iid_var(), 1e-300))
    else:
        v1 = a1.cluster_var() if a1.keys is not None else a1.iid_var()
        v0 = a0.cluster_var() if a0.keys is not None else a0.iid_var()
    return v1 + scale * scale * v0


@dataclass
class Decision:
    estimate: np.ndarray   # theta-hat: mean1 - scale * mean0 - margin (positive: worse)
    lower: np.ndarray      # the fail bound (level alpha_fail)
    upper: np.ndarray      # the pass bound (level alpha)
    verdict: np.ndarray    # pass | fail | wait
    n_eff: np.ndarray | float = 0.0      # effective two-arm size (sum of n1 n0 / (n1 + n0))
    fraction: np.ndarray | float = 0.0   # group-sequential: n_eff / n_max (0 without a plan)
    final: np.ndarray | bool = False     # group-sequential: the planned maximum is reached


def stratified(s1: list[Arm], s0: list[Arm], *, scale: float, margin: float, binary: bool
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, variance, n_eff) of theta combined over strata (ramp steps) with weights
    n1 n0 / (n1 + n0); a stratum missing an arm weighs nothing."""
    num = den = vsum = 0.0
    for a1, a0 in zip(s1, s0, strict=True):
        h = a1.n * a0.n / np.maximum(a1.n + a0.n, 1)
        est = a1.mean - scale * a0.mean - margin
        v = contrast_var(a1, a0, scale=scale, margin=margin, binary=binary)
        num = num + h * est
        den = den + h
        vsum = vsum + h * h * v
    some = np.asarray(den) > 0
    den_ = np.where(some, den, 1.0)
    est = np.where(some, num / den_, 0.0)
    var = np.where(some, vsum / (den_ * den_), 1e300)
    return est, var, np.asarray(den, dtype=float)


def decide_strata(s1: list[Arm], s0: list[Arm], *, margin: float, alpha: float,
                  alpha_fail: float | None = None, scale: float = 1.0, binary: bool,
                  design: str = GROUP, rho: float = 0.05, n_max: float | None = None,
                  planned: int | None = None) -> Decision:
    """`decide` on data stratified by ramp step. `n_max` (group-sequential): the planned
    effective size at the deadline; without it the pass bound is the confidence sequence."""
    alpha_fail = alpha if alpha_fail is None else alpha_fail
    est, var, n_eff = stratified(s1, s0, scale=scale, margin=margin, binary=binary)
    frac: np.ndarray | float = 0.0
    final: np.ndarray | bool = False
    if design == GROUP and n_max:
        frac = n_eff / n_max
        up = est + gs_halfwidth(var, frac, alpha)
        final = frac >= 1.0
    else:
        up = est + halfwidth(var, alpha, design=FIXED if design == FIXED else SEQUENTIAL,
                             rho=rho)
    lo = est - halfwidth(var, alpha_fail, design=FIXED if design == FIXED else SEQUENTIAL,
                         rho=rho)
    verdict = np.where(up < 0, PASS, np.where(lo > 0, FAIL, WAIT))
    if design == FIXED and planned is not None:
        n1 = sum(a.n for a in s1)
        n0 = sum(a.n for a in s0)
        ready = np.minimum(n1, n0) >= planned
        verdict = np.where(ready, np.where(up < 0, PASS, FAIL), WAIT)
    return Decision(est, lo, up, verdict, n_eff, frac, final)


def decide(a1: Arm, a0: Arm, *, margin: float, alpha: float, alpha_fail: float | None = None,
           scale: float = 1.0, binary: bool, design: str = SEQUENTIAL, rho: float = 0.05,
           planned: int | None = None) -> Decision:
    """Pass when the challenger is shown not worse than the allowance, fail when it is shown
    worse by more, wait otherwise. `planned` (fixed design): the per-arm size of its one look;
    before it the verdict is wait, at it an undecided test fails (nothing was shown)."""
    alpha_fail = alpha if alpha_fail is None else alpha_fail
    est = a1.mean - scale * a0.mean - margin
    var = contrast_var(a1, a0, scale=scale, margin=margin, binary=binary)
    up = est + halfwidth(var, alpha, design=design, rho=rho)
    lo = est - halfwidth(var, alpha_fail, design=design, rho=rho)
    verdict = np.where(up < 0, PASS, np.where(lo > 0, FAIL, WAIT))
    if design == FIXED and planned is not None:
        ready = np.minimum(a1.n, a0.n) >= planned
        verdict = np.where(ready, np.where(up < 0, PASS, FAIL), WAIT)
    return Decision(est, lo, up, verdict)


def decide_rate(x: np.ndarray | float, n: np.ndarray | float, *, ceiling: float, alpha: float,
                alpha_fail: float, rho: float) -> Decision:
    """One rate against a fixed ceiling (theta = rate - ceiling), confidence sequences both
    ways: pass when shown below the ceiling at alpha, fail when shown above it at alpha_fail.
    The binomial variance is taken between the estimate and the ceiling, nearer 1/2."""
    x, n = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    p = (x + 0.5) / (n + 1)
    lo_, hi_ = np.minimum(p, ceiling), np.maximum(p, ceiling)
    var = _bvar(np.clip(0.5, lo_, hi_)) / np.maximum(n, 1)
    est = x / np.maximum(n, 1) - ceiling
    up = est + halfwidth(var, alpha, rho=rho)
    lo = est - halfwidth(var, alpha_fail, rho=rho)
    verdict = np.where(up < 0, PASS, np.where(lo > 0, FAIL, WAIT))
    return Decision(est, lo, up, verdict, n)
