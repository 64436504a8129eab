"""The canary's judge: the challenger against the champion serving at the same time, on one
rollout's observations. Pure: data in, checks and a verdict out (no clock, no files).

Checks (each one contrast of `mlci.stats.sequential`, judged on all of the rollout's data so
far; losses are oriented so that larger is worse):

- **error rate**: share of failed requests; the challenger's may exceed the champion's by at
  most `max_error_increase`;
- **latency**: a non-inferiority test on the `latency_quantile` (default p95). The champion's
  answered requests are split by position in the rollout, not by latency: every other one
  (even positions) calibrates t, the champion's quantile, recomputed at every look on the
  whole calibration half so far; the others (odd positions) are tested. The challenger
  passes when the share of its requests slower than `max_latency_ratio * t +
  latency_slack_ms` is shown to be below the share of the tested champion requests at or
  above t, i.e. its quantile is at most ratio * champion's + slack (the minimum effect size);
  it fails when shown above. A challenger exactly at the allowance has both shares equal
  whatever t is, so a threshold that moves as the calibration half grows keeps the error
  rates (`bench/decisions.py` simulates this design), and t tracks the whole rollout instead
  of its first instants. When the rows per request are known, t is calibrated per
  request-size class (1, 2-3, 4-7, ... rows) and each request is compared with the
  threshold of its class: latency grows with a request's rows, so a client steering large
  requests to one variant no longer moves the verdict (requests of a class the champion has
  too few of to calibrate are not judged, and the detail says how many);
- **quality** on labelled feedback: accuracy (0/1 loss, absolute margin `margin`) for
  classifiers, MAE or MSE (relative margin: the challenger's may be at most (1 + margin) times
  the champion's) for regressors;
- **shadow disagreement** (when shadowing): a ceiling on the share of differing answers,
  applied only when `max_disagreement` is set.

Every test passes at level `alpha` (an intersection-union test: promoting a challenger that is
worse on any check by its allowance has probability at most alpha) and fails at
`alpha / (number of tests)` (rolling back a challenger within every allowance has probability at
most alpha). With `design="sequential"` (default) the bounds are confidence sequences, valid at
every look; with `design="fixed"` each test is judged once, at `min_requests` requests /
`min_samples` labels per arm. Requests carrying a routing key are clustered by it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mlci.stats.sequential import FAIL, PASS, SEQUENTIAL, WAIT, Arm, decide

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
    deadline: float = 1800.0       # seconds an inconclusive step may wait after its bake
    poll: float = 5.0
    design: str = SEQUENTIAL       # sequential | fixed
    quality_metric: str = "auto"   # auto | accuracy | mae | mse

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Params:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Observations:
    """One variant over one rollout: per request and per labelled instance."""

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


def _r(v: Any) -> float:
    return round(float(v), 6)


def _arm(x: np.ndarray, keys: np.ndarray | None) -> Arm:
    return Arm.of(x, keys if keys is not None and len(keys) == len(x) else None)


def _test(a1: Arm, a0: Arm, p: Params, k: int, *, margin: float, scale: float, binary: bool,
          rho: float, planned: int) -> dict[str, Any]:
    d = decide(a1, a0, margin=margin, scale=scale, alpha=p.alpha, alpha_fail=p.alpha / k,
               binary=binary, design=p.design, rho=rho, planned=planned)
    return {"verdict": str(d.verdict), "estimate": float(d.estimate),
            "lower": float(d.lower), "upper": float(d.upper), "design": p.design,
            "alpha_pass": p.alpha, "alpha_fail": p.alpha / k, "clustered":
                a1.keys is not None, "n_challenger": int(a1.n), "n_champion": int(a0.n)}


def _verdict_text(v: str) -> str:
    return {PASS: "shown within the allowance", FAIL: "shown worse than the allowance",
            WAIT: "not shown either way yet"}[v]


def error_check(ch: Observations, cb: Observations, p: Params, k: int) -> dict[str, Any]:
    name = "error rate"
    if ch.requests < p.min_requests or cb.requests < p.min_requests:
        return {"check": name, "verdict": WAIT,
                "detail": f"{ch.requests} challenger / {cb.requests} champion requests; "
                          f"need {p.min_requests} each"}
    a1, a0 = _arm(ch.errors, ch.request_keys), _arm(cb.errors, cb.request_keys)
    t = _test(a1, a0, p, k, margin=p.max_error_increase, scale=1.0, binary=True,
              rho=max(2 * p.max_error_increase, 0.005), planned=p.min_requests)
    r1, r0 = float(a1.mean), float(a0.mean)
    m = p.max_error_increase
    return {"check": name, "verdict": t["verdict"], "test": t,
            "challenger": round(r1, 6), "champion": round(r0, 6),
            "detail": f"challenger {int(a1.total)}/{int(a1.n)} = {r1:.2%} vs champion "
                      f"{int(a0.total)}/{int(a0.n)} = {r0:.2%}; excess {r1 - r0:+.2%} "
                      f"(higher is worse), bounds [{t['lower'] + m:+.2%}, {t['upper'] + m:+.2%}]"
                      f" vs allowance +{m:.2%}: {_verdict_text(t['verdict'])}"}


MIN_CLASS_CALIBRATION = 20  # champion requests of a size class before its threshold is used


def size_class(rows: np.ndarray) -> np.ndarray:
    """Request-size class: 0 for 1 row, 1 for 2-3, 2 for 4-7, ... (powers of two)."""
    return np.floor(np.log2(np.maximum(np.asarray(rows, dtype=float), 1))).astype(int)


def _thresholds(ch: Observations, cb: Observations, q: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Per request: the champion's quantile t for its size class (NaN: not judged), for the
    challenger's requests and the champion's tested half; and the calibration half."""
    cal = cb.latency_ms[0::2]
    sized = ch.latency_rows is not None and cb.latency_rows is not None \
        and len(ch.latency_rows) == len(ch.latency_ms) \
        and len(cb.latency_rows) == len(cb.latency_ms)
    if not sized:
        t = float(np.quantile(cal, q))
        return np.full(len(ch.latency_ms), t), np.full(len(cb.latency_ms[1::2]), t), cal, {}
    c1 = size_class(ch.latency_rows)  # type: ignore[arg-type]
    c0 = size_class(cb.latency_rows)  # type: ignore[arg-type]
    ccal, crest = c0[0::2], c0[1::2]
    t1, t0 = np.full(len(c1), np.nan), np.full(len(crest), np.nan)
    classes: dict[str, Any] = {}
    for c in np.unique(np.r_[c1, crest]):
        own = cal[ccal == c]
        if len(own) < MIN_CLASS_CALIBRATION:
            continue
        t = float(np.quantile(own, q))
        t1[c1 == c], t0[crest == c] = t, t
        lo = 2 ** int(c)
        classes[f"{lo}-{2 * lo - 1}" if lo > 1 else "1"] = {
            "threshold_ms": round(t, 3), "challenger": int((c1 == c).sum()),
            "champion": int((crest == c).sum())}
    return t1, t0, cal, classes


