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
SEQUENTIAL, FIXED = "sequential", "fixed"


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
    u = mixture_u(np.asarray(1.0 / var), alpha, rho)
    return u * np.sqrt(var * (1.0 + var / (rho * rho)))


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
