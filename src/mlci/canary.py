"""The canary controller: roll a challenger out step by step and judge it at every step.

A rollout is a state file (`<out>/canary/state.json`, see `mlci.serve.state`) that the gateway
follows at runtime, plus the registry aliases `challenger` (during the rollout) and `champion`
(moved only on promotion). At each step the controller reads the prediction log of this
rollout and judges the challenger against the champion serving at the same time:

- **error rate**: the challenger's share of failed requests may exceed the champion's by at
  most `max_error_increase` (judged once each side has `min_requests` requests);
- **p99 latency**: the challenger's p99 model time may be at most
  `champion p99 * max_latency_ratio + latency_slack_ms`;
- **quality**: labelled-feedback accuracy, a one-sided non-inferiority test of
  `d = acc(challenger) - acc(champion)` with margin `m` at level `alpha`:
  H0: d <= -m against H1: d > -m. The statistic is the Wald z with the Agresti-Caffo
  adjustment (one success and one failure added to each arm), which keeps its level near the
  nominal one at small samples and near-perfect accuracies where the plain Wald test breaks.
  The challenger *passes* when H0 is rejected; it *fails* when the mirror test
  (H0: d >= -m against H1: d < -m) rejects, i.e. it is shown to be worse by more than the
  margin; otherwise the result is inconclusive and the step waits for more labels. Below
  `min_samples` labelled instances on either side the test is not run at all (inconclusive);
- **shadow disagreement** (when shadowing): the share of champion traffic on which the
  challenger's answer differs; a ceiling applies only when `max_disagreement` is set.

Any failure rolls back at once; otherwise an inconclusive step waits, up to `deadline` seconds
after its bake time, and then rolls back (a rollout that cannot show the challenger is not worse
does not promote it). Samples accumulate over the whole rollout (the models do not change
between steps), so later steps need no new minimum. The waiting looks at the data more than
once; the deadline bounds how often, and `alpha` is per look (documented in docs/canary.md).
"""

from __future__ import annotations

