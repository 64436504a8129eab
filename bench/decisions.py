"""Error rates of the canary's and the watch's decisions under continuous monitoring.

Simulates whole rollouts, thousands at once (numpy), with the judge's own statistics
(`mlci.stats.sequential`): steps 5,25,50,100 % with a 60 s bake each, 20 requests/s, every
request labelled, a look every `poll` seconds while a step waits, and a rollback 1800 s after a
bake that stays inconclusive. Designs:

- `today`: the previous controller: the fixed-sample test (quality: Agresti-Caffo Wald z) re-run
  at level alpha on every look; error rate and p99 latency judged on raw point values;
- `sequential`: the confidence sequences of `mlci.stats.sequential` (the default);
- `fixed`: one look per check at a planned size with power 90% against "better by the margin".

Cells (alpha = 0.05, `--reps` replications each, 2,000 by default):

- promote rate of a challenger worse by exactly the margin (today's design beside it, for
  several numbers of looks): must be <= alpha;
- rollback rate of an identical challenger, on quality, error rate and latency: <= alpha
  (latency on a loaded machine: a load factor shared by both variants changes every 5 s and one
  request in 50 stalls);
- power and median labelled samples (challenger arm) to a decision for a challenger better by
  the margin, against the fixed-sample design;
- latency, where the champion's threshold is calibrated (its first 50 answered requests, the
  previous judge, or every other one, recomputed at every look, the judge now), on the loaded
  machine and with a warm-up spike at the start of the rollout: rollback of an identical
  challenger and promotion of challengers slower than the allowance (1.5x + 2 ms everywhere,
  or a pure factor that is the allowance at p95 only), each <= alpha, and the power;
- sticky routing with users that differ in difficulty: iid variance against cluster-robust;
- the watch: rollback of a fine champion (<= alpha) and of one decayed by twice the margin.

    python bench/decisions.py            # 2,000 replications per cell (about two minutes)
    python bench/decisions.py --quick    # 300 replications, CI smoke run
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mlci.stats.sequential import FIXED, SEQUENTIAL, Arm, decide, halfwidth  # noqa: E402

ALPHA = 0.05
STEPS = (5.0, 25.0, 50.0, 100.0)
BAKE, DEADLINE, RATE, TICK = 60.0, 1800.0, 20.0, 5.0
MIN_SAMPLES, MIN_REQUESTS = 200, 50
RUNNING, PROMOTED, FAILED, TIMED_OUT = 0, 1, 2, 3


@dataclass
class Outcome:
    promote: float
    rollback: float          # on evidence (a check failed)
    deadline: float          # inconclusive until the deadline
    median_n: float          # challenger samples at the first step's verdict (promoted runs)
    reps: int

    def bound(self, rate: float) -> float:
        """Upper 99% Clopper-Pearson bound of a rate measured on `reps` runs."""
        k = round(rate * self.reps)
        return 1.0 if k >= self.reps else float(stats.beta.ppf(0.99, k + 1, self.reps - k))


# ------------------------------------------------------------------ a rollout, vectorised


class Bernoulli:
    """A rate check (quality's 0/1 loss or the error rate): per-tick binomial counts."""

    def __init__(self, p0: float, delta: float, margin: float, per_request: bool,
                 reps: int) -> None:
        self.p0, self.p1, self.margin = p0, p0 + delta, margin
        self.min_n = MIN_REQUESTS if per_request else MIN_SAMPLES
        z = np.zeros(reps)
        self.n1, self.x1, self.n0, self.x0 = z.copy(), z.copy(), z.copy(), z.copy()

    def add(self, rng: np.random.Generator, new1: np.ndarray, new0: np.ndarray) -> None:
        self.n1 += new1
        self.x1 += rng.binomial(new1.astype(np.int64), self.p1)
        self.n0 += new0
        self.x0 += rng.binomial(new0.astype(np.int64), self.p0)

    def verdict(self, design: str, planned: int, rows: np.ndarray | None = None
                ) -> np.ndarray:
        """Every replication's verdict (`rows`, the ones looked at, is only a hint)."""
        ready = np.minimum(self.n1, self.n0) >= self.min_n
        if design == "today":
            v = self._today()
        else:
            d = decide(Arm(self.n1, self.x1, self.x1), Arm(self.n0, self.x0, self.x0),
                       margin=self.margin, alpha=ALPHA, alpha_fail=ALPHA / 3, binary=True,
                       design=design, rho=2 * self.margin, planned=planned)
            v = d.verdict
        return np.where(ready, v, "wait")

    def _today(self) -> np.ndarray:
        # accuracy non-inferiority, Agresti-Caffo adjusted Wald z at alpha, both directions
        a1 = (self.n1 - self.x1 + 1) / (self.n1 + 2)
        a0 = (self.n0 - self.x0 + 1) / (self.n0 + 2)
        se = np.sqrt(a1 * (1 - a1) / (self.n1 + 2) + a0 * (1 - a0) / (self.n0 + 2))
        z = stats.norm.ppf(1 - ALPHA)
        lo, hi = a1 - a0 - z * se, a1 - a0 + z * se
        return np.where(lo > -self.margin, "pass", np.where(hi < -self.margin, "fail", "wait"))


class ErrorRateToday(Bernoulli):
    """Today's error-rate rule: the challenger's point rate at most the champion's + margin."""

    def _today(self) -> np.ndarray:
        r1 = self.x1 / np.maximum(self.n1, 1)
        r0 = self.x0 / np.maximum(self.n0, 1)
        return np.where(r1 <= r0 + self.margin, "pass", "fail")


class Histograms:
    """Per-replication counts on the bins of a grid, with per-block sums (blocks of `W`
    bins) so that an order statistic or a tail count costs a pass over the blocks and one
    block instead of a cumulative sum over every bin."""

    W = 64

    def __init__(self, reps: int, bins: int) -> None:
        assert bins % self.W == 0
        self.h = np.zeros((reps, bins // self.W, self.W), dtype=np.int32)
        self.blocks = np.zeros((reps, bins // self.W), dtype=np.int64)
        self.n = np.zeros(reps, dtype=np.int64)

    def add(self, rep: np.ndarray, b: np.ndarray) -> None:
        nb = self.blocks.shape[1]
        np.add.at(self.h.reshape(-1), rep * (nb * self.W) + b, 1)
        np.add.at(self.blocks.reshape(-1), rep * nb + b // self.W, 1)
        self.n += np.bincount(rep, minlength=len(self.n))

    def order(self, rows: np.ndarray, k: np.ndarray) -> np.ndarray:
        """The bin of the k-th smallest value (0-based) of each replication in `rows`."""
        c = np.cumsum(self.blocks[rows], axis=1)
        blk = np.argmax(c > k[:, None], axis=1)
        before = np.where(blk > 0, np.take_along_axis(c, np.maximum(blk - 1, 0)[:, None],
                                                      axis=1)[:, 0], 0)
        inside = np.cumsum(self.h[rows, blk], axis=1)
        return blk * self.W + np.argmax(inside > (k - before)[:, None], axis=1)

    def at_or_above(self, rows: np.ndarray, j: np.ndarray) -> np.ndarray:
        """How many values of each replication in `rows` lie in bin j or above."""
        nb = self.blocks.shape[1]
        past = j >= nb * self.W
        j = np.minimum(j, nb * self.W - 1)
        blk, off = j // self.W, j % self.W
        c = np.cumsum(self.blocks[rows], axis=1)
        after = self.n[rows] - np.take_along_axis(c, blk[:, None], axis=1)[:, 0]
        inside = (self.h[rows, blk] * (np.arange(self.W) >= off[:, None])).sum(axis=1)
        return np.where(past, 0, after + inside)


class Latency:
    """The judge's latency test, simulated exactly. Latencies on a loaded machine: lognormal
    model time (median 8 ms) times a load factor shared by both variants (new every tick), and
    one request in 50 stalled 5-20x; optionally a warm-up spike (`warmup` = (seconds, factor):
    the rollout's first seconds slower for both variants, as while the gateway loads the
    challenger). The challenger's latency is `scale * L + shift` of a champion-like draw.

    `calibration="split"` (the judge): the champion's answered requests alternate by position
    (even: calibration, odd: test); at every look t is the q-quantile of the whole calibration
    half so far (numpy's linear interpolation), the champion's loss is 1 at or above t, the
    challenger's above ratio * t + slack. `calibration="first"` (the previous judge): t is the
    quantile of the champion's first MIN_REQUESTS answered requests, tested on the rest.

    Each replication keeps three histograms (calibration, champion test, challenger) on a log
    grid of 0.5% steps from 0.25 ms to 4 s, i.e. latencies read with a timer of that resolution
    (values are the grid points, so the judge's rule, ties included, is applied to them
    exactly), so the moving threshold and both shares are recomputed at every look without
    storing draws."""

    STALL_P = 0.02
    GRID = 0.25 * 1.005 ** np.arange(31 * Histograms.W)  # ms: 0.25 ms to 5 s

    def __init__(self, reps: int, rng: np.random.Generator, scale: float = 1.0,
                 shift: float = 0.0, q: float = 0.95, ratio: float = 1.5,
                 slack: float = 2.0, keep_raw: bool = False, calibration: str = "split",
                 warmup: tuple[float, float] = (0.0, 1.0)) -> None:
        assert calibration in ("split", "first")
        self.keep_raw, self.calibration, self.warmup = keep_raw, calibration, warmup
        self.reps, self.scale, self.shift = reps, scale, shift
        self.q, self.ratio, self.slack = q, ratio, slack
        self.clock = 0.0
        self.cal, self.test0, self.ch = (Histograms(reps, len(self.GRID)) for _ in range(3))
        self.raw1: list[np.ndarray] = []  # today's design: raw samples per tick
        self.raw0: list[np.ndarray] = []

    @classmethod
    def draw(cls, rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
        """Champion-like latencies (ms) at load 1."""
        base = rng.lognormal(math.log(8.0), 0.35, shape)
        return base * np.where(rng.random(shape) < cls.STALL_P, rng.uniform(5, 20, shape), 1.0)

    @classmethod
    def bin_of(cls, ms: np.ndarray) -> np.ndarray:
        i = np.floor(np.log(ms / cls.GRID[0]) / math.log(1.005)).astype(np.int64)
        return np.clip(i, 0, len(cls.GRID) - 1)

    def _requests(self, rng: np.random.Generator, new: np.ndarray, load: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One tick's requests of one variant, flat and in arrival order per replication:
        (replication, position within the tick, latency at load 1 times load and warm-up)."""
        new = new.astype(np.int64)
        rep = np.repeat(np.arange(self.reps), new)
        pos = np.arange(len(rep)) - np.repeat(np.cumsum(new) - new, new)
        ms = self.draw(rng, len(rep)) * load[rep]
        seconds, factor = self.warmup
        share = min(max((seconds - (self.clock - TICK)) / TICK, 0.0), 1.0)
        if share > 0:  # arrivals are uniform in the tick: the first Binomial(n, share) spike
            ms = ms * np.where(pos < np.repeat(rng.binomial(new, share), new), factor, 1.0)
        return rep, pos, ms

    @property
    def n1(self) -> np.ndarray:  # challenger requests (the rollout reports them)
        return self.ch.n

    def add(self, rng: np.random.Generator, new1: np.ndarray, new0: np.ndarray) -> None:
        self.clock += TICK
        load = rng.lognormal(0.0, 0.4, self.reps)
        rep1, _, ms1 = self._requests(rng, new1, load)
        ms1 = self.scale * ms1 + self.shift
        self.ch.add(rep1, self.bin_of(ms1))
        rep0, pos0, ms0 = self._requests(rng, new0, load)
        index = (self.cal.n + self.test0.n)[rep0] + pos0  # position among the champion's
        cal = index % 2 == 0 if self.calibration == "split" else index < MIN_REQUESTS
        b0 = self.bin_of(ms0)
        self.cal.add(rep0[cal], b0[cal])
        self.test0.add(rep0[~cal], b0[~cal])
        if self.keep_raw:  # today's design judges raw p99s
            for raw, rep, ms, new in ((self.raw1, rep1, ms1, new1), (self.raw0, rep0, ms0, new0)):
                a = np.full((self.reps, int(max(new.max(), 1))), np.nan)
                a[rep, np.arange(len(rep)) - np.repeat(np.cumsum(new) - new,
                                                        new.astype(np.int64))] = ms
                raw.append(a)

    def threshold(self, rows: np.ndarray) -> np.ndarray:
        """np.quantile(calibration, q) of each replication in `rows`, from its histogram."""
        n = np.maximum(self.cal.n[rows], 1)
        virtual = (n - 1) * self.q
        lo = np.floor(virtual).astype(np.int64)
        a = self.GRID[self.cal.order(rows, lo)]  # the order statistics around the quantile
        b = self.GRID[self.cal.order(rows, np.minimum(lo + 1, n - 1))]
        frac = virtual - lo
        return np.where(frac >= 0.5, b - (b - a) * (1 - frac), a + (b - a) * frac)  # numpy's

    def shares(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t, challenger requests slower than ratio * t + slack, champion test requests at
        or above t) of each replication in `rows`."""
        t = self.threshold(rows)
        x0 = self.test0.at_or_above(rows, np.searchsorted(self.GRID, t, side="left"))
        x1 = self.ch.at_or_above(rows, np.searchsorted(self.GRID, self.ratio * t + self.slack,
                                                       side="right"))
        return t, x1, x0

    def verdict(self, design: str, planned: int, rows: np.ndarray | None = None
                ) -> np.ndarray:
        out = np.full(self.reps, "wait", dtype=object)
        rows = np.arange(self.reps) if rows is None else np.flatnonzero(rows)
        if design == "today":
            r1, r0 = np.concatenate(self.raw1, axis=1), np.concatenate(self.raw0, axis=1)
            n1, n0 = np.isfinite(r1).sum(axis=1), np.isfinite(r0).sum(axis=1)
            with np.errstate(all="ignore"):
                c99, b99 = np.nanpercentile(r1, 99, axis=1), np.nanpercentile(r0, 99, axis=1)
            v = np.where(c99 <= b99 * self.ratio + self.slack, "pass", "fail")
            out[:] = np.where(np.minimum(n1, n0) >= MIN_REQUESTS, v, "wait")
            return out
        ready = (self.ch.n[rows] >= MIN_REQUESTS) & \
            (self.cal.n[rows] + self.test0.n[rows] >= 2 * MIN_REQUESTS)
        rows = rows[ready]
        if len(rows):
            _, x1, x0 = self.shares(rows)
            d = decide(Arm(self.ch.n[rows], x1, x1), Arm(self.test0.n[rows], x0, x0), margin=0.0,
                       alpha=ALPHA, alpha_fail=ALPHA / 3, binary=True, design=design,
                       rho=1 - self.q, planned=planned)
            out[rows] = d.verdict
        return out


def at_the_allowance_by_factor(q: float = 0.95, ratio: float = 1.5, slack: float = 2.0
                               ) -> float:
    """The pure slow-down factor f (no shift) whose q-quantile is ratio x the champion's +
    slack on the loaded machine: f = ratio + slack / Q(q) (Q by Monte Carlo, 4M draws)."""
    rng = np.random.default_rng(12345)
    x = Latency.draw(rng, 4_000_000) * rng.lognormal(0.0, 0.4, 4_000_000)
    return ratio + slack / float(np.quantile(x, q))


WARMUP = (2.0, 4.0)                 # the rollout's first 2 s at 4x load
FACTOR = at_the_allowance_by_factor()
LATENCY_CHALLENGERS = {"identical": (1.0, 0.0), "1.5x + 2 ms": (1.5, 2.0),
                       f"{FACTOR:.2f}x": (FACTOR, 0.0)}


def rollout(check, design: str, *, reps: int, poll: float, rng: np.random.Generator,
            planned: int = 0, per_request: bool = True) -> Outcome:
    """Drive `reps` rollouts of one check through the steps; return the decision rates."""
    status = np.full(reps, RUNNING)
    step = np.zeros(reps, dtype=int)
    started = np.zeros(reps)
    n_at = np.full(reps, np.nan)
    share = np.asarray(STEPS) / 100
    t = 0.0
    horizon = len(STEPS) * (BAKE + DEADLINE) + TICK
    while t < horizon and (status == RUNNING).any():
        t += TICK
        w = np.where(status == RUNNING, share[step], 0.0)
        new = rng.poisson(RATE * TICK, reps)
        new1 = rng.binomial(new, w)
        check.add(rng, new1, np.where(status == RUNNING, new - new1, 0))
        since = t - started - BAKE
        look = (status == RUNNING) & (since >= -1e-9) & \
            ((np.round(since / TICK) % max(1, round(poll / TICK)) == 0) | (since >= DEADLINE))
        if not look.any():
            continue
        v = check.verdict(design, planned, look)
        fail = look & (v == "fail")
        ok = look & (v == "pass")
        late = look & (v == "wait") & (since >= DEADLINE)
        status[fail], status[late] = FAILED, TIMED_OUT
        last = ok & (step == len(STEPS) - 1)
        status[last] = PROMOTED
        first = (ok & (step == 0)) | (fail & np.isnan(n_at))
        n_at[first] = check.n1[first]  # the deciding look: the first step's verdict
        adv = ok & ~last
        step[adv] += 1
        started[adv] = t
    done = status != RUNNING
    status[~done] = TIMED_OUT
    promoted = status == PROMOTED
    return Outcome(float(promoted.mean()), float((status == FAILED).mean()),
                   float((status == TIMED_OUT).mean()),
                   float(np.nanmedian(n_at[promoted])) if promoted.any() else float("nan"),
                   reps)


def planned_n(p0: float, margin: float, power: float = 0.9) -> int:
    """Per-arm size of the fixed-sample test with `power` against 'better by the margin'."""
    z = stats.norm.ppf(1 - ALPHA) + stats.norm.ppf(power)
    var = p0 * (1 - p0) + (p0 - margin) * (1 - p0 + margin)
    return int(math.ceil(var * (z / (2 * margin)) ** 2))


# ------------------------------------------------------------------ sticky routing


def clustered(design: str, variance: str, *, reps: int, rng: np.random.Generator,
              delta: float, margin: float = 0.02, users: int = 200) -> float:
    """Promote rate of a rate check with sticky users of unequal difficulty (per-user error
    rate ~ Beta, mean 0.10, intra-user correlation 0.2) at one arm share of 50%, judged after
    every 30 s of a 30-minute step."""
    p0, icc = 0.10, 0.2
    a = p0 * (1 / icc - 1)
    b = (1 - p0) * (1 / icc - 1)
    pu = rng.beta(a, b, (reps, users))
    arm1 = rng.random((reps, users)) < 0.5
    pu = np.where(arm1, np.clip(pu + delta, 0, 1), pu)
    activity = rng.gamma(0.5, 2.0, (reps, users))  # a few heavy users
    s = np.zeros((reps, users))
    c = np.zeros((reps, users))
    decided = np.zeros(reps, dtype=bool)
    promoted = np.zeros(reps, dtype=bool)
    tick = 30.0
    for _ in range(int(DEADLINE / tick)):
        k = rng.poisson(activity * RATE * tick / users)
        s += rng.binomial(k, pu)
        c += k
        arms = []
        for m in (arm1, ~arm1):
            sm, cm = np.where(m, s, 0), np.where(m, c, 0)
            arm = Arm(cm.sum(1), sm.sum(1), sm.sum(1))
            if variance == "cluster":
                arm.keys, arm.key_sq = m.sum(1), (sm * sm).sum(1)
                arm.key_cross, arm.key_n2 = (sm * cm).sum(1), (cm * cm).sum(1)
            arms.append(arm)
        d = decide(arms[0], arms[1], margin=margin, alpha=ALPHA, alpha_fail=ALPHA / 3,
                   binary=True, design=design, rho=2 * margin)
        ready = np.minimum(arms[0].n, arms[1].n) >= MIN_SAMPLES
        promoted |= ~decided & ready & (d.verdict == "pass")
        decided |= ready & (d.verdict != "wait")
    return float(promoted.mean())


# ------------------------------------------------------------------ the watch


def watch(design: str, *, reps: int, looks: int, rng: np.random.Generator, drop: float,
          margin: float = 0.02, base_acc: float = 0.90, base_n: int = 1000,
          per_look: int = 50) -> tuple[float, float]:
    """Rollback rate of a champion whose live accuracy is `drop` below its baseline (a golden
    set of `base_n` rows), watched `looks` times with `per_look` new labels each; and the
    median labels to the rollback."""
    k0 = rng.binomial(base_n, base_acc, reps)
    base_err = 1 - k0 / base_n
    n = np.zeros(reps)
    x = np.zeros(reps)
    rolled = np.zeros(reps, dtype=bool)
    n_at = np.full(reps, np.nan)
    p0 = (base_err * base_n + 0.5) / (base_n + 1)
    v0 = p0 * (1 - p0) / base_n
    for _ in range(looks):
        n += per_look
        x += rng.binomial(per_look, 1 - base_acc + drop, reps)
        p1 = (x + 0.5) / (n + 1)
        v1 = p1 * (1 - p1) / n
        est = x / n - base_err - margin
        if design == SEQUENTIAL:
            lower = est - halfwidth(v1, ALPHA / 2, rho=2 * margin) - \
                halfwidth(v0, ALPHA / 2, design=FIXED)
        else:  # today: the fixed test at alpha, re-run on every look
            lower = est - halfwidth(v1 + v0, ALPHA, design=FIXED)
        hit = ~rolled & (n >= 100) & (lower > 0)
        n_at[hit] = n[hit]
        rolled |= hit
    return float(rolled.mean()), float(np.nanmedian(n_at)) if rolled.any() else float("nan")


# ------------------------------------------------------------------ the table


def _fmt(o: Outcome, what: str) -> str:
    rate = getattr(o, what)
    return f"{rate:.3f} (≤{o.bound(rate):.3f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=2000, help="replications per cell")
    ap.add_argument("--quick", action="store_true", help="300 replications (CI)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    reps = 300 if args.quick else args.reps
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    m, p_err = 0.02, 0.10                  # quality: accuracy 0.90, margin 0.02
    e_m, e_p = 0.01, 0.01                  # error rate: 1%, allowance +1 point
    fixed_n = planned_n(p_err, m)
    print(f"# Canary and watch decisions, alpha = {ALPHA}, {reps} replications per cell\n")
    print("Rates with the upper 99% Clopper-Pearson bound of the rate in brackets.\n")

    print("## Promote rate of a challenger worse by exactly the margin (must be <= alpha)\n")
    print("| check | poll (s) | looks per step | today | sequential |")
    print("|---|---:|---:|---:|---:|")
    for poll in (1800.0, 300.0, 60.0, 5.0):
        looks = 1 + int(DEADLINE / poll)
        today = rollout(Bernoulli(p_err, m, m, False, reps), "today", reps=reps, poll=poll,
                        rng=rng)
        seq = rollout(Bernoulli(p_err, m, m, False, reps), SEQUENTIAL, reps=reps, poll=poll,
                      rng=rng)
        print(f"| accuracy (margin {m}) | {poll:g} | {looks} | {_fmt(today, 'promote')} | "
              f"{_fmt(seq, 'promote')} |")
    for poll in (300.0, 5.0):
        looks = 1 + int(DEADLINE / poll)
        seq = rollout(Bernoulli(e_p, e_m, e_m, True, reps), SEQUENTIAL, reps=reps, poll=poll,
                      rng=rng)
        today = rollout(ErrorRateToday(e_p, e_m, e_m, True, reps), "today", reps=reps,
                        poll=poll, rng=rng)
        print(f"| error rate (+{e_m}) | {poll:g} | {looks} | {_fmt(today, 'promote')} | "
              f"{_fmt(seq, 'promote')} |")
    lat: dict[tuple[str, str, str], Outcome] = {}

    def latency(challenger: str, machine: str = "loaded", calibration: str = "split"
                ) -> Outcome:
        key = (challenger, machine, calibration)
        if key not in lat:
            scale, shift = LATENCY_CHALLENGERS[challenger]
            chk = Latency(reps, rng, scale=scale, shift=shift, calibration=calibration,
                          warmup=WARMUP if machine == "warm-up" else (0.0, 1.0))
            lat[key] = rollout(chk, SEQUENTIAL, reps=reps, poll=5.0, rng=rng)
        return lat[key]

    lat_today = rollout(Latency(reps, rng, scale=1.5, shift=2.0, keep_raw=True), "today",
                        reps=reps, poll=60.0, rng=rng)
    print(f"| p95 latency (1.5x + 2 ms) | 5 | 361 | {_fmt(lat_today, 'promote')} (p99, poll "
          f"60) | {_fmt(latency('1.5x + 2 ms'), 'promote')} |")

    print("\n## Rollback of an identical challenger (on evidence: must be <= alpha)\n")
    print("| check | design | rolled back on evidence | inconclusive at the deadline | "
          "promoted |")
    print("|---|---|---:|---:|---:|")
    cells = [("accuracy", lambda: Bernoulli(p_err, 0.0, m, False, reps)),
             ("error rate", lambda: Bernoulli(e_p, 0.0, e_m, True, reps)),
             ("p95 latency, loaded machine", lambda: Latency(reps, rng))]
    for name, make in cells:
        for design in ("today", SEQUENTIAL):
            if design == SEQUENTIAL and name.startswith("p95"):
                o = latency("identical")
            else:
                chk = make()
                if design == "today" and name.startswith("p95"):
                    chk = Latency(reps, rng, keep_raw=True)
                if design == "today" and name == "error rate":
                    chk = ErrorRateToday(e_p, 0.0, e_m, True, reps)
                o = rollout(chk, design, reps=reps, poll=60.0 if name.startswith("p95") and
                            design == "today" else 5.0, rng=rng)
            print(f"| {name} | {design} | {_fmt(o, 'rollback')} | {o.deadline:.3f} | "
                  f"{o.promote:.3f} |")

    print(f"\n## A challenger better by the margin: power and median labels to the decision\n\n"
          f"Fixed-sample design: one look at {fixed_n} labels per arm (power 0.9 planned).\n")
    print("| check | design | promoted | median challenger labels at the deciding look |")
    print("|---|---|---:|---:|")
    for design, planned in ((FIXED, fixed_n), (SEQUENTIAL, 0)):
        o = rollout(Bernoulli(p_err, -m, m, False, reps), design, reps=reps, poll=5.0, rng=rng,
                    planned=planned)
        print(f"| accuracy | {design} | {o.promote:.3f} | {o.median_n:.0f} |")
    o = latency("identical")
    print(f"| p95 latency, identical | sequential | {o.promote:.3f} | {o.median_n:.0f} "
          "(requests) |")

    print("\n## p95 latency: where the champion's threshold t is calibrated\n\n"
          f"Previous judge: on the champion's first {MIN_REQUESTS} answered requests of the "
          "rollout. Now: on every other champion request (even positions), recomputed at every "
          "look; the odd ones are tested. Loaded machine as above; warm-up: besides, the "
          f"rollout's first {WARMUP[0]:g} s at {WARMUP[1]:g}x load for both variants. Promoting "
          "the slower challengers is the error (<= alpha), and so is rolling back the "
          "identical one; the allowance is 1.5x + 2 ms at p95, which "
          f"{FACTOR:.2f}x (no shift) meets at the p95 only.\n")
    print("| challenger | machine | t calibrated on | promoted | rolled back on evidence | "
          "inconclusive at the deadline | median challenger requests at the deciding look |")
    print("|---|---|---|---:|---:|---:|---:|")
    for challenger, machine, calibrations in (
            ("identical", "loaded", ("first", "split")),
            ("identical", "warm-up", ("first", "split")),
            ("1.5x + 2 ms", "loaded", ("first", "split")),
            ("1.5x + 2 ms", "warm-up", ("split",)),
            (f"{FACTOR:.2f}x", "loaded", ("first", "split")),
            (f"{FACTOR:.2f}x", "warm-up", ("split",))):
        for calibration in calibrations:
            o = latency(challenger, machine, calibration)
            where = f"first {MIN_REQUESTS}" if calibration == "first" else "every other"
            same = challenger == "identical"  # the error: rollback if so, else promotion
            promoted = f"{o.promote:.3f}" if same else _fmt(o, "promote")
            rolled = _fmt(o, "rollback") if same else f"{o.rollback:.3f}"
            print(f"| {challenger} | {machine} | {where} | {promoted} | {rolled} | "
                  f"{o.deadline:.3f} | {o.median_n:.0f} |")

    print("\n## Sticky routing: users of unequal difficulty (ICC 0.2), promote rate when worse "
          "by the margin\n")
    print("| variance | promote rate |")
    print("|---|---:|")
    for variance in ("iid", "cluster"):
        r = clustered(SEQUENTIAL, variance, reps=reps, rng=rng, delta=m)
        k = round(r * reps)
        hi = 1.0 if k >= reps else stats.beta.ppf(0.99, k + 1, reps - k)
        print(f"| {variance} | {r:.3f} (≤{hi:.3f}) |")

    print("\n## The watch: rollback of the new champion (margin 0.02, baseline 1,000 golden "
          "rows, 50 labels per watch run)\n")
    print("| champion | watch runs | today | sequential | median labels to rollback "
          "(sequential) |")
    print("|---|---:|---:|---:|---:|")
    for drop, label in ((0.02, "fine (worse by exactly the margin)"), (0.0, "identical"),
                        (0.06, "decayed (margin + 0.04)")):
        for looks in (1, 10, 100, 500):
            td, _ = watch("today", reps=reps, looks=looks, rng=rng, drop=drop)
            sq, med = watch(SEQUENTIAL, reps=reps, looks=looks, rng=rng, drop=drop)
            print(f"| {label} | {looks} | {td:.3f} | {sq:.3f} | {med:.0f} |")
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
