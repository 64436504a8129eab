"""The registry gate: move an MLflow alias only on recorded evidence, one writer at a time.

MLflow has no conditional alias update, so a move is a compare-and-set built from parts the
registry does have:

1. read the alias (the *observed* version) and decide on the evidence, outside any lock
   (deciding may re-score the golden set, which takes a second or two);
2. take the model's registry lock: a registered model named `mlci-lock.<name>` that only one
   client can create (the store's unique constraint on names answers RESOURCE_ALREADY_EXISTS
   to every other), with a lease so a crashed holder does not block forever;
3. re-read the alias: if it moved since step 1, release and start again from step 1 against
   the new value (a loser re-checks against the new champion, or is refused);
4. settle what a killed writer left (`audit.reconcile`), write the audit event as an intent,
   set the alias (retrying the store's unique-constraint error on a first-ever set), re-read
   it, confirm the event, release the lock.

`move` is that one writer: `promote`, `rollback`, the canary's start and promotion and the
watch's rollback all go through it, so every alias that serves traffic moves only under the
lock, on evidence (`Decision`), and with an audit record that a kill cannot lose. A refusal
is recorded too. Nothing is written before the version, the alias and the evidence have been
checked, and a refused or failed attempt never moves an alias.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci import context
from mlci.errors import MlciError, VerdictFailed
from mlci.errors import first_line as _first_line
from mlci.gha import env
from mlci.records import EvaluationRecord, RunRecord
from mlci.registry import audit
from mlci.registry.aliases import (
    ROLLBACK_ALIAS,
    TAG,
    check_alias,
    current,
    get_version,
    remove,
    require_model,
    set_alias,
)
from mlci.registry.lock import locked
from mlci.registry.trust import evidence_signed, refuse_untrusted_write

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlflow import MlflowClient

    from mlci.config import Config

    # scores candidate and champion on today's golden set: (cfg, client, name, version,
    # champion) -> {"checks": [...], ...}; given by the caller (`mlci.evaluate.rescore`)
    Rescore = Callable[[Config, MlflowClient, str, str, str], dict[str, Any]]

EVIDENCE_TAGS = (
    "validation.success", "validation.digest", "gate.passed", "evaluation.digest",
    "evaluation.champion_version", "evaluation.baseline", "golden.hash", "data.train.hash",
    "data.golden.hash", "git.commit", "config.digest",
)
MAX_ATTEMPTS = 5
DIGEST_PARAM = "mlci.evaluation.digest."


class Refused(VerdictFailed):
    """The gate said no (exit 1); `result` is what `--json` prints."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


def approver() -> str:
    """Who approved: MLCI_APPROVER, else the reviewer in the GitHub event, else the actor."""
    named = os.environ.get("MLCI_APPROVER")
    if named:
        return named
    ev = env.event()
    for keys in (("review", "user", "login"), ("approver", "login"),
                 ("deployment_review", "approver", "login")):
        v: Any = ev
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        if isinstance(v, str) and v:
            return v
    return context.actor()


def evidence(mv) -> dict[str, str]:
    tags = mv.tags or {}
    return {k: tags[TAG + k] for k in EVIDENCE_TAGS if TAG + k in tags}


@dataclass
class Decision:
    checks: list[dict[str, Any]]
    reevaluation: dict[str, Any] | None = None

    @property
    def failed(self) -> list[str]:
        return [c["check"] + (f" ({c['reason']})" if c.get("reason") else "")
                for c in self.checks if c["passed"] is not True]

    @property
    def ok(self) -> bool:
        return not self.failed


def _c(check: str, passed: bool | None, **kw: Any) -> dict[str, Any]:
    return {"check": check, "passed": passed, **kw}