import fcntl
import json
import math
import time
import uuid
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import MlciError
from mlci.serve.state import (
    PROMOTED,
    ROLLED_BACK,
    CanaryState,
    read_state,
    state_path,
    write_state,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

PASS, FAIL, WAIT = "pass", "fail", "wait"
CHALLENGER_ALIAS = "challenger"


# ---------------------------------------------------------------- statistics


def norm_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def norm_ppf(p: float) -> float:
    """Inverse of the standard normal CDF (Acklam's rational approximation, refined by one
    Newton step; error below 1e-12 on (1e-12, 1 - 1e-12))."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
         3.754408661907416e00)
    lo = 0.02425
    if p < lo:
        q = math.sqrt(-2 * math.log(p))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    elif p > 1 - lo:
        q = math.sqrt(-2 * math.log(1 - p))
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    else:
        q = p - 0.5
        r = q * q
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / \
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    e = norm_cdf(x) - p
    u = e * math.sqrt(2 * math.pi) * math.exp(x * x / 2)
    return x - u / (1 + x * u / 2)


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    z = norm_ppf(1 - (1 - confidence) / 2)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


@dataclass
class NonInferiority:
    """Result of the one-sided non-inferiority test on an accuracy difference."""

    x_challenger: int
    n_challenger: int
    x_champion: int
    n_champion: int
    margin: float
    alpha: float
    diff: float            # observed accuracy difference (challenger - champion)
    diff_adjusted: float   # Agresti-Caffo adjusted difference
    se: float
    z: float               # (diff_adjusted + margin) / se
    p_value: float         # H0: d <= -margin (small: challenger is not worse than the margin)
    p_inferior: float      # H0: d >= -margin (small: challenger is worse than the margin)
    lower: float           # one-sided (1 - alpha) lower confidence bound of d
    verdict: str           # pass | fail | wait

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def non_inferiority(x1: int, n1: int, x0: int, n0: int, margin: float,
                    alpha: float = 0.05) -> NonInferiority:
    """One-sided non-inferiority z-test of p1 - p0 > -margin (arm 1: challenger)."""
    if n1 <= 0 or n0 <= 0:
        raise ValueError("both arms need at least one labelled sample")
    if not (0 <= x1 <= n1 and 0 <= x0 <= n0):
        raise ValueError("successes must lie between 0 and the sample size")
    if not (0 <= margin < 1 and 0 < alpha < 0.5):
        raise ValueError("need 0 <= margin < 1 and 0 < alpha < 0.5")
    p1, p0 = (x1 + 1) / (n1 + 2), (x0 + 1) / (n0 + 2)
    se = math.sqrt(p1 * (1 - p1) / (n1 + 2) + p0 * (1 - p0) / (n0 + 2))
    d_adj = p1 - p0
    z = (d_adj + margin) / se
    p_value = 1 - norm_cdf(z)
    p_inf = norm_cdf(z)
    lower = d_adj - norm_ppf(1 - alpha) * se
    verdict = PASS if p_value < alpha else FAIL if p_inf < alpha else WAIT
    return NonInferiority(x1, n1, x0, n0, margin, alpha, x1 / n1 - x0 / n0, d_adj, se, z,
                          p_value, p_inf, lower, verdict)


# ---------------------------------------------------------------- the judgement


@dataclass
class Params:
    steps: list[float]
    bake: float = 60.0             # seconds at each step before judging
    min_samples: int = 200         # labelled instances per arm before the quality test
    min_requests: int = 50         # requests per arm before error rate and latency
    margin: float = 0.02           # non-inferiority margin on accuracy
    alpha: float = 0.05
    max_error_increase: float = 0.01
    max_latency_ratio: float = 1.5
    latency_slack_ms: float = 2.0
    max_disagreement: float | None = None
    deadline: float = 1800.0       # seconds an inconclusive step may wait after its bake
    poll: float = 5.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Params:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def parse_steps(text: str) -> list[float]:
    try:
        steps = [float(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise MlciError(f"--steps {text!r}: give increasing percentages like 5,25,50,100") \
            from None
    if not steps or any(not (0 < s <= 100) for s in steps) \
            or any(b <= a for a, b in zip(steps, steps[1:], strict=False)) or steps[-1] != 100:
        raise MlciError(f"--steps {text!r}: percentages must increase, lie in (0, 100] and "
                        "end at 100")
    return steps


def analyse(stats: dict[str, Any], p: Params) -> dict[str, Any]:
    """Judge the challenger on one rollout's stats; return the checks and the verdict."""
    ch, cb = stats["variants"]["challenger"], stats["variants"]["champion"]
    checks: list[dict[str, Any]] = []

    # error rate
    if ch.requests < p.min_requests or cb.requests < p.min_requests:
        checks.append({"check": "error rate", "verdict": WAIT,
                       "detail": f"{ch.requests} challenger / {cb.requests} champion requests; "
                                 f"need {p.min_requests} each"})
    else:
        limit = cb.error_rate + p.max_error_increase
        ok = ch.error_rate <= limit
        checks.append({"check": "error rate", "verdict": PASS if ok else FAIL,
                       "challenger": round(ch.error_rate, 6), "champion": round(cb.error_rate, 6),
                       "limit": round(limit, 6),
                       "detail": f"challenger {ch.errors}/{ch.requests} = {ch.error_rate:.2%} vs "
                                 f"champion {cb.errors}/{cb.requests} = {cb.error_rate:.2%} "
                                 f"(limit {limit:.2%})"})

    # p99 latency
    ok_c, ok_b = ch.answered, cb.answered
    if ok_c < p.min_requests or ok_b < p.min_requests:
        checks.append({"check": "p99 latency", "verdict": WAIT,
                       "detail": f"{ok_c} challenger / {ok_b} champion answered requests; "
                                 f"need {p.min_requests} each"})
    else:
        c99, b99 = ch.p99(), cb.p99()
        limit = b99 * p.max_latency_ratio + p.latency_slack_ms
        ok = c99 <= limit
        checks.append({"check": "p99 latency", "verdict": PASS if ok else FAIL,
                       "challenger_ms": round(c99, 3), "champion_ms": round(b99, 3),
                       "limit_ms": round(limit, 3),
                       "detail": f"challenger {c99:.2f} ms vs champion {b99:.2f} ms "
                                 f"(limit {limit:.2f} ms)"})

    # quality on labelled feedback
    if ch.labelled < p.min_samples or cb.labelled < p.min_samples:
        checks.append({"check": "accuracy (non-inferiority)", "verdict": WAIT,
                       "detail": f"{ch.labelled} challenger / {cb.labelled} champion labelled "
                                 f"instances; need {p.min_samples} each"})
    else:
        t = non_inferiority(ch.correct, ch.labelled, cb.correct, cb.labelled, p.margin,
                            p.alpha)
        lo1, hi1 = wilson(ch.correct, ch.labelled)
        lo0, hi0 = wilson(cb.correct, cb.labelled)
        what = {PASS: "not worse than the margin", FAIL: "worse by more than the margin",
                WAIT: "inconclusive"}[t.verdict]
        checks.append({
            "check": "accuracy (non-inferiority)", "verdict": t.verdict, "test": t.to_dict(),
            "detail": f"challenger {ch.correct}/{ch.labelled} = {ch.accuracy:.2%} "
                      f"[{lo1:.2%}, {hi1:.2%}] vs champion {cb.correct}/{cb.labelled} = "
                      f"{cb.accuracy:.2%} [{lo0:.2%}, {hi0:.2%}]; difference {t.diff:+.2%}, "
                      f"{1 - p.alpha:.0%} lower bound {t.lower:+.2%} vs margin -{p.margin:.2%}, "
                      f"z = {t.z:.2f}, p = {t.p_value:.4g} (H0: worse by the margin), "
                      f"p = {t.p_inferior:.4g} (H0: not worse by the margin): {what}"})

    # shadow disagreement
    sh = stats["shadow"]
    if sh["compared"]:
        rate = sh["disagreements"] / sh["compared"]
        verdict = PASS
        if p.max_disagreement is not None:
            if sh["compared"] < p.min_requests:
                verdict = WAIT
            elif rate > p.max_disagreement:
                verdict = FAIL
        checks.append({"check": "shadow disagreement", "verdict": verdict,
                       "rate": round(rate, 6), "compared": sh["compared"],
                       "detail": f"{sh['disagreements']}/{sh['compared']} = {rate:.2%} of "
                                 "shadowed answers differ"
                                 + (f" (limit {p.max_disagreement:.2%})"
                                    if p.max_disagreement is not None else " (reported only)")})

    verdicts = [c["verdict"] for c in checks]
    verdict = FAIL if FAIL in verdicts else WAIT if WAIT in verdicts else PASS
    failed = [c["check"] for c in checks if c["verdict"] == FAIL]
    waiting = [c["check"] for c in checks if c["verdict"] == WAIT]
    summary = ("failed: " + ", ".join(failed) if failed else
               "waiting for: " + ", ".join(waiting) if waiting else "all checks passed")
    return {"verdict": verdict, "summary": summary, "checks": checks,
            "variants": {"challenger": ch.summary(), "champion": cb.summary()},
            "shadow": sh, "time": time.time()}


# ---------------------------------------------------------------- the controller


class Controller:
    """Drives one model's rollout from `<out>`; every change is persisted before it is
    acted on elsewhere, and audited."""

    def __init__(self, cfg: Any, out_dir: Path, name: str, *, log_path: Path | None = None,
                 gateway: str | None = None, echo: Callable[[str], None] = print) -> None:
        self.cfg, self.out_dir, self.name = cfg, Path(out_dir), name
        self.path = state_path(self.out_dir)
        self.log_path = Path(log_path) if log_path else self.out_dir / "predictions.db"
        self.gateway = gateway.rstrip("/") if gateway else None
        self.echo = echo
        self._client = None
        self.backend: Any = None  # e.g. mlci.serve.kserve.KServeBackend: follows each state

    # -- plumbing

    @property
    def client(self):
        if self._client is None:
            from mlci import registry, tracking

            self._client = tracking.client(self.cfg, self.out_dir)
            registry.require_model(self._client, self.name)
        return self._client

    def uri(self) -> str:
        from mlci import tracking

        return tracking.tracking_uri(self.cfg, self.out_dir)

    def state(self) -> CanaryState | None:
        try:
            st = read_state(self.path)
        except ValueError as exc:
            raise MlciError(f"{self.path}: damaged rollout state ({exc})") from None
        if st is not None and st.model != self.name:
            raise MlciError(f"{self.path} holds a rollout of {st.model!r}, not {self.name!r}")
        return st

    def active(self) -> CanaryState:
        st = self.state()
        if st is None or not st.running:
            raise MlciError(f"no canary of {self.name} is running (start one with "
                            "`mlci canary start --version N`)")
        return st

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """One controller at a time per `<out>` (a second one fails fast, exit 2)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path.parent / "controller.lock", "w")  # noqa: SIM115
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise MlciError(f"another canary controller is working on {self.path}") \
                    from None
            yield
        finally:
            fh.close()

    def _record(self, ev: dict[str, Any]) -> str:
        """Append one audit event described by `ev` (see `_commit`)."""
        from mlci import audit
        from mlci.registry import _event, record_canary

        if ev["kind"] == "decision":
            return record_canary(self.client, self.out_dir, self.uri(), self.name,
                                 ev["message"], ev["frm"], ev["to"], ev["reason"],
                                 evidence_digest=ev["digest"])
        exp = audit.experiment_id(self.client, self.name, self.out_dir, self.uri())
        e = _event("canary", self.name, CHALLENGER_ALIAS, ev["frm"], ev["to"],
                   reason=ev.get("reason"), message=ev["message"],
                   evidence_digest=ev.get("digest"))
        return audit.record(self.client, exp, e)

    def _commit(self, st: CanaryState, ev: dict[str, Any]) -> None:
        """Persist the state together with the audit event it owes, then record the event.

        The event is part of the state written first, so a controller killed in between
        records it on its next start (`recover`): every step reaches the audit trail at
        least once (twice only if killed between recording and the final write)."""
        st.pending_audit = ev
        self._write(st)
        self._flush(st)

    def _flush(self, st: CanaryState) -> None:
        if st.pending_audit:
            self._record(st.pending_audit)
            st.pending_audit = None
            self._write(st)

    def recover(self, st: CanaryState | None) -> CanaryState | None:
        """Finish what a killed controller left: the owed audit event, and the challenger
        alias (set while running, gone afterwards)."""
        from mlci.registry import current, locked, set_alias

        if st is None:
            return None
        self._flush(st)
        have = current(self.client, self.name, CHALLENGER_ALIAS)
        if st.running and have != st.challenger:
            with locked(self.client, self.name):
                set_alias(self.client, self.name, CHALLENGER_ALIAS, str(st.challenger))
        elif not st.running and have is not None and have == st.challenger:
            with locked(self.client, self.name):
                self._drop_challenger_alias()
        return st

    def _write(self, st: CanaryState) -> None:
        write_state(self.path, st)
        if self.backend is not None:
            self.backend.on_state(st)

    def _report(self, st: CanaryState) -> None:
        from mlci.io import atomic_write_text

        atomic_write_text(self.path.parent / "report.md", render_report(st))

    # -- commands

    def start(self, version: str, params: Params, shadow: bool = False) -> CanaryState:
        from mlci.registry import current, get_version, locked, set_alias

        with self.exclusive():
            st = self.recover(self.state())
            if st is not None and st.running:
                raise MlciError(f"canary {st.id} of {self.name}/{st.challenger} is running; "
                                "resume it with `mlci canary run` or stop it with "
                                "`mlci canary abort`")
            v = str(get_version(self.client, self.name, version).version)
            if self.backend is not None:  # e.g. KServe: the champion rolled out alone first
                self.backend.before_start(current(self.client, self.name, "champion"))
            with locked(self.client, self.name):
                champion = current(self.client, self.name, "champion")
                if champion is None:
                    raise MlciError(f"{self.name} has no 'champion' alias; a canary needs one "
                                    "to compare against")
                if champion == v:
                    raise MlciError(f"{self.name}/{v} is already the champion")
                before = current(self.client, self.name, CHALLENGER_ALIAS)
                st = CanaryState(id="c-" + uuid.uuid4().hex[:12], model=self.name,
                                 champion=champion, challenger=v, steps=params.steps, step=0,
                                 weight=params.steps[0], shadow=shadow,
                                 params=params.to_dict())
                if self.backend is not None and getattr(self.backend, "metrics_url", None):
                    st.backend = {"metrics_baseline": self.backend.scrape()}
                # the state first: if the alias move fails, abort finds and cleans it
                st.pending_audit = {
                    "kind": "step", "frm": before, "to": v, "digest": _digest(st.params),
                    "message": f"canary {st.id} started: {v} against champion {champion} at "
                               f"{_pct(st.weight)} (steps {','.join(_pct(s) for s in st.steps)})"}
                self._write(st)
                set_alias(self.client, self.name, CHALLENGER_ALIAS, v)
            self._flush(st)
            self._report(st)
            return st

    def analyse(self, st: CanaryState) -> dict[str, Any]:
        from mlci.serve.predlog import rollout_stats

        if self.backend is not None and getattr(self.backend, "metrics_url", None):
            return analyse(self.backend.stats(st), Params.from_dict(st.params))
        try:
            stats = rollout_stats(self.log_path, st.id)
        except Exception as exc:  # noqa: BLE001 - sqlite errors are one line
            raise MlciError(f"{self.log_path}: cannot read the prediction log ({exc})") \
                from None
        return analyse(stats, Params.from_dict(st.params))

    def step(self, st: CanaryState, *, wait: bool = False) -> CanaryState:
        """Judge the current step once (wait=False) or until it is decided (wait=True)."""
        p = Params.from_dict(st.params)
        while st.running:
            now = time.time()
            bake_end = st.step_started + p.bake
            if now < bake_end:
                if not wait:
                    st.last_analysis = {"verdict": WAIT, "summary":
                                        f"baking for {bake_end - now:.0f}s more"}
                    return st
                time.sleep(min(bake_end - now, p.poll))
                continue
            a = self.analyse(st)
            st.last_analysis = a
            if a["verdict"] == FAIL:
                return self.rollback(st, a, f"step {st.step + 1}/{len(st.steps)} at "
                                            f"{_pct(st.weight)}: {a['summary']}")
            if a["verdict"] == PASS:
                st = self.advance(st, a)
                if not wait:
                    return st
                continue
            if now > bake_end + p.deadline:
                return self.rollback(st, a, f"step {st.step + 1}/{len(st.steps)} at "
                                            f"{_pct(st.weight)}: still inconclusive "
                                            f"{p.deadline:.0f}s after its bake ({a['summary']})")
            if not wait:
                return st
            time.sleep(p.poll)
        return st

    def advance(self, st: CanaryState, a: dict[str, Any]) -> CanaryState:
        entry = {"step": st.step + 1, "weight": st.weight, "verdict": PASS,
                 "summary": a["summary"], "analysis": a}
        if st.step + 1 >= len(st.steps):
            return self.promote(st, a, entry=entry)
        frm = st.weight
        st.history.append(entry)
        st.step += 1
        st.weight = st.steps[st.step]
        st.step_started = time.time()
        self._commit(st, {"kind": "step", "frm": st.challenger, "to": st.challenger,
                          "message": f"canary {st.id} step {entry['step']}/{len(st.steps)} "
                                     f"passed at {_pct(frm)}; now {_pct(st.weight)}",
                          "reason": _explain(a), "digest": _digest(a)})
        self._report(st)
        self.echo(f"step {entry['step']}/{len(st.steps)} at {_pct(frm)}: pass; "
                  f"challenger now at {_pct(st.weight)}")
        self.wait_applied(st)
        return st

    def promote(self, st: CanaryState, a: dict[str, Any] | None, *,
                entry: dict[str, Any] | None = None, reason: str | None = None
                ) -> CanaryState:
        from mlci.registry import current, locked, set_alias

        a = a if a is not None else self.analyse(st)
        with locked(self.client, self.name):
            now = current(self.client, self.name, "champion")
            if now not in (st.champion, st.challenger):
                raise MlciError(f"{self.name}@champion moved to {now} during the rollout "
                                f"(was {st.champion}); not promoting — abort this canary")
            if now != st.challenger:
                set_alias(self.client, self.name, "champion", str(st.challenger))
            self._drop_challenger_alias()
        st.history.append(entry or {"step": st.step + 1, "weight": st.weight,
                                    "verdict": "manual", "summary": reason or "promoted by hand",
                                    "analysis": a})
        old = st.champion
        st.status, st.decision = PROMOTED, "promoted"
        st.reason = reason or f"all {len(st.steps)} steps passed"
        st.champion, st.weight = str(st.challenger), 100.0
        text = (f"canary {st.id} promoted {st.challenger} (was {old}): {st.reason}. "
                + _explain(a))
        self._commit(st, {"kind": "decision", "message": "promoted", "frm": old,
                          "to": st.challenger, "reason": text, "digest": _digest(a)})
        self._report(st)
        self.echo(f"promoted {self.name}/{st.challenger} to champion (was {old})")
        return st

    def rollback(self, st: CanaryState, a: dict[str, Any] | None, reason: str) -> CanaryState:
        from mlci.registry import locked

        a = a if a is not None else self.analyse(st)
        # traffic first: the gateway stops routing to the challenger on its next poll
        st.history.append({"step": st.step + 1, "weight": st.weight, "verdict": FAIL,
                           "summary": reason, "analysis": a})
        st.status, st.decision, st.reason = ROLLED_BACK, "rolled-back", reason
        st.weight = 0.0
        st.pending_audit = {"kind": "decision", "message": "rolled-back", "frm": st.champion,
                            "to": st.champion, "digest": _digest(a),
                            "reason": f"canary {st.id} rolled back {st.challenger}: {reason}. "
                                      + _explain(a)}
        self._write(st)
        with locked(self.client, self.name):
            self._drop_challenger_alias()
        self._flush(st)
        self._report(st)
        self.echo(f"rolled back {self.name}/{st.challenger}: {reason}")
        return st

    def _drop_challenger_alias(self) -> None:
        from mlflow.exceptions import MlflowException

        with suppress(MlflowException):  # already gone
            self.client.delete_registered_model_alias(self.name, CHALLENGER_ALIAS)

    def wait_applied(self, st: CanaryState, timeout: float = 30.0) -> None:
        """With --gateway, wait until the gateway routes by this state (bounded)."""
        if not self.gateway:
            return
        try:
            import httpx
        except ImportError:
            raise MlciError("--gateway needs the serve extra: pip install 'mlci[serve]'") \
                from None

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = httpx.get(self.gateway + "/readyz", timeout=2.0).json()
                if r.get("generation", -1) >= st.generation:
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        self.echo(f"warning: the gateway at {self.gateway} has not applied generation "
                  f"{st.generation} after {timeout:.0f}s")

    def run(self, version: str | None, params: Params | None, shadow: bool = False
            ) -> CanaryState:
        """Start (or resume) and drive the rollout to promotion or rollback."""
        with self.exclusive():
            st = self.recover(self.state())
        if st is not None and st.running:
            if version is not None and str(int(version)) != st.challenger:
                raise MlciError(f"canary {st.id} of {self.name}/{st.challenger} is running; "
                                f"abort it before starting {version}")
            self.echo(f"resuming canary {st.id}: {st.challenger} at {_pct(st.weight)} "
                      f"(step {st.step + 1}/{len(st.steps)})")
        else:
            if version is None:
                raise MlciError("no canary is running; give --version N to start one")
            assert params is not None
            st = self.start(version, params, shadow)
            self.echo(f"started canary {st.id}: {self.name}/{st.challenger} at "
                      f"{_pct(st.weight)} against champion {st.champion}")
        with self.exclusive():
            self.wait_applied(st)
            return self.step(st, wait=True)


def _pct(w: float) -> str:
    return f"{w:g}%"


def _digest(a: Any) -> str:
    from mlci import audit

    return audit.digest(a)


def _explain(a: dict[str, Any]) -> str:
    return "; ".join(f"{c['check']}: {c['verdict']} ({c['detail']})" for c in a.get("checks", []))


def render_report(st: CanaryState) -> str:
    lines = [f"# Canary {st.id}: {st.model}/{st.challenger} against champion", "",
             f"- status: **{st.status}**" + (f" ({st.reason})" if st.reason else ""),
             f"- steps: {', '.join(_pct(s) for s in st.steps)}; now step {st.step + 1} at "
             f"{_pct(st.weight)}",
             f"- parameters: `{json.dumps(st.params, sort_keys=True)}`", ""]
    for h in st.history + ([{"step": st.step + 1, "weight": st.weight, "verdict": "current",
                             "summary": st.last_analysis.get("summary", ""),
                             "analysis": st.last_analysis}] if st.running and st.last_analysis
                           else []):
        lines += [f"## Step {h['step']} at {_pct(h['weight'])}: {h['verdict']}", "",
                  h.get("summary", ""), ""]
        checks = (h.get("analysis") or {}).get("checks", [])
        if checks:
            lines += ["| check | verdict | evidence |", "|---|---|---|"]
            lines += [f"| {c['check']} | {c['verdict']} | {c['detail']} |" for c in checks]
            lines.append("")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the `canary` action's glue


def action_main() -> int:
    """`python -m mlci.canary`: what the `canary` composite action runs.

    Inputs arrive as MLCI_* environment variables (which `mlci canary run` reads itself);
    empty ones are dropped so that defaults apply. Runs `mlci canary run --json`, echoes its
    output and writes the step outputs `decision`, `canary-id`, `champion`, `challenger`,
    `summary` and `report-path` to $GITHUB_OUTPUT. Exit status is mlci's own.
    """
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not (k.startswith("MLCI_") and not v.strip())}
    if env.get("MLCI_TRACKING_URI"):
        env["MLFLOW_TRACKING_URI"] = env["MLCI_TRACKING_URI"]
    env.pop("MLCI_TRACKING_URI", None)
    env.pop("MLCI_JSON", None)
    p = subprocess.run([sys.executable, "-c", "from mlci.cli import main; main()", "canary",
                        "run", "--json"], env=env, stdout=subprocess.PIPE, text=True)
    out = p.stdout.strip()
    if out:
        print(out, flush=True)
    data: dict[str, Any] = {}
    for line in reversed(out.splitlines()):
        try:
            data = json.loads(line)
            break
        except ValueError:
            continue
    report = Path(env.get("MLCI_OUT", ".mlci")) / "canary" / "report.md"
    values = {"decision": data.get("decision") or ("error" if p.returncode >= 2 else ""),
              "canary-id": data.get("canary_id") or "", "champion": data.get("champion") or "",
              "challenger": data.get("challenger") or "", "summary": data.get("reason") or "",
              "report-path": str(report.resolve()) if report.is_file() else ""}
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            for k, v in values.items():
                delim = f"MLCI_EOF_{uuid.uuid4().hex}"
                fh.write(f"{k}<<{delim}\n{v}\n{delim}\n")
    else:
        for k, v in values.items():
            print(f"output {k}={v}")
    return p.returncode


if __name__ == "__main__":
    raise SystemExit(action_main())
