"""The audit trail of alias moves, kept in the tracking backend itself.

MLflow keeps no history of alias moves, so every promotion, refusal, rollback and canary
decision becomes one run in the experiment `mlci-audit/<model name>`. The event's fields are
logged as run *params*, which MLflow never lets anyone overwrite, and the run is marked
FINISHED only after all of them are written: `history` reads FINISHED runs only, so an event
interrupted half-way is never shown. The trail lives wherever the registry lives (SQLite file
or tracking server) and needs no other service.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from mlci.io import dumps_json, sha256_text

if TYPE_CHECKING:
    from mlflow import MlflowClient

SCHEMA = "mlci.audit/1"
EXPERIMENT_PREFIX = "mlci-audit/"
ACTIONS = ("promote", "refuse", "rollback", "canary", "force", "adopt")
PHASE = "mlci.audit.phase"  # intent | done | abandoned (see `begin`)
_MAX_TEXT = 2000  # reasons and messages are cut to this many characters


@dataclass
class AuditEvent:
    """One alias decision. `to_version` is the version the alias points at afterwards
    (for a refusal: the version that was refused)."""

    action: str                      # promote | refuse | rollback | canary | force | adopt
    model: str
    alias: str
    from_version: str | None
    to_version: str | None
    actor: str
    approver: str | None = None
    reason: str | None = None
    evidence_digest: str | None = None
    rollback_of: str | None = None
    ci_run_url: str | None = None
    trigger: str | None = None
    git_commit: str | None = None
    message: str | None = None       # what was checked or why it was refused
    time: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(
        timespec="microseconds"))
    event_id: str | None = None      # the audit run id, filled in when stored or read

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def experiment_name(model: str) -> str:
    return EXPERIMENT_PREFIX + model


@overload
def experiment_id(client: MlflowClient, model: str, out_dir: Path, uri: str,
                  create: Literal[True] = True) -> str: ...


@overload
def experiment_id(client: MlflowClient, model: str, out_dir: Path, uri: str,
                  create: bool) -> str | None: ...


def experiment_id(client: MlflowClient, model: str, out_dir: Path, uri: str,
                  create: bool = True) -> str | None:
    from mlci.registry import tracking

    if not create:
        exp = client.get_experiment_by_name(experiment_name(model))
        return exp.experiment_id if exp is not None else None
    return tracking.experiment_id(client, experiment_name(model), out_dir, uri)


def record(client: MlflowClient, exp_id: str, event: AuditEvent) -> str:
    """Append one event that moves nothing (a refusal, a canary step, an adoption); return its
    id (the run id). Params are immutable in MLflow. It is never an intent: it is written
    outside the model's lock, and a writer settling intents meanwhile would abandon it."""
    run_id = begin(client, exp_id, event, phase="done")
    confirm(client, run_id)
    return run_id


def begin(client: MlflowClient, exp_id: str, event: AuditEvent, phase: str = "intent") -> str:
    """Write a move's event as an *intent* before the alias moves: a run left RUNNING with
    every field, which `history` does not show until `confirm` (or, after a killed process,
    `reconcile`) finishes it."""
    from mlflow.entities import Param

    values = {f.name: getattr(event, f.name) for f in fields(event) if f.name != "event_id"}
    params = [Param(k, _text(v)) for k, v in values.items()]
    params.append(Param("schema", SCHEMA))
    run = client.create_run(
        exp_id, start_time=int(time.time() * 1000),
        run_name=f"{event.action} {event.alias} {event.from_version or 'none'}->"
                 f"{event.to_version or 'none'}",
        tags={"mlci.audit.action": event.action, "mlci.audit.alias": event.alias,
              "mlci.audit.to_version": event.to_version or "", PHASE: phase},
    )
    client.log_batch(run.info.run_id, params=params)
    event.event_id = run.info.run_id
    return run.info.run_id