def verified_evaluation(client: MlflowClient, mv) -> tuple[EvaluationRecord | None, str]:
    """The evaluation record of the version's run, if its digest is one the run's params
    (immutable in MLflow) recorded when `mlci evaluate` wrote it; else (None, why)."""
    import tempfile

    from mlci.io import sha256_text

    try:
        params = client.get_run(mv.run_id).data.params
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(mv.run_id, "mlci/evaluation.json", tmp)
            text = Path(local).read_text(encoding="utf-8")
    except Exception as exc:  # noqa: BLE001 - missing run or artifact: not verifiable
        return None, f"no evaluation record on run {mv.run_id} ({_first_line(exc)[:120]})"
    digest = "sha256:" + sha256_text(text)
    recorded = {v for k, v in params.items() if k.startswith(DIGEST_PARAM)}
    if digest not in recorded:
        return None, ("the evaluation record's digest matches none recorded on its run: "
                      "edited after evaluation")
    unsigned = evidence_signed(params, mv.run_id, digest)
    if unsigned:
        return None, unsigned
    try:
        rec = EvaluationRecord.of(json.loads(text), "the evaluation record")
    except ValueError:
        return None, "the evaluation record is not JSON"
    except MlciError as exc:
        return None, exc.format_message()
    if rec.model.run_id != mv.run_id:
        return None, "the evaluation record is about another run"
    return rec, ""


def _validation_success(client: MlflowClient, mv, ev: dict[str, str]) -> str:
    """`true` only when the run's immutable param says so (recorded at training) and the
    version's tag, if any, does not say otherwise: a hand-edited tag cannot pass validation."""
    try:
        recorded = client.get_run(mv.run_id).data.params.get(TAG + "validation.success")
    except Exception as exc:  # noqa: BLE001 - a missing run has no evidence
        return f"unreadable ({_first_line(exc)[:80]})"
    if recorded is None:
        return "not recorded as a run param"
    tag = ev.get("validation.success")
    return recorded if tag in (None, recorded) else f"{recorded} (tag says {tag})"


def _passed_its_gate(client: MlflowClient, mv) -> bool:
    """A rollback target passed its gate by its digest-checked evaluation record (and its
    tag, editable, does not say otherwise)."""
    if (mv.tags or {}).get(TAG + "gate.passed") == "false":
        return False
    rec, _ = verified_evaluation(client, mv)
    return rec is not None and rec.passed


def decide(cfg: Config | None, client: MlflowClient, name: str, mv, alias: str,
           champion: str | None, rescore: Rescore | None = None) -> Decision:
    """What the evidence says about moving `alias` to `mv`. The verdict, and which baseline
    it was measured against, come from the run's digest-checked evaluation record; the
    version's tags (editable by anyone with registry access) can only make it stricter."""
    ev = evidence(mv)
    v = str(mv.version)
    checks: list[dict[str, Any]] = []
    if "validation.success" not in ev and "gate.passed" not in ev:
        checks.append(_c("evidence recorded", False,
                         reason=f"{name}/{v} has no mlci evidence: not trained and evaluated "
                                "by mlci"))
        return Decision(checks)
    rec, why = verified_evaluation(client, mv)
    if rec is None:
        checks.append(_c("evaluation record verified", False, reason=why))
        return Decision(checks)
    if not rec.passed:
        ev["gate.passed"] = "false"
    base = rec.baseline
    ev["evaluation.champion_version"] = str(base.get("version") or "")
    ev["evaluation.baseline"] = str(base.get("label") or "")
    vs = _validation_success(client, mv, ev)
    checks.append(_c("data validation passed", vs == "true", value=vs or "missing"))
    gp = ev.get("gate.passed")
    checks.append(_c("evaluation gate passed", gp == "true",
                     value=gp or "missing (not evaluated)"))
    if alias != "champion" or champion is None or champion == v or gp != "true":
        return Decision(checks)
    checks.append(_c(f"not older than champion {champion}", int(v) > int(champion),
                     reason="use `mlci rollback` to go back to an older version"
                     if int(v) < int(champion) else None))
    if int(v) < int(champion):
        return Decision(checks)
    # the recorded comparison stands only if it was made against this registry champion
    # (a committed git baseline may carry the same version number from elsewhere)
    evaluated_against = ev.get("evaluation.champion_version") or ""
    from_registry = (ev.get("evaluation.baseline") or "").startswith("registry champion")
    if evaluated_against == champion and from_registry:
        checks.append(_c(f"evaluated against champion {champion}", True))
        return Decision(checks)
    if cfg is None or rescore is None:
        checks.append(_c(f"re-evaluated against champion {champion}", False,
                         reason="no config to re-score the golden set"))
        return Decision(checks)
    re = rescore(cfg, client, name, v, champion)
    for c in re["checks"]:
        checks.append({**c, "check": f"re-evaluated vs champion {champion}: {c['check']}"})
    return Decision(checks, re)


