"""The canary's judge: the challenger against the champion serving at the same time, on one
rollout's observations. Pure: data in, checks and a verdict out (no clock, no files).

Checks (each one contrast of `mlci.stats.sequential`; losses are oriented so that larger is
worse), each **stratified by ramp step**: a unit counts in the step during which its request
was served, the contrast is estimated within each step (both arms at the same moments) and
combined; requests served at 100 % (no concurrent champion) are not judged:

- **error rate**: share of failed requests; the challenger's may exceed the champion's by at
  most `max_error_increase`;
- **latency**: a non-inferiority test on the `latency_quantile` (default p95) against a
  threshold t **fixed before the tested data**: the champion's quantile on its traffic before
  the rollout (`latency_threshold_ms`, set when the rollout starts), or else on its requests
  during the first step's bake (its first `min_requests` if the bake had fewer; those are
  not tested). Requests served during any step's bake are not tested (warm-up
  excluded by design). A challenger request is slow when it takes more than
  `max_latency_ratio * t + latency_slack_ms`, a champion request when it takes more than t
  (the same strict inequality on both sides: with timer steps, a challenger exactly at the
  allowance has the same share of ties as the champion). With t fixed, each step's contrast is
  a two-sample test of two shares, so the design's error rates hold as for any rate:
  promoting a challenger whose share beyond ratio * t + slack exceeds the champion's share
  beyond t has probability at most alpha. When the rows per request are known and the
  rollout's requests come in more than one request-size class (1, 2-3, 4-7, ... rows), t is
  taken per class from the champion's calibration requests of that class (its first bake, or
  its first `min_requests`: never tested) and each request is compared with its class's
  threshold: latency grows with a request's rows, so a client steering large requests to one
  variant no longer moves the verdict (a class with fewer than 20 calibration requests is not
  judged, and the detail says how many requests that left out);
- **quality** on labelled feedback: accuracy (0/1 loss, absolute margin `margin`) for
  classifiers, MAE or MSE (relative margin: the challenger's may be at most (1 + margin) times
  the champion's) for regressors; `quality_metric="auto"` takes MAE for a regressor (`task`,
  from the config) whatever its labels look like, and without a task, MAE when predictions or
  labels are non-integer numbers;
- **shadow disagreement** (when shadowing, and only with `max_disagreement` set): the share of
  differing answers against that ceiling, with confidence sequences both ways.

Every test passes at level `alpha` (an intersection-union test: promoting a challenger that is
worse on any check by its allowance has probability at most alpha) and fails at
`alpha / (number of tests)` (rolling back a challenger within every allowance *on evidence* has
probability at most alpha). Designs (`mlci.stats.sequential`): `group-sequential` (default)
spends alpha over the rollout's planned maximum sample (`plan`, from the pre-flight check);
without a plan its pass bound is the confidence sequence; `sequential`: confidence sequences;
`fixed`: one test per check at `min_requests` / `min_samples`. A check shown within its
allowance at one look stays shown (`shown`): the pass bound was crossed, which is the event
whose probability the design bounds. Requests carrying a routing key are clustered by it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mlci.stats.sequential import (
    FAIL,
    FIXED,
    GROUP,
    PASS,
    WAIT,
    Arm,
    decide_rate,
    decide_strata,
)

QUALITY_METRICS = ("accuracy", "mae", "mse")


@dataclass
class Params:
    steps: list[float]
    bake: float = 60.0             # seconds at each step before judging
    min_samples: int = 200         # labelled instances per arm before the quality test
    min_requests: int = 50         # requests per arm before error rate and latency
    margin: float = 0.02           # quality allowance (accuracy: absolute; mae/mse: relative)
    alpha: float = 0.05
    max_error_increase: float = 0.01
    max_latency_ratio: float = 1.5
    latency_slack_ms: float = 2.0
    latency_quantile: float = 0.95
    max_disagreement: float | None = None
    deadline: float = 1800.0       # seconds a judged step may run after its bake
    poll: float = 5.0
    design: str = GROUP            # group-sequential | sequential | fixed
    quality_metric: str = "auto"   # auto | accuracy | mae | mse
    min_power: float = 0.8         # pre-flight: refuse a plan with less power than this
    preflight: str = "refuse"      # refuse | warn
    rate: float | None = None      # expected requests/s (None: the prediction log's)
    label_share: float | None = None   # share of requests labelled (None: the log's)
    label_delay: float | None = None   # seconds to a label (None: the log's)
    task: str | None = None        # classification | regression (from the config)
    latency_threshold_ms: float | None = None  # t, fixed from pre-rollout champion traffic
    plan: dict[str, Any] | None = None  # group-sequential: n_max per kind of data, profile

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Params:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def n_max(self, kind: str) -> float | None:
        if self.design != GROUP or not self.plan:
            return None
        v = self.plan.get("n_max", {}).get(kind)
        return float(v) if v else None


@dataclass
class Observations:
    """One variant over one rollout: per request and per labelled instance, with the time
    each request was served (`*_ts`, seconds; None: one stratum, nothing excluded)."""

    version: str | None = None
    errors: np.ndarray = field(default_factory=lambda: np.zeros(0))       # 0/1 per request
    request_keys: np.ndarray | None = None                                # routing key
    latency_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))   # answered, in order
    latency_keys: np.ndarray | None = None
    latency_rows: np.ndarray | None = None  # rows per answered request (size classes)
    predictions: list[Any] = field(default_factory=list)                  # labelled instances
    labels: list[Any] = field(default_factory=list)
    label_keys: np.ndarray | None = None
    has_latencies: bool = True     # False when judged from aggregate metrics
    p99_ms: float | None = None    # aggregate metrics: the histogram's p99
    request_ts: np.ndarray | None = None
    latency_ts: np.ndarray | None = None
    label_ts: np.ndarray | None = None

    @property
    def requests(self) -> int:
        return len(self.errors)

    def summary(self) -> dict[str, Any]:
        lat = self.latency_ms
        err = int(self.errors.sum())
        correct = sum(str(p) == str(y) for p, y in zip(self.predictions, self.labels,
                                                          strict=False))
        return {"version": self.version, "requests": self.requests, "errors": err,
                "error_rate": round(err / self.requests, 6) if self.requests else 0.0,
                "p50_ms": _r(np.percentile(lat, 50)) if len(lat) else None,
                "p95_ms": _r(np.percentile(lat, 95)) if len(lat) else None,
                "p99_ms": _r(np.percentile(lat, 99)) if len(lat) else
                _r(self.p99_ms) if self.p99_ms is not None else None,
                "labelled": len(self.labels), "correct": int(correct),
                "accuracy": _r(correct / len(self.labels)) if self.labels else None}


@dataclass
class Steps:
    """The rollout's steps so far: when each started and its challenger weight (%)."""

    starts: list[float]
    weights: list[float]
    bake: float = 0.0

    def index(self, ts: np.ndarray | None, n: int, *, skip_bake: bool = False) -> np.ndarray:
        """The stratum (step) of each of `n` units; -1: not judged (served at 100 %, or
        during a bake when `skip_bake`)."""
        if ts is None or len(ts) != n:
            return np.zeros(n, dtype=int)
        ts = np.asarray(ts, dtype=float)
        starts = np.asarray(self.starts, dtype=float)
        i = np.clip(np.searchsorted(starts, ts, side="right") - 1, 0, len(starts) - 1)
        ok = np.asarray(self.weights, dtype=float)[i] < 100
        if skip_bake:
            ok &= ts >= starts[i] + self.bake
        return np.where(ok, i, -1)

    @property
    def count(self) -> int:
        return len(self.starts)