def latency_check(ch: Observations, cb: Observations, p: Params, k: int) -> dict[str, Any]:
    q = p.latency_quantile
    name = f"p{q * 100:g} latency (non-inferiority)"
    if not (ch.has_latencies and cb.has_latencies):
        return {"check": name, "verdict": PASS, "skipped": True,
                "detail": "not judged: aggregate metrics carry no per-request latencies"}
    need = p.min_requests
    if len(ch.latency_ms) < need or len(cb.latency_ms) < 2 * need:
        return {"check": name, "verdict": WAIT,
                "detail": f"{len(ch.latency_ms)} challenger / {len(cb.latency_ms)} champion "
                          f"answered requests; need {need} / {2 * need} (every other "
                          "champion request calibrates its quantile)"}
    # split by position, independent of latency: even positions calibrate, odd ones are tested
    rest = cb.latency_ms[1::2]
    t1, t0, cal, classes = _thresholds(ch, cb, q)
    j1, j0 = ~np.isnan(t1), ~np.isnan(t0)  # judged: their size class is calibrated
    if j1.sum() < need or j0.sum() < need:
        return {"check": name, "verdict": WAIT, "size_classes": classes,
                "detail": f"{int(j1.sum())} challenger / {int(j0.sum())} champion requests "
                          f"in request-size classes with {MIN_CLASS_CALIBRATION}+ champion "
                          f"requests to calibrate; need {need} each"}
    t_ms = float(np.nanmedian(t1[j1]))  # the typical threshold, for the detail
    slow_at = p.max_latency_ratio * t_ms + p.latency_slack_ms
    x1 = (ch.latency_ms[j1] > p.max_latency_ratio * t1[j1] + p.latency_slack_ms).astype(float)
    x0 = (rest[j0] >= t0[j0]).astype(float)  # ties at t count as slow (timer steps)
    keys1 = ch.latency_keys[j1] if ch.latency_keys is not None else None
    keys0 = cb.latency_keys[1::2][j0] if cb.latency_keys is not None else None
    a1, a0 = _arm(x1, keys1), _arm(x0, keys0)
    t = _test(a1, a0, p, k, margin=0.0, scale=1.0, binary=True, rho=1 - q, planned=need)
    return {"check": name, "verdict": t["verdict"], "test": t,
            "threshold_ms": round(t_ms, 3), "limit_ms": round(slow_at, 3),
            "calibration_n": len(cal), "size_classes": classes,
            "not_judged": int((~j1).sum() + (~j0).sum()),
            "detail": f"{x1.mean():.1%} of challenger requests slower than {slow_at:.2f} ms "
                      f"({p.max_latency_ratio:g} x {t_ms:.2f} + {p.latency_slack_ms:g}) vs "
                      f"{x0.mean():.1%} of champion requests at or above {t_ms:.2f} ms, its "
                      f"p{q * 100:g} on the other {len(cal)} of its requests (every other one "
                      f"of the rollout); difference {t['estimate']:+.1%} (higher is worse), "
                      f"bounds [{t['lower']:+.1%}, {t['upper']:+.1%}] vs 0: "
                      f"{_verdict_text(t['verdict'])}"}