# ---------------------------------------------------------------- moves


def _event(action: str, name: str, alias: str, frm: str | None, to: str | None,
           **kw: Any) -> audit.AuditEvent:
    from mlci.context import ci_run_url, git_info, trigger

    commit = env.github("SHA") or git_info(Path.cwd()).get("git.commit")
    return audit.AuditEvent(action=action, model=name, alias=alias, from_version=frm,
                            to_version=to, actor=context.actor(), approver=approver(),
                            ci_run_url=ci_run_url(), trigger=trigger(), git_commit=commit, **kw)


class Moved(Exception):
    """The alias is no longer where the decision saw it: decide again."""

    def __init__(self, now: str | None) -> None:
        super().__init__(now)
        self.now = now


def move(client: MlflowClient, exp_id: str, event: audit.AuditEvent, decision: Decision, *,
         expect: str | None) -> list[str]:
    """The one alias writer: move `event.alias` of `event.model` to `event.to_version` (None:
    remove it) if the evidence allows and the alias still points at `expect`.

    The evidence rule: `decision` must be ok, or the event a `force` with a reason (recorded).
    Under the model's lock: intents a killed writer left are settled first, then the event is
    written as an intent, the alias moves, and the event is confirmed; a kill anywhere leaves
    either no move, or a move whose intent the next writer confirms. Raises Moved when the
    alias changed since the decision, MlciError/Refused otherwise; returns notes."""
    name, alias, to = event.model, event.alias, event.to_version
    refuse_untrusted_write(f"move {name}@{alias}")
    if not decision.ok and not (event.action == "force" and (event.reason or "").strip()):
        raise MlciError(f"refusing to move {name}@{alias} to {to}: failed checks: "
                        + "; ".join(decision.failed))
    with locked(client, name) as lock:
        notes = audit.reconcile(client, exp_id, lambda a: current(client, name, a))
        now = current(client, name, alias)
        if now != expect:
            raise Moved(now)
        lock.check()  # the fence: a holder paused past its lease writes nothing
        run_id = audit.begin(client, exp_id, event)
        if to is None:
            remove(client, name, alias)
        else:
            set_alias(client, name, alias, to)
        audit.confirm(client, run_id)
    return notes


def settle(client: MlflowClient, exp_id: str, name: str) -> list[str]:
    """Settle, under the lock, the intents a killed writer left (see `audit.reconcile`)."""
    with locked(client, name):
        return audit.reconcile(client, exp_id, lambda a: current(client, name, a))


def _default_version(client: MlflowClient, name: str, out_dir: Path, uri: str) -> str:
    """The version this job trained (<out>/run.json, if it was registered in this same
    store), else the `candidate` alias."""
    run = out_dir / "run.json"
    if run.is_file():
        rec = RunRecord.load(run)
        if rec.model_name == name and rec.model_version and (rec.tracking_uri or uri) == uri:
            return str(rec.model_version)
    v = current(client, name, "candidate")
    if v is None:
        raise MlciError(f"no --version given and {name} has no 'candidate' alias "
                        f"nor {run}")
    return v