ONE = Steps([0.0], [50.0])  # no step information: one stratum


def _r(v: Any) -> float:
    return round(float(v), 6)


def _strata(x: np.ndarray, keys: np.ndarray | None, idx: np.ndarray, count: int) -> list[Arm]:
    keys = keys if keys is not None and len(keys) == len(x) else None
    return [Arm.of(x[idx == s], None if keys is None else keys[idx == s])
            for s in range(count)]


def _test(s1: list[Arm], s0: list[Arm], p: Params, k: int, *, margin: float, scale: float,
          binary: bool, rho: float, planned: int, kind: str) -> dict[str, Any]:
    d = decide_strata(s1, s0, margin=margin, scale=scale, alpha=p.alpha, alpha_fail=p.alpha / k,
                      binary=binary, design=p.design, rho=rho, planned=planned,
                      n_max=p.n_max(kind))
    n1, n0 = sum(int(a.n) for a in s1), sum(int(a.n) for a in s0)
    return {"verdict": str(d.verdict), "estimate": float(d.estimate),
            "lower": float(d.lower), "upper": float(d.upper), "design": p.design,
            "alpha_pass": p.alpha, "alpha_fail": p.alpha / k,
            "clustered": any(a.keys is not None for a in s1), "n_challenger": n1,
            "n_champion": n0, "strata": sum(1 for a, b in zip(s1, s0, strict=True)
                                            if a.n > 0 and b.n > 0),
            "n_eff": round(float(d.n_eff), 1), "fraction": round(float(d.fraction), 4),
            "final": bool(d.final)}