def quality_metric(p: Params, ch: Observations, cb: Observations) -> str:
    if p.quality_metric != "auto":
        return p.quality_metric
    values = [*ch.labels[:50], *cb.labels[:50]]
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        return "accuracy"
    return "mae" if floats and any(f != int(f) for f in floats) else "accuracy"


def _losses(metric: str, obs: Observations) -> np.ndarray:
    if metric == "accuracy":
        return np.array([str(a) != str(b) for a, b in zip(obs.predictions, obs.labels,
                                                          strict=False)], dtype=float)
    e = np.asarray(obs.predictions, dtype=float) - np.asarray(obs.labels, dtype=float)
    return np.abs(e) if metric == "mae" else e * e


def quality_check(ch: Observations, cb: Observations, p: Params, k: int) -> dict[str, Any]:
    metric = quality_metric(p, ch, cb)
    name = f"{metric} (non-inferiority)"
    n1, n0 = len(ch.labels), len(cb.labels)
    if n1 < p.min_samples or n0 < p.min_samples:
        return {"check": name, "verdict": WAIT,
                "detail": f"{n1} challenger / {n0} champion labelled instances; need "
                          f"{p.min_samples} each"}
    try:
        x1, x0 = _losses(metric, ch), _losses(metric, cb)
    except (TypeError, ValueError):
        return {"check": name, "verdict": FAIL,
                "detail": f"{metric} needs numeric predictions and labels"}
    a1, a0 = _arm(x1, ch.label_keys), _arm(x0, cb.label_keys)
    if metric == "accuracy":
        t = _test(a1, a0, p, k, margin=p.margin, scale=1.0, binary=True, rho=2 * p.margin,
                  planned=p.min_samples)
        acc1, acc0 = 1 - float(a1.mean), 1 - float(a0.mean)
        detail = (f"challenger accuracy {acc1:.2%} on {n1} vs champion {acc0:.2%} on {n0}; "
                  f"difference {acc1 - acc0:+.2%} (higher is better), lower bound "
                  f"{-(t['upper'] + p.margin):+.2%} vs allowance -{p.margin:.2%}: "
                  f"{_verdict_text(t['verdict'])}")
    else:
        base = float(a0.mean)
        t = _test(a1, a0, p, k, margin=0.0, scale=1 + p.margin, binary=False,
                  rho=max(2 * p.margin * base, 1e-9), planned=p.min_samples)
        detail = (f"challenger {metric} {float(a1.mean):.4g} on {n1} vs champion {base:.4g} on "
                  f"{n0} (lower is better); allowance x{1 + p.margin:g}, excess over it "
                  f"{t['estimate']:+.4g} with bounds [{t['lower']:+.4g}, {t['upper']:+.4g}] vs "
                  f"0: {_verdict_text(t['verdict'])}")
    return {"check": name, "verdict": t["verdict"], "test": t, "metric": metric,
            "detail": detail}


def shadow_check(sh: dict[str, int], p: Params) -> dict[str, Any] | None:
    if not sh.get("compared"):
        return None
    rate = sh["disagreements"] / sh["compared"]
    verdict = PASS
    if p.max_disagreement is not None:
        if sh["compared"] < p.min_requests:
            verdict = WAIT
        elif rate > p.max_disagreement:
            verdict = FAIL
    limit = f" (limit {p.max_disagreement:.2%})" if p.max_disagreement is not None else \
        " (reported only)"
    return {"check": "shadow disagreement", "verdict": verdict, "rate": round(rate, 6),
            "compared": sh["compared"],
            "detail": f"{sh['disagreements']}/{sh['compared']} = {rate:.2%} of shadowed answers "
                      f"differ{limit}"}


def analyse(challenger: Observations, champion: Observations, shadow: dict[str, int],
            p: Params, *, now: float) -> dict[str, Any]:
    """Judge the challenger on one rollout; return the checks and the verdict."""
    k = 3  # the tests that can roll back: their fail levels share alpha
    checks = [error_check(challenger, champion, p, k),
              latency_check(challenger, champion, p, k),
              quality_check(challenger, champion, p, k)]
    sh = shadow_check(shadow, p)
    if sh is not None:
        checks.append(sh)
    verdicts = [c["verdict"] for c in checks]
    verdict = FAIL if FAIL in verdicts else WAIT if WAIT in verdicts else PASS
    failed = [c["check"] for c in checks if c["verdict"] == FAIL]
    waiting = [c["check"] for c in checks if c["verdict"] == WAIT]
    summary = ("failed: " + ", ".join(failed) if failed else
               "waiting for: " + ", ".join(waiting) if waiting else "all checks passed")
    return {"verdict": verdict, "summary": summary, "checks": checks,
            "variants": {"challenger": challenger.summary(), "champion": champion.summary()},
            "shadow": shadow, "time": now}