def confirm(client: MlflowClient, run_id: str, note: str | None = None) -> None:
    """The alias moved as the intent said: the event becomes part of the trail."""
    from mlflow.entities import RunStatus

    if note:
        client.log_param(run_id, "reconciled", _text(note))
    client.set_tag(run_id, PHASE, "done")
    # against a server MLflow writes "View run ... at" links to stdout here; keep stdout for
    # the command's own (--json) output
    with contextlib.redirect_stdout(io.StringIO()):
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))


def reconcile(client: MlflowClient, exp_id: str, now_of: Any) -> list[str]:
    """Settle the intents a killed process left (call it holding the model's lock, so no live
    writer has one open): an intent whose alias points where it said is confirmed (the move
    happened, the confirmation was lost), any other is marked abandoned (the move never
    happened). `now_of(alias)` reads an alias. Returns one line per settled intent."""
    from mlflow.entities import RunStatus

    done: list[str] = []
    runs = client.search_runs([exp_id], filter_string=f"tags.`{PHASE}` = 'intent'",
                              max_results=100)
    for run in runs:
        p = run.data.params
        alias, to = p.get("alias") or "", p.get("to_version") or None
        what = f"{p.get('action')} {p.get('model')}@{alias} {p.get('from_version') or 'none'}" \
               f"->{to or 'none'}"
        if alias and now_of(alias) == to:
            confirm(client, run.info.run_id, "confirmed by a later command: the process that "
                                             "moved the alias stopped before confirming")
            done.append(f"confirmed an unconfirmed move ({what})")
        else:
            client.set_tag(run.info.run_id, PHASE, "abandoned")
            with contextlib.redirect_stdout(io.StringIO()):
                client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
            done.append(f"abandoned a move that never happened ({what})")
    return done


def events(client: MlflowClient, exp_id: str | None, alias: str | None = None) -> list[AuditEvent]:
    """Every complete event, oldest first."""
    if alias and not alias.replace("-", "").replace("_", "").isalnum():
        from mlci.errors import MlciError

        raise MlciError(f"alias {alias!r}: letters, digits, '-' and '_' only")
    if exp_id is None:
        return []
    flt = "attributes.status = 'FINISHED'"
    if alias:
        flt += f" and tags.`mlci.audit.alias` = '{alias}'"
    out: list[AuditEvent] = []
    token = None
    while True:
        page = client.search_runs([exp_id], filter_string=flt, max_results=1000,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        for run in page:
            ev = _from_params(run.data.params)
            if ev is not None:
                ev.event_id = run.info.run_id
                out.append(ev)
        token = page.token
        if not token:
            break
    out.sort(key=lambda e: e.time)
    return out


def pending(client: MlflowClient, exp_id: str | None,
            alias: str | None = None) -> list[AuditEvent]:
    """The intents still open: a move being made right now, or one whose process was killed
    before confirming (the next writer of the model settles it). Oldest first."""
    if exp_id is None:
        return []
    flt = f"tags.`{PHASE}` = 'intent'"
    if alias:
        events(client, None, alias)  # the same check of the alias as `events`
        flt += f" and tags.`mlci.audit.alias` = '{alias}'"
    out = []
    for run in client.search_runs([exp_id], filter_string=flt, max_results=100):
        ev = _from_params(run.data.params)
        if ev is not None:
            ev.event_id = run.info.run_id
            out.append(ev)
    return sorted(out, key=lambda e: e.time)


def _from_params(p: dict[str, str]) -> AuditEvent | None:
    if p.get("schema") != SCHEMA:
        return None
    kw = {f.name: (p.get(f.name) or None) for f in fields(AuditEvent) if f.name != "event_id"}
    if not kw["action"] or not kw["alias"] or not kw["model"] or not kw["time"]:
        return None
    kw["actor"] = kw["actor"] or "unknown"
    return AuditEvent(**kw)  # type: ignore[arg-type]


def _text(v: Any) -> str:
    if v is None:
        return ""
    s = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    return s[:_MAX_TEXT]


def digest(obj: Any) -> str:
    return "sha256:" + sha256_text(dumps_json(obj))