def _verdict_text(v: str) -> str:
    return {PASS: "shown within the allowance", FAIL: "shown worse than the allowance",
            WAIT: "not shown either way yet"}[v]


def error_check(ch: Observations, cb: Observations, p: Params, k: int,
                steps: Steps = ONE) -> dict[str, Any]:
    name = "error rate"
    i1 = steps.index(ch.request_ts, ch.requests)
    i0 = steps.index(cb.request_ts, cb.requests)
    n1, n0 = int((i1 >= 0).sum()), int((i0 >= 0).sum())
    if n1 < p.min_requests or n0 < p.min_requests:
        return {"check": name, "verdict": WAIT,
                "detail": f"{n1} challenger / {n0} champion requests; "
                          f"need {p.min_requests} each"}
    s1 = _strata(ch.errors, ch.request_keys, i1, steps.count)
    s0 = _strata(cb.errors, cb.request_keys, i0, steps.count)
    t = _test(s1, s0, p, k, margin=p.max_error_increase, scale=1.0, binary=True,
              rho=max(2 * p.max_error_increase, 0.005), planned=p.min_requests, kind="requests")
    x1, x0 = sum(float(a.total) for a in s1), sum(float(a.total) for a in s0)
    r1, r0 = x1 / n1, x0 / n0
    m = p.max_error_increase
    return {"check": name, "verdict": t["verdict"], "test": t,
            "challenger": round(r1, 6), "champion": round(r0, 6),
            "detail": f"challenger {int(x1)}/{n1} = {r1:.2%} vs champion "
                      f"{int(x0)}/{n0} = {r0:.2%}; excess within steps "
                      f"{t['estimate'] + m:+.2%} (higher is worse), bounds "
                      f"[{t['lower'] + m:+.2%}, {t['upper'] + m:+.2%}] vs allowance +{m:.2%}: "
                      f"{_verdict_text(t['verdict'])}"}


MIN_CLASS_CALIBRATION = 20  # champion requests of a size class before its threshold is used


def size_class(rows: np.ndarray) -> np.ndarray:
    """Request-size class: 0 for 1 row, 1 for 2-3, 2 for 4-7, ... (powers of two)."""
    return np.floor(np.log2(np.maximum(np.asarray(rows, dtype=float), 1))).astype(int)


def _calibration(cb: Observations, p: Params, steps: Steps) -> tuple[np.ndarray, str]:
    """The champion's requests that calibrate t (never tested): its first bake, else its
    first `min_requests` answered requests."""
    n = len(cb.latency_ms)
    cal = np.zeros(n, dtype=bool)
    where = ""
    if cb.latency_ts is not None and len(cb.latency_ts) == n and steps is not ONE:
        cal = np.asarray(cb.latency_ts) < steps.starts[0] + steps.bake
        where = "the champion's requests during the first step's bake"
    if cal.sum() < p.min_requests:  # no times, or a bake too short: its first requests
        cal = np.arange(n) < p.min_requests
        where = f"the champion's first {p.min_requests} answered requests"
    return cal, where