def promote(cfg: Config, out_dir: Path, alias: str, version: str | None = None, *,
            force: bool = False, reason: str | None = None,
            rescore: Rescore | None = None) -> dict[str, Any]:
    """Move `alias` of `cfg.name` to a version on its evidence. Raises Refused (exit 1)."""
    from mlci.registry import tracking

    check_alias(alias)
    refuse_untrusted_write(f"move {cfg.name}@{alias}")
    if force and not (reason and reason.strip()):
        raise MlciError("--force needs --reason \"…\" (it is recorded in the audit trail)")
    name = cfg.name
    client = tracking.client(cfg, out_dir)
    require_model(client, name)
    uri = tracking.tracking_uri(cfg, out_dir)
    v = str(version) if version is not None else _default_version(client, name, out_dir, uri)
    mv = get_version(client, name, v)
    v = str(mv.version)
    exp_id = audit.experiment_id(client, name, out_dir, uri)
    notes: list[str] = []
    for _attempt in range(MAX_ATTEMPTS):
        observed = current(client, name, alias)
        if observed == v:
            return {"version": v, "alias": alias, "from_version": v, "changed": False,
                    "checks": [], "notes": notes + [f"{name}@{alias} is already {v}"]}
        champion = observed if alias == "champion" else current(client, name, "champion")
        d = decide(cfg, client, name, mv, alias, champion, rescore)
        digest = audit.digest({"version": v, "evidence": evidence(mv),
                               "reevaluation": d.reevaluation})
        result = {"version": v, "alias": alias, "from_version": observed, "changed": False,
                  "checks": d.checks, "failed": d.failed, "evidence_digest": digest,
                  "notes": notes}
        if not d.ok and not force:
            ev = _event("refuse", name, alias, observed, v, reason=reason,
                        evidence_digest=digest,
                        message="failed checks: " + "; ".join(d.failed))
            audit.record(client, exp_id, ev)
            result["event_id"] = ev.event_id
            raise Refused(f"refused to move {name}@{alias} to {v}: failed checks: "
                          + "; ".join(d.failed), result)
        action = "force" if (force and not d.ok) else "promote"
        msg = ("forced past failed checks: " + "; ".join(d.failed) if action == "force"
               else "all checks passed")
        ev = _event(action, name, alias, observed, v, reason=reason, evidence_digest=digest,
                    message=msg)
        try:
            notes += move(client, exp_id, ev, d, expect=observed)
        except Moved as m:
            notes.append(f"{name}@{alias} moved from {observed} to {m.now} while deciding; "
                         "re-checked")
            continue
        result.update(changed=True, event_id=ev.event_id, action=action)
        return result
    ev = _event("refuse", name, alias, current(client, name, alias), v, reason=reason,
                message=f"alias kept moving; gave up after {MAX_ATTEMPTS} attempts")
    audit.record(client, exp_id, ev)
    raise Refused(f"refused to move {name}@{alias} to {v}: the alias kept moving "
                  f"({MAX_ATTEMPTS} attempts)", {"version": v, "alias": alias,
                                                 "from_version": None, "changed": False,
                                                 "notes": notes})


def decide_challenger(client: MlflowClient, name: str, mv) -> Decision:
    """What a canary challenger needs before any live traffic reaches it: the evidence a
    promotion needs, less the champion comparison (the canary itself is that comparison)."""
    return decide(None, client, name, mv, "challenger", None)


def champion_stack(events: list[audit.AuditEvent]) -> list[str]:
    """Replay champion moves: a promotion pushes, a rollback pops back to its target."""
    stack: list[str] = []
    for e in events:
        if e.alias != ROLLBACK_ALIAS or e.action == "refuse" or not e.to_version:
            continue
        if not stack and e.from_version:
            stack.append(e.from_version)
        if e.action == "rollback":
            if e.to_version in stack:
                while stack and stack[-1] != e.to_version:
                    stack.pop()
            else:
                if stack:
                    stack.pop()
                stack.append(e.to_version)
        elif not stack or stack[-1] != e.to_version:
            stack.append(e.to_version)
    return stack


