"""Error rates of the canary's and the watch's decisions under continuous monitoring.

The first section is the canary's default design (`group-sequential`, `bench/canary_sim.py`):
whole rollouts with all checks at once at 20 requests/s and a 30-minute step deadline, against
the targets: an identical challenger promoted >= 90 % with every label at once and >= 80 % with
30 % of the requests labelled after 10 minutes, a challenger worse by an allowance promoted
<= alpha, each rate with its 95 % Clopper-Pearson interval, beside the pre-flight check's
prediction (power, expected minutes to the promotion); and the shadow-disagreement ceiling.

The later sections measure, one check at a time, the confidence-sequence design (`--design
sequential`) against the previous controller (`today`: the fixed-sample test re-run at level
alpha on every look, the error rate judged on raw point values) and the fixed design, with
steps 5,25,50,100 %, a 60 s bake, 20 requests/s, every request labelled and a rollback 1800 s
after a bake that stays inconclusive:

- promote rate of a challenger worse by exactly the margin, for several numbers of looks;
- rollback rate of an identical challenger on quality and error rate;
- power and median labelled samples to a decision for a challenger better by the margin;
- sticky routing with users that differ in difficulty: iid variance against cluster-robust;
- the watch: rollback of a fine champion (<= alpha) and of one decayed by twice the margin.

    python bench/decisions.py            # 2,000 replications per cell (about six minutes)
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import canary_sim as gs  # noqa: E402

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


IDENTICAL = {
    "every label at once": gs.Scenario(),
    "30% labelled after 10 min": gs.Scenario(label_share=0.3, label_delay=600),
    "every label after 10 min": gs.Scenario(label_delay=600),
    "every label after 1 hour": gs.Scenario(label_delay=3600),
    "shared drift: accuracy 0.94 -> 0.86, errors 0.5% -> 3% in 40 min":
        gs.Scenario(wrong=0.06, wrong_end=0.14, error=0.005, error_end=0.03),
    "cold start: the first 30 challenger requests 20x slower": gs.Scenario(cold=30),
    "2 requests/s (the pre-flight check refuses)": gs.Scenario(rate=2.0),
}
WORSE = {
    "accuracy worse by the margin (0.02)": gs.Scenario(d_wrong=0.02),
    "accuracy worse by the margin, under the shared drift":
        gs.Scenario(d_wrong=0.02, wrong=0.06, wrong_end=0.14, error=0.005, error_end=0.03),
    "accuracy worse by the margin, 30% labelled after 10 min":
        gs.Scenario(d_wrong=0.02, label_share=0.3, label_delay=600),
    "error rate worse by the allowance (+1 point)": gs.Scenario(d_error=0.01),
    "latency at the allowance (1.5x + 2 ms, whole-ms timer)":
        gs.Scenario(lat_scale=1.5, lat_shift=2.0),
    "latency 1 ms beyond the allowance": gs.Scenario(lat_scale=1.5, lat_shift=3.0),
}


def _ci(r: gs.Result, rate: float) -> str:
    lo, hi = r.bounds(rate)
    return f"{rate:.3f} [{lo:.3f}, {hi:.3f}]"


def _minutes(r: gs.Result) -> str:
    if not len(r.minutes):
        return "—"
    return f"{np.median(r.minutes):.0f} ({np.percentile(r.minutes, 90):.0f})"


def group_sequential(reps: int, rng: np.random.Generator) -> None:
    """The default design's cells (see the module docstring)."""
    print("## The default design: group-sequential, stratified by step (20 requests/s, steps "
          "5,25,50,100, bake 60 s, deadline 30 min, a look every 5 s)\n")
    print("Rates with their 95% Clopper-Pearson interval. `pre-flight`: the plan's chance of "
          "promoting an identical challenger and its expected minutes to the promotion; "
          "minutes: median (90th percentile) of the promoted rollouts.\n")
    print("### An identical challenger (the errors: any rollback)\n")
    print("| traffic | pre-flight | promoted | rolled back on evidence | rolled back for lack "
          "of evidence | minutes to promotion |")
    print("|---|---|---:|---:|---:|---:|")
    for name, sc in IDENTICAL.items():
        r = gs.simulate(sc, reps, rng)
        pf = r.plan
        when = pf["expected_seconds_to_promotion"]
        plan = (f"{pf['power']:.2f}, {when / 60:.0f} min" if when is not None else
                f"{pf['power']:.2f}") + ("" if pf["ok"] else " (refused)")
        print(f"| {name} | {plan} | {_ci(r, r.promoted)} | {_ci(r, r.evidence)} | "
              f"{_ci(r, r.lack)} | {_minutes(r)} |")
    print("\n### A challenger worse by an allowance (the error: promotion, <= alpha)\n")
    print("| challenger | promoted | rolled back on evidence | rolled back for lack of "
          "evidence |")
    print("|---|---:|---:|---:|")
    for name, sc in WORSE.items():
        r = gs.simulate(sc, reps, rng)
        print(f"| {name} | {_ci(r, r.promoted)} | {r.evidence:.3f} | {r.lack:.3f} |")
    print("\n### Shadow disagreement against a ceiling of 0.10 (confidence sequences both "
          "ways; rollback at alpha/4)\n")
    print("| true disagreement | rolled back | shown below the ceiling |")
    print("|---:|---:|---:|")
    for true in (0.05, 0.095, 0.10, 0.15):
        fail, ok = gs.shadow_ceiling(true, 0.10, reps, rng)
        k = round(fail * reps)
        hi = 1.0 if k >= reps else float(stats.beta.ppf(0.975, k + 1, reps - k))
        print(f"| {true:.3f} | {fail:.3f} (≤{hi:.3f}) | {ok:.3f} |")


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
    group_sequential(reps, rng)
    print("\n# The confidence-sequence design (`--design sequential`)\n")
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
    print("\n## Rollback of an identical challenger (on evidence: must be <= alpha)\n")
    print("| check | design | rolled back on evidence | inconclusive at the deadline | "
          "promoted |")
    print("|---|---|---:|---:|---:|")
    cells = [("accuracy", lambda: Bernoulli(p_err, 0.0, m, False, reps)),
             ("error rate", lambda: Bernoulli(e_p, 0.0, e_m, True, reps))]
    for name, make in cells:
        for design in ("today", SEQUENTIAL):
            chk = make()
            if design == "today" and name == "error rate":
                chk = ErrorRateToday(e_p, 0.0, e_m, True, reps)
            o = rollout(chk, design, reps=reps, poll=5.0, rng=rng)
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
