"""The canary's plan and pre-flight check: from the traffic a rollout will see (requests per
second, the share of requests that get a label and how late), the maximum sample each check
can reach by the deadline, the power that gives against an identical challenger, and the
expected time to a decision. Pure: numbers in, numbers out.

A judged step is one with a champion share (weight < 100 %): the step at 100 % is the
promotion itself, since it has no concurrent champion to compare with. Each judged step runs
at most `bake + deadline` seconds; a step whose checks are not all shown within their
allowances by then moves on to the next one (unless a check failed), and the last judged step
rolls back for lack of evidence. So the deadline fixes the maximum sample:

    n_max = sum over judged steps of  rate * share * w (1 - w) * seconds

(w the challenger's weight; `share` 1 for requests, the label share for labels; latency
excludes each step's bake; requests served in the last `label_delay` seconds of the rollout
bring no labels in time). `n_max` is in the unit of the stratified contrast's effective
size, n1 n0 / (n1 + n0).

Power: the group-sequential bound of `mlci.stats.sequential` is crossed by an identical
challenger with the first-passage probability `gs_power` of its drift theta / se at n_max, with
per-unit variances of the champion's own rates (error rate, label error, latency tail share
1 - q; MAE with the coefficient of variation of a normal error's absolute value). The promotion
needs every check: the plan's power is the product (the checks' data are independent).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from mlci.stats.sequential import gs_power

MAE_CV2 = math.pi / 2 - 1  # var|e| / (E|e|)^2 for a normal error


@dataclass
class Profile:
    """Traffic the rollout is expected to see."""

    rate: float                  # requests per second, both variants
    label_share: float = 1.0     # share of requests that get a label
    label_delay: float = 0.0     # seconds from the request to its label
    error_rate: float = 0.01     # the champion's share of failed requests
    label_error: float = 0.10    # the champion's share of wrong answers (classifiers)
    source: str = "given"        # given | prediction log


def judged_weights(steps: list[float]) -> list[float]:
    return [w / 100 for w in steps if w < 100]


def n_max(steps: list[float], bake: float, deadline: float, prof: Profile) -> dict[str, float]:
    """The planned maximum effective size of each kind of data at the deadline."""
    ws = judged_weights(steps)
    out = {"requests": 0.0, "latency": 0.0, "labels": 0.0}
    seconds = bake + deadline
    last_label = len(ws) * seconds - prof.label_delay  # later requests' labels come too late
    for i, w in enumerate(ws):
        h = prof.rate * w * (1 - w)
        out["requests"] += h * seconds
        out["latency"] += h * deadline
        labelled = min(seconds, max(last_label - i * seconds, 0.0))
        out["labels"] += prof.label_share * h * labelled
    return out


def _drifts(p: Any, prof: Profile, nmax: dict[str, float], metric: str) -> dict[str, float]:
    """theta / se at n_max of an identical challenger, per check."""
    e0 = min(max(prof.error_rate, 1e-4), 0.5)
    eb = min(e0 + p.max_error_increase, 0.5)
    d = {"error rate": p.max_error_increase * math.sqrt(nmax["requests"] /
                                                       max(eb * (1 - eb), e0 * (1 - e0)))}
    q = p.latency_quantile
    # an identical challenger's share beyond ratio x t + slack: at most the champion's 1 - q;
    # planned with half of it (a conservative guess: the allowance is what it has to spare)
    d["latency"] = (1 - q) / 2 * math.sqrt(nmax["latency"] / (q * (1 - q)))
    if metric == "accuracy":
        a0 = min(max(prof.label_error, 1e-3), 0.5)
        ab = min(a0 + p.margin, 0.5)
        d["quality"] = p.margin * math.sqrt(nmax["labels"] / max(ab * (1 - ab), a0 * (1 - a0)))
    else:  # relative margin: theta = margin x MAE, se from the CV of |error| (x scale^2)
        cv2 = MAE_CV2 if metric == "mae" else 2.0  # squared errors: var(e^2)/E(e^2)^2 = 2
        d["quality"] = p.margin / (1 + p.margin) * math.sqrt(nmax["labels"] / cv2)
    return d


def _time_to(kind: str, target: float, steps: list[float], bake: float, deadline: float,
             prof: Profile) -> float | None:
    """Seconds from the start until the effective size of `kind` reaches `target`, every step
    running to its deadline (None: not within the plan)."""
    ws = judged_weights(steps)
    acc, t = 0.0, 0.0
    for w in ws:
        per_s = prof.rate * w * (1 - w) * (prof.label_share if kind == "labels" else 1.0)
        start = bake if kind == "latency" else 0.0
        span = bake + deadline - start
        if per_s > 0 and acc + per_s * span >= target:
            return t + start + (target - acc) / per_s + \
                (prof.label_delay if kind == "labels" else 0.0)
        acc += per_s * span
        t += bake + deadline
    return None


def preflight(p: Any, prof: Profile, metric: str = "accuracy") -> dict[str, Any]:
    """Power and expected decision time of an identical challenger under `p` (a
    `mlci.stats.judge.Params`), and the advice when the power is below `p.min_power`."""
    from scipy.special import ndtri

    if not judged_weights(p.steps):
        return {"ok": False, "power": 0.0, "checks": {}, "advice":
                "no step below 100 %: a canary needs a step with a champion share to compare"}
    nmax = n_max(p.steps, p.bake, p.deadline, prof)
    drifts = _drifts(p, prof, nmax, metric)
    c = float(ndtri(1 - p.alpha / 2))
    kinds = {"error rate": "requests", "latency": "latency", "quality": "labels"}
    checks: dict[str, Any] = {}
    power = 1.0
    when = 0.0
    for name, drift in drifts.items():
        pw = gs_power(drift, p.alpha)
        power *= pw
        # the expected path crosses where drift * f = c, i.e. at f = c / drift
        f = min(1.0, c / drift) if drift > 0 else 1.0
        t = _time_to(kinds[name], f * nmax[kinds[name]], p.steps, p.bake, p.deadline, prof)
        checks[name] = {"power": round(pw, 4), "n_max": round(nmax[kinds[name]], 1),
                        "expected_seconds": None if t is None else round(t, 1)}
        when = max(when, t if t is not None else math.inf)
    n_judged = len(judged_weights(p.steps))
    step_len = p.bake + p.deadline
    done_step = min(int(when // step_len), n_judged - 1) if math.isfinite(when) else n_judged - 1
    # once every check is shown, each later judged step takes its bake and one look
    promote_at = (when + (n_judged - 1 - done_step) * (p.bake + p.poll)
                  if math.isfinite(when) else None)
    ok = power >= p.min_power and promote_at is not None and \
        promote_at <= n_judged * step_len
    out: dict[str, Any] = {"ok": ok, "power": round(power, 4), "checks": checks,
                           "n_max": {k: round(v, 1) for k, v in nmax.items()},
                           "expected_seconds_to_promotion": None if promote_at is None
                           else round(promote_at, 1),
                           "max_seconds": n_judged * step_len, "profile": asdict(prof)}
    if not ok:
        out["advice"] = _advice(p, prof, metric)
    return out


def _advice(p: Any, prof: Profile, metric: str) -> str:
    from dataclasses import replace

    for factor in (1.25, 1.5, 2, 3, 4, 6, 8):
        q = replace(p, deadline=p.deadline * factor)
        if _power(q, prof, metric) >= p.min_power:
            return (f"give a longer --deadline (at least {q.deadline / 60:.0f} min), a larger "
                    "first step or more labelled traffic")
    first = p.steps[0]
    for w in (10, 20, 30, 50):
        if w > first and w < 100:
            steps = [w] + [s for s in p.steps if s > w]
            if _power(replace(p, steps=steps), prof, metric) >= p.min_power:
                return f"start at a larger first step (--steps {','.join(f'{s:g}' for s in steps)})"
    return ("the traffic cannot decide this rollout at these allowances: widen --margin / "
            "--max-error-increase, or label more of the traffic")


def _power(p: Any, prof: Profile, metric: str) -> float:
    nmax = n_max(p.steps, p.bake, p.deadline, prof)
    return math.prod(gs_power(d, p.alpha) for d in _drifts(p, prof, nmax, metric).values())