def rollback(cfg: Config | None, out_dir: Path, name: str, to: str | None, reason: str
             ) -> dict[str, Any]:
    """Move champion back to the previous good champion (or `to`); record `rollback_of`."""
    from mlci.registry import tracking

    if not (reason and reason.strip()):
        raise MlciError("--reason \"…\" is required (it is recorded in the audit trail)")
    refuse_untrusted_write(f"roll {name}@champion back")
    client = tracking.client(cfg, out_dir)
    require_model(client, name)
    if to is not None:
        get_version(client, name, to)
    uri = tracking.tracking_uri(cfg, out_dir)
    exp_id = audit.experiment_id(client, name, out_dir, uri)
    for _attempt in range(MAX_ATTEMPTS):
        now = current(client, name, ROLLBACK_ALIAS)
        target, mv, skipped = _rollback_target(client, exp_id, name, now, to, reason)
        if target == now:
            return {"version": target, "from_version": now, "changed": False,
                    "notes": [f"{name}@champion is already {target}"]}
        ev = _event("rollback", name, ROLLBACK_ALIAS, now, target, reason=reason,
                    rollback_of=now, evidence_digest=audit.digest(
                        {"version": target, "evidence": evidence(mv)}),
                    message="skipped " + ", ".join(skipped) if skipped else None)
        passed = Decision([_c(f"{name}/{target} passed its gate", True)])
        try:
            notes = move(client, exp_id, ev, passed, expect=now)
        except Moved:
            continue
        return {"version": target, "from_version": now, "rollback_of": now, "changed": True,
                "event_id": ev.event_id, "skipped": skipped, "notes": notes}
    raise MlciError(f"{name}@champion kept moving; gave up after {MAX_ATTEMPTS} attempts")


def _rollback_target(client: MlflowClient, exp_id: str, name: str, now: str | None,
                     to: str | None, reason: str) -> tuple[str, Any, list[str]]:
    """The version to roll back to and why others were skipped; a refusal is recorded."""
    skipped: list[str] = []
    if to is not None:
        target = str(int(to))
        mv = get_version(client, name, target)
        if not _passed_its_gate(client, mv):
            ev = _event("refuse", name, ROLLBACK_ALIAS, now, target, reason=reason,
                        rollback_of=now, message=f"{name}/{target} did not pass its gate")
            audit.record(client, exp_id, ev)
            raise Refused(f"refused to roll {name}@champion back to {target}: it did not "
                          "pass its gate", {"version": now, "from_version": now,
                                            "refused": target})
        return target, mv, skipped
    stack = champion_stack(audit.events(client, exp_id, ROLLBACK_ALIAS))
    if now in stack:
        stack = stack[: len(stack) - stack[::-1].index(now) - 1]
    while stack:
        cand = stack.pop()
        if cand == now:
            continue
        try:
            mv = client.get_model_version(name, cand)
        except Exception:  # noqa: BLE001 - deleted version: skip it
            skipped.append(f"{cand} (deleted)")
            continue
        if _passed_its_gate(client, mv):
            return cand, mv, skipped
        skipped.append(f"{cand} (gate not passed)")
    raise MlciError(f"no previous good champion of {name} in the audit trail"
                    + (f" (skipped {', '.join(skipped)})" if skipped else "")
                    + "; give --version VERSION")


def record_canary(client: MlflowClient, out_dir: Path, uri: str, name: str, decision: str,
                  from_version: str | None, to_version: str | None, reason: str,
                  evidence_digest: str | None = None, alias: str = "champion") -> str:
    """For the canary controller: append its decision (promoted / rolled-back)."""
    exp_id = audit.experiment_id(client, name, out_dir, uri)
    ev = _event("canary", name, alias, from_version, to_version, reason=reason,
                evidence_digest=evidence_digest, message=decision)
    return audit.record(client, exp_id, ev)
