"""Whole canary rollouts under the group-sequential design, thousands at once (numpy), with the
judge's own statistics (`mlci.stats.sequential.decide_strata`) and plan
(`mlci.stats.canary_plan`), and the controller's rules: steps 5, 25, 50 % judged (100 % is
the promotion), a 60 s bake, a look every 5 s, a step undecided at its 30-minute deadline moves
on, the last judged one rolls back for lack of evidence; any check shown worse rolls back on
evidence; a check shown within its allowance stays shown.

All three checks run together, as in a rollout: error rate (champion 1 %, allowance +1 point),
accuracy (champion 90 %, margin 0.02) on labels that arrive for a share of the requests after a
delay, each counted in the step its request was served in, and p95 latency (ratio 1.5, slack
2 ms) against a threshold fixed from the champion's traffic before the rollout, with requests
served during a bake not tested. Latency: lognormal model time (median 8 ms) times a load
factor shared by both variants (new every 5 s), one request in 50 stalled 5-20x, read by a
timer in whole milliseconds; the challenger's first `cold` requests are a cold start (20x).
Counts per tick are binomial draws with the exact probability of each event, so a rollout of
an hour and a half costs a few milliseconds of numpy per look.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import special, stats

from mlci.stats.canary_plan import Profile, n_max, preflight
from mlci.stats.judge import Params
from mlci.stats.sequential import FAIL, PASS, Arm, decide_strata

ALPHA = 0.05
TICK = 5.0
RUNNING, PROMOTED, EVIDENCE, LACK = 0, 1, 2, 3
CHECKS = ("error rate", "latency", "quality")
STALL_P, LAT_MEDIAN, LAT_SD = 0.02, 8.0, 0.35
_S = np.linspace(5, 20, 16)  # stall factors, quadrature of U(5, 20)


def slow_prob(x: np.ndarray) -> np.ndarray:
    """P(model time at load 1 >= x) under the stalls mixture (x: any shape)."""
    x = np.maximum(np.asarray(x, dtype=float), 1e-9)

    def sf(y: np.ndarray) -> np.ndarray:
        return special.ndtr(-(np.log(y) - math.log(LAT_MEDIAN)) / LAT_SD)

    stall = sf(x[..., None] / _S).mean(axis=-1)
    return (1 - STALL_P) * sf(x) + STALL_P * stall


def threshold_ms(q: float = 0.95, seed: int = 7) -> float:
    """t: the champion's q-quantile in whole ms on an hour of traffic before the rollout."""
    rng = np.random.default_rng(seed)
    n = 72_000
    base = rng.lognormal(math.log(LAT_MEDIAN), LAT_SD, n)
    base = base * np.where(rng.random(n) < STALL_P, rng.uniform(5, 20, n), 1.0)
    load = np.repeat(rng.lognormal(0.0, 0.4, n // 100), 100)
    return float(np.quantile(np.round(base * load), q))


@dataclass
class Scenario:
    """What the rollouts see. Rates may drift: `*_end` is the rate `drift_minutes` after the
    start (linear, both variants alike); None: no drift."""

    rate: float = 20.0
    label_share: float = 1.0
    label_delay: float = 0.0
    error: float = 0.01
    error_end: float | None = None
    wrong: float = 0.10               # the champion's share of wrong answers
    wrong_end: float | None = None
    drift_minutes: float = 40.0
    d_error: float = 0.0              # challenger minus champion
    d_wrong: float = 0.0
    lat_scale: float = 1.0            # challenger latency: scale * L + shift (ms), rounded
    lat_shift: float = 0.0
    cold: int = 0                     # the challenger's first requests at 20x (cold start)
    params: dict = field(default_factory=dict)

    def rate_at(self, start: float, end: float | None, t: float) -> float:
        if end is None:
            return start
        return start + (end - start) * min(t / (self.drift_minutes * 60), 1.0)


@dataclass
class Result:
    reps: int
    promoted: float
    evidence: float          # rolled back on evidence (a check shown worse)
    lack: float              # rolled back for lack of evidence
    by_check: dict           # rollbacks on evidence by the check that failed
    minutes: np.ndarray      # time to the decision of the promoted rollouts
    plan: dict

    def bounds(self, rate: float) -> tuple[float, float]:
        """95% Clopper-Pearson interval of a rate measured on `reps` rollouts."""
        k = round(rate * self.reps)
        lo = 0.0 if k == 0 else float(stats.beta.ppf(0.025, k, self.reps - k + 1))
        hi = 1.0 if k == self.reps else float(stats.beta.ppf(0.975, k + 1, self.reps - k))
        return lo, hi


def default_params(**kw) -> Params:
    return Params(steps=[5.0, 25.0, 50.0, 100.0], **kw)


def simulate(sc: Scenario, reps: int, rng: np.random.Generator,
             p: Params | None = None) -> Result:
    p = p or default_params(**sc.params)
    prof = Profile(rate=sc.rate, label_share=sc.label_share, label_delay=sc.label_delay,
                   error_rate=sc.error, label_error=sc.wrong)
    plan = preflight(p, prof)
    nmax = n_max(p.steps, p.bake, p.deadline, prof)
    t_ms = threshold_ms(p.latency_quantile)
    lim = p.max_latency_ratio * t_ms + p.latency_slack_ms
    weights = np.asarray([w / 100 for w in p.steps if w < 100])
    S = len(weights)
    k = 3
    z = np.zeros((reps, S))
    stats_ = {c: [z.copy(), z.copy(), z.copy(), z.copy()] for c in CHECKS}  # n1 x1 n0 x0
    delay_ticks = int(round(sc.label_delay / TICK))
    pending: list[tuple[np.ndarray, ...]] = []  # label arrivals, per tick
    status = np.full(reps, RUNNING)
    step = np.zeros(reps, dtype=int)
    started = np.zeros(reps)
    shown = np.zeros((reps, 3), dtype=bool)
    failed_by = np.full(reps, -1)
    cum1 = np.zeros(reps)
    done_at = np.full(reps, np.nan)
    t = 0.0
    rows = np.arange(reps)
    horizon = S * (p.bake + p.deadline) + 2 * TICK
    while t < horizon and (status == RUNNING).any():
        t += TICK
        run = status == RUNNING
        w = np.where(run, weights[np.minimum(step, S - 1)], 0.0)
        new = np.where(run, rng.poisson(sc.rate * TICK, reps), 0)
        new1 = rng.binomial(new, w)
        new0 = new - new1
        e0 = sc.rate_at(sc.error, sc.error_end, t)
        a0 = sc.rate_at(sc.wrong, sc.wrong_end, t)
        n1, x1, n0, x0 = stats_["error rate"]
        n1[rows, step] += new1
        x1[rows, step] += rng.binomial(new1, min(e0 + sc.d_error, 1.0))
        n0[rows, step] += new0
        x0[rows, step] += rng.binomial(new0, e0)
        # latency: answered requests after the bake, slow by the judge's rule
        load = rng.lognormal(0.0, 0.4, reps)
        after = (t - started) > p.bake
        ans1 = new1 - rng.binomial(new1, min(e0 + sc.d_error, 1.0))
        ans0 = new0 - rng.binomial(new0, e0)
        cold = np.minimum(np.maximum(sc.cold - cum1, 0), ans1).astype(np.int64)
        cum1 += ans1
        # challenger: round(scale L + shift) > lim  <=>  L >= (floor(lim) + 0.5 - shift) / scale
        p1 = slow_prob((math.floor(lim) + 0.5 - sc.lat_shift) / sc.lat_scale / load)
        p0 = slow_prob((math.floor(t_ms) + 0.5) / load)
        warm1 = ans1 - cold
        slow1 = rng.binomial(warm1, p1) + cold  # a cold-start request (20x) is always slow
        n1, x1, n0, x0 = stats_["latency"]
        n1[rows, step] += np.where(after, ans1, 0)
        x1[rows, step] += np.where(after, slow1, 0)
        n0[rows, step] += np.where(after, ans0, 0)
        x0[rows, step] += np.where(after, rng.binomial(ans0, p0), 0)
        # labels: a share of the answered requests, arriving `delay` later, in their step
        l1, l0 = rng.binomial(ans1, sc.label_share), rng.binomial(ans0, sc.label_share)
        pending.append((step.copy(), l1, rng.binomial(l1, min(a0 + sc.d_wrong, 1.0)),
                        l0, rng.binomial(l0, a0)))
        if len(pending) > delay_ticks:
            st_, l1, w1, l0, w0 = pending.pop(0)
            n1, x1, n0, x0 = stats_["quality"]
            live = status == RUNNING
            n1[rows, st_] += np.where(live, l1, 0)
            x1[rows, st_] += np.where(live, w1, 0)
            n0[rows, st_] += np.where(live, l0, 0)
            x0[rows, st_] += np.where(live, w0, 0)
        since = t - started - p.bake
        look = run & (since >= -1e-9)
        if not look.any():
            continue
        idx = np.flatnonzero(look)
        verdicts, finals = _judge(stats_, idx, p, k, nmax)
        fail = (verdicts == FAIL).any(axis=1)
        shown[idx] |= verdicts == PASS
        first_fail = np.argmax(verdicts == FAIL, axis=1)
        failed_by[idx[fail]] = first_fail[fail]
        status[idx[fail]] = EVIDENCE
        ok = ~fail & shown[idx].all(axis=1)
        last = step[idx] >= S - 1
        status[idx[ok & last]] = PROMOTED
        done_at[idx[ok & last]] = t
        exhausted = ~fail & ~ok & (finals & ~shown[idx]).any(axis=1)
        status[idx[exhausted]] = LACK
        late = ~fail & ~ok & ~exhausted & (since[idx] >= p.deadline)
        status[idx[late & last]] = LACK
        adv = (ok | late) & ~last
        step[idx[adv]] += 1
        started[idx[adv]] = t
    status[status == RUNNING] = LACK
    by = {c: float(((status == EVIDENCE) & (failed_by == i)).mean())
          for i, c in enumerate(CHECKS)}
    return Result(reps, float((status == PROMOTED).mean()), float((status == EVIDENCE).mean()),
                  float((status == LACK).mean()), by, done_at[status == PROMOTED] / 60, plan)


def _judge(stats_: dict, idx: np.ndarray, p: Params, k: int, nmax: dict
           ) -> tuple[np.ndarray, np.ndarray]:
    """Each looked-at rollout's verdict per check (pass / fail / wait) and whether its plan's
    maximum is reached, with the judge's minimum sizes."""
    spec = {"error rate": (p.max_error_increase, 2 * p.max_error_increase, p.min_requests,
                           "requests"),
            "latency": (0.0, 1 - p.latency_quantile, p.min_requests, "latency"),
            "quality": (p.margin, 2 * p.margin, p.min_samples, "labels")}
    out = np.empty((len(idx), 3), dtype=object)
    fin = np.zeros((len(idx), 3), dtype=bool)
    for j, c in enumerate(CHECKS):
        n1, x1, n0, x0 = (a[idx] for a in stats_[c])
        margin, rho, need, kind = spec[c]
        s1 = [Arm(n1[:, s], x1[:, s], x1[:, s]) for s in range(n1.shape[1])]
        s0 = [Arm(n0[:, s], x0[:, s], x0[:, s]) for s in range(n0.shape[1])]
        d = decide_strata(s1, s0, margin=margin, alpha=p.alpha, alpha_fail=p.alpha / k,
                          binary=True, design=p.design, rho=rho, n_max=nmax[kind])
        ready = (n1.sum(1) >= need) & (n0.sum(1) >= need)
        out[:, j] = np.where(ready, d.verdict, "wait")
        fin[:, j] = ready & np.asarray(d.final, dtype=bool)
    return out, fin


def shadow_ceiling(true: float, ceiling: float, reps: int, rng: np.random.Generator, *,
                   per_tick: float = 95.0, ticks: int = 1116, k: int = 4) -> tuple[float, float]:
    """(rolled back, shown below) shares of rollouts whose shadow disagreement is `true`
    against a ceiling, judged like the judge (confidence sequences both ways, fail at
    alpha / k) at every 5 s look over a whole rollout's champion traffic (19 req/s)."""
    from mlci.stats.sequential import decide_rate

    n = np.zeros(reps)
    x = np.zeros(reps)
    state = np.zeros(reps, dtype=int)  # 0 undecided, 1 failed, 2 shown below
    for _ in range(ticks):
        m = rng.poisson(per_tick, reps)
        n += m
        x += rng.binomial(m, true)
        d = decide_rate(x, n, ceiling=ceiling, alpha=ALPHA, alpha_fail=ALPHA / k,
                        rho=max(ceiling / 2, 0.005))
        open_ = state == 0
        state[open_ & (d.verdict == FAIL) & (n >= 50)] = 1
        state[open_ & (d.verdict == PASS) & (n >= 50)] = 2
    return float((state == 1).mean()), float((state == 2).mean())
