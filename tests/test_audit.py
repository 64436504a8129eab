"""The audit trail on a real SQLite store: append-only, complete events only, in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlci.registry import audit, tracking


@pytest.fixture
def store(tmp_path: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.init_store(uri)
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return c, audit.experiment_id(c, "iris", tmp_path, uri)


def ev(action: str, frm: str | None, to: str, **kw) -> audit.AuditEvent:
    return audit.AuditEvent(action=action, model="iris", alias=kw.pop("alias", "champion"),
                            from_version=frm, to_version=to, actor="ci-bot", **kw)


def test_events_round_trip_in_order(store) -> None:
    c, exp = store
    assert audit.events(c, None) == []
    a = ev("promote", None, "1", approver="alice", reason="first", evidence_digest="sha256:x",
           ci_run_url="https://github.com/o/r/actions/runs/1", trigger="push", git_commit="abc")
    b = ev("refuse", "1", "2", message="evaluation gate passed")
    d = ev("promote", "1", "3", alias="staging")
    for e in (a, b, d):
        audit.record(c, exp, e)
    got = audit.events(c, exp)
    assert [g.to_dict() for g in got] == [a.to_dict(), b.to_dict(), d.to_dict()]
    assert [g.to_version for g in audit.events(c, exp, "champion")] == ["1", "2"]
    assert c.get_experiment(exp).name == "mlci-audit/iris"


def test_events_cannot_be_rewritten(store) -> None:
    from mlflow.exceptions import MlflowException

    c, exp = store
    run_id = audit.record(c, exp, ev("promote", None, "1", reason="ok"))
    with pytest.raises(MlflowException):
        c.log_param(run_id, "to_version", "9")  # params are write-once in MLflow
    assert audit.events(c, exp)[0].to_version == "1"


def test_half_written_event_is_not_shown(store) -> None:
    c, exp = store
    audit.record(c, exp, ev("promote", None, "1"))
    run = c.create_run(exp, tags={"mlci.audit.alias": "champion"})  # crashed before params
    c.log_param(run.info.run_id, "schema", audit.SCHEMA)
    assert [e.to_version for e in audit.events(c, exp)] == ["1"]


def test_a_refusal_written_while_another_writer_settles_intents_is_kept(
        store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal is recorded outside the model's lock; a promoter holding the lock settles
    the intents a killed writer left. The refusal must never be one of them: it was lost
    (abandoned, FAILED) when the settling ran between its params and its confirmation."""
    c, exp = store
    real_confirm = audit.confirm

    def settle_meanwhile(client, run_id, note=None):
        confirmed = []

        def now_of(alias):  # the settler has read the intents; the refusal confirms now
            real_confirm(client, run_id, note)
            confirmed.append(run_id)

        audit.reconcile(client, exp, now_of)  # another writer, holding the lock
        if not confirmed:
            real_confirm(client, run_id, note)

    monkeypatch.setattr(audit, "confirm", settle_meanwhile)
    audit.record(c, exp, ev("refuse", "1", "4", message="evaluation gate passed"))
    assert [(e.action, e.to_version) for e in audit.events(c, exp)] == [("refuse", "4")]
    assert audit.pending(c, exp) == []


def test_long_reason_is_cut_not_rejected(store) -> None:
    c, exp = store
    audit.record(c, exp, ev("force", "1", "2", reason="x" * 10_000))
    [got] = audit.events(c, exp)
    assert got.reason == "x" * 2000


def test_digest_is_stable() -> None:
    assert audit.digest({"b": 1, "a": [1, 2]}) == audit.digest({"a": [1, 2], "b": 1})
    assert audit.digest({"a": 1}).startswith("sha256:")