def latency_threshold(cb: Observations, p: Params, steps: Steps = ONE
                      ) -> tuple[float | None, str, np.ndarray]:
    """(t, where it comes from, the champion's answered requests that may be tested)."""
    n = len(cb.latency_ms)
    if p.latency_threshold_ms is not None:
        return float(p.latency_threshold_ms), "the champion's traffic before the rollout", \
            np.ones(n, dtype=bool)
    cal, where = _calibration(cb, p, steps)
    if cal.sum() < p.min_requests:
        return None, where, ~cal
    return float(np.quantile(cb.latency_ms[cal], p.latency_quantile)), where, ~cal


def _sized(ch: Observations, cb: Observations) -> bool:
    """Rows per request known for both arms, in more than one size class."""
    if ch.latency_rows is None or cb.latency_rows is None \
            or len(ch.latency_rows) != len(ch.latency_ms) \
            or len(cb.latency_rows) != len(cb.latency_ms):
        return False
    return len(np.unique(np.r_[size_class(ch.latency_rows),
                               size_class(cb.latency_rows)])) > 1


def _class_thresholds(ch: Observations, cb: Observations, cal: np.ndarray, q: float
                      ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Per request, the champion's calibration quantile of its size class (NaN: a class
    with too few calibration requests, not judged)."""
    c1 = size_class(ch.latency_rows)  # type: ignore[arg-type]
    c0 = size_class(cb.latency_rows)  # type: ignore[arg-type]
    t1, t0 = np.full(len(c1), np.nan), np.full(len(c0), np.nan)
    classes: dict[str, Any] = {}
    for c in np.unique(np.r_[c1, c0]):
        own = cb.latency_ms[cal & (c0 == c)]
        if len(own) < MIN_CLASS_CALIBRATION:
            continue
        t = float(np.quantile(own, q))
        t1[c1 == c], t0[c0 == c] = t, t
        lo = 2 ** int(c)
        classes[f"{lo}-{2 * lo - 1}" if lo > 1 else "1"] = {
            "threshold_ms": round(t, 3), "challenger": int((c1 == c).sum()),
            "champion": int((c0 == c).sum())}
    return t1, t0, classes


def latency_check(ch: Observations, cb: Observations, p: Params, k: int,
                  steps: Steps = ONE) -> dict[str, Any]:
    q = p.latency_quantile
    name = f"p{q * 100:g} latency (non-inferiority)"
    if not (ch.has_latencies and cb.has_latencies):
        return {"check": name, "verdict": PASS, "skipped": True,
                "detail": "not judged: aggregate metrics carry no per-request latencies"}
    t_ms, where, testable = latency_threshold(cb, p, steps)
    if t_ms is None:
        return {"check": name, "verdict": WAIT,
                "detail": f"no latency threshold yet: {where} number fewer than "
                          f"{p.min_requests}"}
    i1 = steps.index(ch.latency_ts, len(ch.latency_ms), skip_bake=True)
    i0 = np.where(testable, steps.index(cb.latency_ts, len(cb.latency_ms), skip_bake=True), -1)
    t1 = np.full(len(ch.latency_ms), t_ms)
    t0 = np.full(len(cb.latency_ms), t_ms)
    classes: dict[str, Any] = {}
    if _sized(ch, cb):
        cal, where = _calibration(cb, p, steps)
        t1, t0, classes = _class_thresholds(ch, cb, cal, q)
        i1 = np.where(np.isnan(t1), -1, i1)
        i0 = np.where(np.isnan(t0) | cal, -1, i0)
        where += ", per request-size class"
    n1, n0 = int((i1 >= 0).sum()), int((i0 >= 0).sum())
    need = p.min_requests
    if n1 < need or n0 < need:
        return {"check": name, "verdict": WAIT, "size_classes": classes,
                "detail": f"{n1} challenger / {n0} champion answered requests after the "
                          f"bakes" + (" in calibrated request-size classes" if classes else "")
                          + f"; need {need} each"}
    slow_at = p.max_latency_ratio * t_ms + p.latency_slack_ms
    with np.errstate(invalid="ignore"):
        x1 = (ch.latency_ms > p.max_latency_ratio * t1 + p.latency_slack_ms).astype(float)
        x0 = (cb.latency_ms > t0).astype(float)
    s1 = _strata(x1, ch.latency_keys, i1, steps.count)
    s0 = _strata(x0, cb.latency_keys, i0, steps.count)
    t = _test(s1, s0, p, k, margin=0.0, scale=1.0, binary=True, rho=1 - q, planned=need,
              kind="latency")
    sh1, sh0 = float(x1[i1 >= 0].mean()), float(x0[i0 >= 0].mean())
    return {"check": name, "verdict": t["verdict"], "test": t,
            "threshold_ms": round(t_ms, 3), "limit_ms": round(slow_at, 3),
            "size_classes": classes,
            "not_judged": int((i1 < 0).sum()) if classes else 0,
            "detail": f"{sh1:.1%} of challenger requests slower than {slow_at:.2f} ms "
                      f"({p.max_latency_ratio:g} x {t_ms:.2f} + {p.latency_slack_ms:g}) vs "
                      f"{sh0:.1%} of champion requests slower than {t_ms:.2f} ms, its "
                      f"p{q * 100:g} on {where} (fixed; bakes not tested); difference within "
                      f"steps {t['estimate']:+.1%} (higher is worse), bounds "
                      f"[{t['lower']:+.1%}, {t['upper']:+.1%}] vs 0: "
                      f"{_verdict_text(t['verdict'])}"}


def _non_integer(values: list[Any]) -> bool | None:
    """True when some value is a non-integer number; None when not all are numbers."""
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    return any(f != int(f) for f in floats if np.isfinite(f))


def quality_metric(p: Params, ch: Observations, cb: Observations) -> str:
    if p.quality_metric != "auto":
        return p.quality_metric
    if p.task in ("regression", "classification"):
        return "mae" if p.task == "regression" else "accuracy"
    labels = [*ch.labels[:200], *cb.labels[:200]]
    preds = [*ch.predictions[:200], *cb.predictions[:200]]
    if _non_integer(labels) is None:
        return "accuracy"
    # a regressor's predictions are non-integer even when its labels are whole numbers
    return "mae" if _non_integer(labels) or _non_integer(preds) else "accuracy"


def _losses(metric: str, obs: Observations) -> np.ndarray:
    if metric == "accuracy":
        return np.array([str(a) != str(b) for a, b in zip(obs.predictions, obs.labels,
                                                          strict=False)], dtype=float)
    e = np.asarray(obs.predictions, dtype=float) - np.asarray(obs.labels, dtype=float)
    return np.abs(e) if metric == "mae" else e * e


def quality_check(ch: Observations, cb: Observations, p: Params, k: int,
                  steps: Steps = ONE) -> dict[str, Any]:
    metric = quality_metric(p, ch, cb)
    name = f"{metric} (non-inferiority)"
    i1 = steps.index(ch.label_ts, len(ch.labels))
    i0 = steps.index(cb.label_ts, len(cb.labels))
    n1, n0 = int((i1 >= 0).sum()), int((i0 >= 0).sum())
    if n1 < p.min_samples or n0 < p.min_samples:
        return {"check": name, "verdict": WAIT,
                "detail": f"{n1} challenger / {n0} champion labelled instances; need "
                          f"{p.min_samples} each"}
    try:
        x1, x0 = _losses(metric, ch), _losses(metric, cb)
    except (TypeError, ValueError):
        return {"check": name, "verdict": FAIL,
                "detail": f"{metric} needs numeric predictions and labels"}
    s1 = _strata(x1, ch.label_keys, i1, steps.count)
    s0 = _strata(x0, cb.label_keys, i0, steps.count)
    m1, m0 = float(x1[i1 >= 0].mean()), float(x0[i0 >= 0].mean())
    if metric == "accuracy":
        t = _test(s1, s0, p, k, margin=p.margin, scale=1.0, binary=True, rho=2 * p.margin,
                  planned=p.min_samples, kind="labels")
        acc1, acc0 = 1 - m1, 1 - m0
        detail = (f"challenger accuracy {acc1:.2%} on {n1} vs champion {acc0:.2%} on {n0}; "
                  f"difference within steps {-(t['estimate'] + p.margin):+.2%} (higher is "
                  f"better), lower bound {-(t['upper'] + p.margin):+.2%} vs allowance "
                  f"-{p.margin:.2%}: {_verdict_text(t['verdict'])}")
    else:
        t = _test(s1, s0, p, k, margin=0.0, scale=1 + p.margin, binary=False,
                  rho=max(2 * p.margin * m0, 1e-9), planned=p.min_samples, kind="labels")
        detail = (f"challenger {metric} {m1:.4g} on {n1} vs champion {m0:.4g} on "
                  f"{n0} (lower is better); allowance x{1 + p.margin:g}, excess over it "
                  f"{t['estimate']:+.4g} with bounds [{t['lower']:+.4g}, {t['upper']:+.4g}] vs "
                  f"0: {_verdict_text(t['verdict'])}")
    return {"check": name, "verdict": t["verdict"], "test": t, "metric": metric,
            "detail": detail}


def shadow_check(sh: dict[str, int], p: Params, k: int) -> dict[str, Any] | None:
    if not sh.get("compared"):
        return None
    n, x = sh["compared"], sh["disagreements"]
    rate = x / n
    base = {"check": "shadow disagreement", "rate": round(rate, 6), "compared": n}
    if p.max_disagreement is None:
        return {**base, "verdict": PASS,
                "detail": f"{x}/{n} = {rate:.2%} of shadowed answers differ (reported only)"}
    if n < p.min_requests:
        return {**base, "verdict": WAIT, "detail": f"{x}/{n} shadowed answers compared; need "
                                                   f"{p.min_requests}"}
    c = p.max_disagreement
    d = decide_rate(x, n, ceiling=c, alpha=p.alpha, alpha_fail=p.alpha / k,
                    rho=max(c / 2, 0.005))
    v = str(d.verdict)
    return {**base, "verdict": v,
            "test": {"lower": float(d.lower) + c, "upper": float(d.upper) + c},
            "detail": f"{x}/{n} = {rate:.2%} of shadowed answers differ, bounds "
                      f"[{float(d.lower) + c:.2%}, {float(d.upper) + c:.2%}] vs ceiling "
                      f"{c:.2%}: " + {PASS: "shown below it", FAIL: "shown above it",
                                      WAIT: "not shown either way yet"}[v]}


def analyse(challenger: Observations, champion: Observations, shadow: dict[str, int],
            p: Params, *, now: float, steps: Steps | None = None,
            shown: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Judge the challenger on one rollout; return the checks and the verdict.

    `steps`: the rollout's steps so far (strata; None: one stratum); `shown`: checks shown
    within their allowance at an earlier look of this rollout (they stay passed unless they
    now fail)."""
    st = steps or ONE
    k = 3 + (p.max_disagreement is not None)  # the tests that can roll back share alpha
    checks = [error_check(challenger, champion, p, k, st),
              latency_check(challenger, champion, p, k, st),
              quality_check(challenger, champion, p, k, st)]
    sh = shadow_check(shadow, p, k)
    if sh is not None:
        checks.append(sh)
    for c in checks:
        if c["check"] in shown and c["verdict"] == WAIT:
            c["verdict"] = PASS
            c["detail"] += " (shown within the allowance at an earlier look)"
    verdicts = [c["verdict"] for c in checks]
    verdict = FAIL if FAIL in verdicts else WAIT if WAIT in verdicts else PASS
    failed = [c["check"] for c in checks if c["verdict"] == FAIL]
    waiting = [c["check"] for c in checks if c["verdict"] == WAIT]
    exhausted = [c["check"] for c in checks
                 if c["verdict"] == WAIT and c.get("test", {}).get("final")]
    summary = ("failed: " + ", ".join(failed) if failed else
               "waiting for: " + ", ".join(waiting) if waiting else "all checks passed")
    return {"verdict": verdict, "summary": summary, "checks": checks,
            "shown": sorted({c["check"] for c in checks if c["verdict"] == PASS}),
            "exhausted": exhausted, "design": p.design,
            "variants": {"challenger": challenger.summary(), "champion": champion.summary()},
            "shadow": shadow, "time": now}


__all__ = ["FIXED", "QUALITY_METRICS", "Observations", "Params", "Steps", "analyse"]
