"""The canary flow: roll a challenger out step by step and judge it at every look.

A rollout is a state file (`<out>/canary/state.json`, see `mlci.serve.state`) that the gateway
follows at runtime, plus the registry aliases `challenger` (during the rollout) and `champion`
(moved only on promotion). The flow is split three ways:

- **state** (`mlci.serve.state.RolloutStore`): the state file, the controller lock, abort
  requests;
- **judge** (`mlci.stats.judge.analyse`): the checks on the rollout's observations,
  stratified by step, with a group-sequential design over the rollout's planned maximum
  sample (`mlci.stats.sequential`), so looking every `poll` seconds keeps its error rates
  (see docs/canary.md);
- **plan** (`mlci.stats.canary_plan`): at the start, the traffic of the champion before the
  rollout (or `--traffic`, `--label-share`, `--label-delay`) gives each check's maximum sample
  by the deadlines and the power against an identical challenger; a plan below `min_power`
  is refused with what to change;
- **driver** (`Controller` here): bake, look, advance, promote or roll back, with an injected
  clock.

The challenger and champion aliases move only through the registry's one writer
(`mlci.registry.gate.move`): a challenger needs passing gate evidence to start (or an audited
`--force --reason`), and promotion needs that evidence, checked again against the champion
of the day, plus a passing analysis.

Any failed check rolls back at once. A step whose checks are all shown within their
allowances advances after its bake; one still inconclusive `deadline` seconds after its bake
advances too (the evidence carries over: the steps are strata of one test), except the last
step with a champion share, which rolls back *for lack of evidence*. Passing that last judged
step promotes: the step at 100 % has no concurrent champion to judge against.
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlci.errors import MlciError
from mlci.serve.state import (
    PROMOTED,
    ROLLED_BACK,
    CanaryState,
    RolloutStore,
)
from mlci.stats.judge import Params, Steps
from mlci.stats.sequential import FAIL, GROUP, PASS, WAIT

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

CHALLENGER_ALIAS = "challenger"
PROFILE_WINDOW = 3600.0  # seconds of champion traffic before a rollout that plan it
MIN_PROFILE_REQUESTS = 200
__all__ = ["FAIL", "PASS", "WAIT", "Clock", "Controller", "Params", "parse_steps"]


@dataclass
class Clock:
    """Wall time and waiting; tests pass a clock whose sleep only moves time forward."""

    now: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


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


# ---------------------------------------------------------------- the driver


class Controller:
    """Drives one model's rollout from `<out>`; every change is persisted before it is
    acted on elsewhere, and audited."""

    def __init__(self, cfg: Any, out_dir: Path, name: str, *, log_path: Path | None = None,
                 gateway: str | None = None, echo: Callable[[str], None] = print,
                 clock: Clock | None = None) -> None:
        self.cfg, self.out_dir, self.name = cfg, Path(out_dir), name
        self.store = RolloutStore(self.out_dir, name)
        self.path = self.store.path
        self.clock = clock or Clock()
        self.log_path = Path(log_path) if log_path else self.out_dir / "predictions.db"
        self.gateway = gateway.rstrip("/") if gateway else None
        self.echo = echo
        self._client = None
        self.backend: Any = None  # e.g. mlci.serve.kserve.KServeBackend: follows each state

    # -- plumbing

    @property
    def client(self):
        if self._client is None:
            from mlci.registry import aliases, tracking

            self._client = tracking.client(self.cfg, self.out_dir)
            aliases.require_model(self._client, self.name)
        return self._client

    def uri(self) -> str:
        from mlci.registry import tracking

        return tracking.tracking_uri(self.cfg, self.out_dir)

    def state(self) -> CanaryState | None:
        return self.store.read()

    def active(self) -> CanaryState:
        st = self.state()
        if st is None or not st.running:
            raise MlciError(f"no canary of {self.name} is running (start one with "
                            "`mlci canary start --version N`)")
        return st

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """One controller at a time per `<out>` (a second one fails fast, exit 2)."""
        with self.store.exclusive() as held:
            if not held:
                raise MlciError(f"another canary controller is working on {self.path}")
            yield

    def _record(self, ev: dict[str, Any]) -> str:
        """Append one audit event described by `ev` (see `_commit`)."""
        from mlci.registry import audit
        from mlci.registry.gate import _event, record_canary

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
        from mlci.registry.aliases import current, set_alias
        from mlci.registry.gate import settle
        from mlci.registry.lock import locked

        if st is None:
            return None
        self._flush(st)
        for note in settle(self.client, self._exp(), self.name):
            self.echo(note)
        if st.promoting is not None:
            st = self._settle_promotion(st)
        have = current(self.client, self.name, CHALLENGER_ALIAS)
        if st.running and have != st.challenger:
            with locked(self.client, self.name):
                set_alias(self.client, self.name, CHALLENGER_ALIAS, str(st.challenger))
        elif not st.running and have is not None and have == st.challenger:
            with locked(self.client, self.name):
                self._drop_challenger_alias()
        return st

    def _settle_promotion(self, st: CanaryState) -> CanaryState:
        """A promotion a killed controller left half-way: the registry says whether the
        champion moved; the state file follows it (never the other way round)."""
        from mlci.registry.aliases import current

        p = st.promoting or {}
        if current(self.client, self.name, "champion") == st.challenger:
            return self._promoted(st, p.get("analysis") or {}, p.get("entry"),
                                  p.get("reason"))
        st.promoting = None  # the move never happened: the rollout goes on
        self._write(st)
        return st

    def _exp(self) -> str:
        from mlci.registry import audit

        return audit.experiment_id(self.client, self.name, self.out_dir, self.uri())

    def _write(self, st: CanaryState) -> None:
        self.store.write(st)
        if self.backend is not None:
            self.backend.on_state(st)

    def _report(self, st: CanaryState) -> None:
        from mlci.io import atomic_write_text

        atomic_write_text(self.path.parent / "report.md", render_report(st))

    # -- commands

    def start(self, version: str, params: Params, shadow: bool = False, *,
              force: bool = False, reason: str | None = None) -> CanaryState:
        from mlci.registry import audit
        from mlci.registry.aliases import current, get_version
        from mlci.registry.gate import Moved, Refused, _event, decide_challenger, move

        if force and not (reason and reason.strip()):
            raise MlciError("--force needs --reason \"…\" (it is recorded in the audit trail)")
        with self.exclusive():
            st = self.recover(self.state())
            if st is not None and st.running:
                raise MlciError(f"canary {st.id} of {self.name}/{st.challenger} is running; "
                                "resume it with `mlci canary run` or stop it with "
                                "`mlci canary abort`")
            mv = get_version(self.client, self.name, version)
            v = str(mv.version)
            champion = current(self.client, self.name, "champion")
            if champion is None:
                raise MlciError(f"{self.name} has no 'champion' alias; a canary needs one "
                                "to compare against")
            if champion == v:
                raise MlciError(f"{self.name}/{v} is already the champion")
            before = current(self.client, self.name, CHALLENGER_ALIAS)
            # no live traffic for a version the gate refused, however it is rolled out
            d = decide_challenger(self.client, self.name, mv)
            if not d.ok and not force:
                ev = _event("refuse", self.name, CHALLENGER_ALIAS, before, v, reason=reason,
                            message="failed checks: " + "; ".join(d.failed))
                audit.record(self.client, self._exp(), ev)
                raise Refused(f"refused to start a canary of {self.name}/{v}: failed checks: "
                              + "; ".join(d.failed), {"version": v, "checks": d.checks,
                                                      "failed": d.failed})
            params = self.plan(params)
            if self.backend is not None:  # e.g. KServe: the champion rolled out alone first
                self.backend.before_start(champion)
            now = self.clock.now()
            st = CanaryState(id="c-" + uuid.uuid4().hex[:12], model=self.name,
                             champion=champion, challenger=v, steps=params.steps, step=0,
                             weight=params.steps[0], shadow=shadow,
                             params=params.to_dict(), started=now, step_started=now)
            if self.backend is not None and getattr(self.backend, "metrics_url", None):
                st.backend = {"metrics_baseline": self.backend.scrape()}
            # the state first: if the alias move fails, abort finds and cleans it
            self._write(st)
            forced = force and not d.ok
            ev = _event("force" if forced else "canary", self.name, CHALLENGER_ALIAS, before, v,
                        reason=reason, evidence_digest=_digest(st.params),
                        message=(f"canary {st.id} started: {v} against champion {champion} at "
                                 f"{_pct(st.weight)} (steps "
                                 f"{','.join(_pct(s) for s in st.steps)})"
                                 + ("; forced past failed checks: " + "; ".join(d.failed)
                                    if forced else "")))
            try:
                move(self.client, self._exp(), ev, d, expect=before)
            except Moved as m:
                raise MlciError(f"{self.name}@{CHALLENGER_ALIAS} moved to {m.now} while "
                                "starting; abort and start again") from None
            self._report(st)
            return st

    def observations(self, st: CanaryState) -> dict[str, Any]:
        from mlci.serve.observations import from_variant_stats, rollout_observations

        if self.backend is not None and getattr(self.backend, "metrics_url", None):
            return from_variant_stats(self.backend.stats(st))
        try:
            return rollout_observations(self.log_path, st.id)
        except Exception as exc:  # noqa: BLE001 - sqlite errors are one line
            raise MlciError(f"{self.log_path}: cannot read the prediction log ({exc})") \
                from None

    def profile(self, params: Params) -> tuple[Any, Any]:
        """(the traffic profile, the champion's latencies before the rollout) from the
        options or the prediction log's last hour; (None, None) when neither has it."""
        from mlci.serve.observations import traffic_before
        from mlci.stats.canary_plan import Profile

        now = self.clock.now()
        seen = None
        if not (self.backend is not None and getattr(self.backend, "metrics_url", None)):
            try:
                seen = traffic_before(self.log_path, self.name, now - PROFILE_WINDOW, now)
            except Exception:  # noqa: BLE001 - an unreadable log plans nothing
                seen = None
            if seen is not None and seen["requests"] < MIN_PROFILE_REQUESTS:
                seen = None
        rate = params.rate if params.rate is not None else seen and seen["rate"]
        if not rate:
            return None, seen
        share = params.label_share if params.label_share is not None else \
            seen["label_share"] if seen else 1.0
        delay = params.label_delay if params.label_delay is not None else \
            seen["label_delay"] if seen else 0.0
        prof = Profile(rate=float(rate), label_share=float(share), label_delay=float(delay),
                       source="prediction log" if params.rate is None else "given")
        if seen:
            prof.error_rate = seen["error_rate"] or prof.error_rate
            prof.label_error = seen["label_error"] or prof.label_error
        return prof, seen

    def plan(self, params: Params) -> Params:
        """Fill in the design's plan (maximum samples, task, latency threshold) and run the
        pre-flight check: refuse (or, with preflight=warn, say) when an identical challenger
        would not be promoted with `min_power` by the deadlines."""
        from dataclasses import replace

        from mlci.stats.canary_plan import judged_weights, preflight

        if not judged_weights(params.steps):
            raise MlciError("--steps: a canary needs a step below 100% (the step at 100% has "
                            "no champion to compare with)")
        if params.task is None and self.cfg is not None:
            params = replace(params, task=getattr(self.cfg, "task", None))
        prof, seen = self.profile(params)
        if params.latency_threshold_ms is None and seen is not None \
                and len(seen["latency_ms"]) >= MIN_PROFILE_REQUESTS:
            t = float(np.quantile(seen["latency_ms"], params.latency_quantile))
            params = replace(params, latency_threshold_ms=round(t, 4))
        if prof is None or params.design != GROUP:
            return params
        metric = params.quality_metric if params.quality_metric != "auto" else \
            "mae" if params.task == "regression" else "accuracy"
        pf = preflight(params, prof, metric)
        params = replace(params, plan=pf)
        if not pf["ok"]:
            text = (f"pre-flight: at {prof.rate:.3g} requests/s ({prof.source}), "
                    f"{prof.label_share:.0%} labelled after {prof.label_delay:.0f}s, an "
                    f"identical challenger would be promoted in only {pf['power']:.0%} of "
                    f"rollouts by the deadlines ({_weakest(pf)}); {pf['advice']}")
            if params.preflight == "refuse":
                raise MlciError(text + " (or --preflight warn)")
            self.echo("warning: " + text)
        return params

    def steps_of(self, st: CanaryState) -> Steps:
        """The rollout's steps so far, the strata of its tests."""
        starts = [st.started]
        for h in st.history[:st.step]:
            starts.append(float(h.get("ended", (h.get("analysis") or {}).get("time",
                                                                               starts[-1]))))
        return Steps(starts, list(st.steps[:len(starts)]), Params.from_dict(st.params).bake)

    def analyse(self, st: CanaryState) -> dict[str, Any]:
        from mlci.stats.judge import analyse

        obs = self.observations(st)
        return analyse(obs["variants"]["challenger"], obs["variants"]["champion"],
                       obs["shadow"], Params.from_dict(st.params), now=self.clock.now(),
                       steps=self.steps_of(st), shown=st.params.get("shown", []))

    def _last_judged(self, st: CanaryState) -> bool:
        """The step is the last one with a champion share (after it: promotion)."""
        return st.step + 1 >= len(st.steps) or st.steps[st.step + 1] >= 100

    def step(self, st: CanaryState, *, wait: bool = False) -> CanaryState:
        """Judge the current step once (wait=False) or until it is decided (wait=True)."""
        p = Params.from_dict(st.params)
        while st.running:
            now = self.clock.now()
            aborted = self.store.abort_request(st.id)
            if aborted is not None:
                st = self.rollback(st, None, aborted, basis="by hand")
                self.store.clear_abort()
                return st
            bake_end = st.step_started + p.bake
            if now < bake_end:
                if not wait:
                    st.last_analysis = {"verdict": WAIT, "summary":
                                        f"baking for {bake_end - now:.0f}s more"}
                    return st
                self.clock.sleep(min(bake_end - now, p.poll))
                continue
            a = self.analyse(st)
            st.last_analysis = a
            shown = sorted(set(st.params.get("shown", [])) | set(a.get("shown", [])))
            if shown != st.params.get("shown", []) and a["verdict"] != FAIL:
                st.params["shown"] = shown  # kept across looks and restarts
                self._write(st)
            where = f"step {st.step + 1}/{len(st.steps)} at {_pct(st.weight)}"
            if a["verdict"] == FAIL:
                return self.rollback(st, a, f"{where}: {a['summary']}")
            if a["verdict"] == PASS:
                st = self.advance(st, a)
                if not wait:
                    return st
                continue
            if a.get("exhausted"):
                return self.rollback(st, a, f"{where}: the planned maximum sample is reached "
                                            f"for {', '.join(a['exhausted'])}: rolled back "
                                            f"for lack of evidence ({a['summary']})",
                                     basis="lack of evidence")
            if now > bake_end + p.deadline:
                if self._last_judged(st):
                    return self.rollback(st, a, f"{where}: still inconclusive "
                                                f"{p.deadline:.0f}s after its bake: rolled "
                                                f"back for lack of evidence ({a['summary']})",
                                         basis="lack of evidence")
                st = self.advance(st, a, shown=False)
                if not wait:
                    return st
                continue
            if not wait:
                return st
            self.clock.sleep(p.poll)
        return st

    def advance(self, st: CanaryState, a: dict[str, Any], *, shown: bool = True
                ) -> CanaryState:
        """The next step; from the last judged step, promotion. `shown` False: the step
        reached its deadline undecided (not the last judged one) and the rollout goes on."""
        entry = {"step": st.step + 1, "weight": st.weight,
                 "verdict": PASS if shown else "continue",
                 "summary": a["summary"] if shown else
                 f"undecided at the deadline, continuing ({a['summary']})", "analysis": a,
                 "ended": self.clock.now()}
        if shown and self._last_judged(st):
            from mlci.registry.gate import Refused

            try:
                return self.promote(st, a, entry=entry)
            except Refused as exc:  # e.g. the evidence no longer holds: no promotion
                return self.rollback(st, a, exc.message)
        frm = st.weight
        st.history.append(entry)
        st.step += 1
        st.weight = st.steps[st.step]
        st.step_started = self.clock.now()
        self._commit(st, {"kind": "step", "frm": st.challenger, "to": st.challenger,
                          "message": f"canary {st.id} step {entry['step']}/{len(st.steps)} "
                                     f"{'passed' if shown else 'undecided'} at {_pct(frm)}; "
                                     f"now {_pct(st.weight)}",
                          "reason": _explain(a), "digest": _digest(a)})
        self._report(st)
        self.echo(f"step {entry['step']}/{len(st.steps)} at {_pct(frm)}: "
                  f"{'pass' if shown else 'undecided at its deadline, continuing'}; "
                  f"challenger now at {_pct(st.weight)}")
        self.wait_applied(st)
        return st

    def promote(self, st: CanaryState, a: dict[str, Any] | None, *,
                entry: dict[str, Any] | None = None, reason: str | None = None,
                force: bool = False) -> CanaryState:
        """Move champion to the challenger through the registry's one writer: its gate
        evidence (re-checked against today's champion) and a passing analysis (an audited
        `force` by hand otherwise)."""
        from mlci.evaluate import rescore
        from mlci.registry.aliases import current, get_version
        from mlci.registry.gate import Moved, Refused, _c, _event, decide, move

        a = a if a is not None else self.analyse(st)
        now = current(self.client, self.name, "champion")
        if now not in (st.champion, st.challenger):
            raise MlciError(f"{self.name}@champion moved to {now} during the rollout "
                            f"(was {st.champion}); not promoting — abort this canary")
        if now != st.challenger:
            mv = get_version(self.client, self.name, str(st.challenger))
            d = decide(self.cfg, self.client, self.name, mv, "champion", now, rescore)
            d.checks.append(_c("canary analysis passed", a.get("verdict") == PASS,
                               value=a.get("verdict"), reason=a.get("summary")))
            if not d.ok and not force:
                raise Refused(f"refused to promote {self.name}/{st.challenger}: failed checks: "
                              + "; ".join(d.failed), {"version": st.challenger,
                                                      "checks": d.checks})
            if force and not (reason and reason.strip()):
                raise MlciError("--force needs --reason \"…\" (it is recorded in the audit "
                                "trail)")
            text = (f"canary {st.id} promoted {st.challenger} (was {st.champion}): "
                    f"{reason or f'all {len(st.steps)} steps passed'}. " + _explain(a))
            forced = force and not d.ok
            ev = _event("force" if forced else "canary", self.name, "champion", now,
                        str(st.challenger), reason=text, evidence_digest=_digest(a),
                        message="promoted" + ("; forced past failed checks: "
                                              + "; ".join(d.failed) if forced else ""))
            # the state says a promotion is under way before the registry moves: a kill
            # between the two is settled by the next command from the registry (`recover`)
            st.promoting = {"analysis": a, "entry": entry, "reason": reason}
            self._write(st)
            try:
                move(self.client, self._exp(), ev, d, expect=now)
            except Moved as m:
                st.promoting = None
                self._write(st)
                raise MlciError(f"{self.name}@champion moved to {m.now} while promoting; "
                                "not promoting — abort this canary") from None
        return self._promoted(st, a, entry, reason)

    def _promoted(self, st: CanaryState, a: dict[str, Any], entry: dict[str, Any] | None,
                  reason: str | None) -> CanaryState:
        from mlci.registry.lock import locked

        with locked(self.client, self.name):
            self._drop_challenger_alias()
        st.history.append(entry or {"step": st.step + 1, "weight": st.weight,
                                    "verdict": "manual", "summary": reason or "promoted by hand",
                                    "analysis": a})
        old = st.champion
        st.status, st.decision = PROMOTED, "promoted"
        st.reason = reason or ("promoted by hand" if entry is None
                               else f"all {len(st.steps)} steps passed")
        st.champion, st.weight, st.promoting = str(st.challenger), 100.0, None
        self._write(st)  # the champion move itself is audited by `move`
        self._report(st)
        self.echo(f"promoted {self.name}/{st.challenger} to champion (was {old})")
        return st

    def rollback(self, st: CanaryState, a: dict[str, Any] | None, reason: str, *,
                 basis: str = "evidence") -> CanaryState:
        """Roll back; `basis`: evidence (a check failed), lack of evidence, or by hand."""
        from mlci.registry.lock import locked

        a = a if a is not None else self.analyse(st)
        # traffic first: the gateway stops routing to the challenger on its next poll
        st.history.append({"step": st.step + 1, "weight": st.weight, "verdict": FAIL,
                           "summary": reason, "analysis": a, "basis": basis})
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
        from mlci.registry.aliases import remove

        remove(self.client, self.name, CHALLENGER_ALIAS)

    def wait_applied(self, st: CanaryState, timeout: float = 30.0) -> None:
        """With --gateway, wait until the gateway routes by this state (bounded)."""
        if not self.gateway:
            return
        try:
            import httpx
        except ImportError:
            raise MlciError("--gateway needs the serve extra: pip install 'mlci[serve]'") \
                from None

        deadline = self.clock.now() + timeout
        while self.clock.now() < deadline:
            try:
                r = httpx.get(self.gateway + "/readyz", timeout=2.0).json()
                if r.get("generation", -1) >= st.generation:
                    return
            except (httpx.HTTPError, ValueError):
                pass
            self.clock.sleep(0.2)
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
            # re-read: another command may have changed the rollout between the two locks
            st = self.recover(self.state())
            if st is None or not st.running:
                raise MlciError(f"the canary of {self.name} stopped before it could be driven "
                                f"({st.status if st else 'no state'})")
            self.wait_applied(st)
            return self.step(st, wait=True)

    def abort(self, reason: str, timeout: float = 60.0) -> CanaryState:
        """Roll back now; if a `run` holds the lock, ask it to and wait until it has."""
        with self.store.exclusive() as held:
            if held:
                self.recover(self.state())
                return self.rollback(self.active(), None, reason, basis="by hand")
        st = self.active()
        self.store.request_abort(st.id, reason)
        end = self.clock.now() + timeout
        while self.clock.now() < end:
            now = self.state()
            if now is not None and now.id == st.id and not now.running:
                return now
            self.clock.sleep(0.2)
        raise MlciError(f"the controller running canary {st.id} did not act on the abort "
                        f"within {timeout:.0f}s; it will on its next look")


def _weakest(pf: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v['power']:.0%}" for k, v in pf["checks"].items())


def _pct(w: float) -> str:
    return f"{w:g}%"


def _digest(a: Any) -> str:
    from mlci.registry import audit

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
