"""The registry lock under forced timing, with several real processes on one SQLite store.

The stale-lock break used to be check-then-delete: a slow breaker that had read "expired"
deleted the *fresh* lock another process had taken meanwhile, and both held it. A holder
killed with SIGKILL blocked everyone for its whole lease.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest

from mlci.registry import lock

NAME = "iris"


def _client(db: Path):
    from mlflow import MlflowClient

    from mlci.registry import tracking

    uri = f"sqlite:///{db}"
    tracking.init_store(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


class _SlowDeletes:
    """The real client; its deletes of the lock wait for `gate` (forced timing)."""

    def __init__(self, client, gate, paused) -> None:
        self._c, self._gate, self._paused = client, gate, paused

    def __getattr__(self, name: str):
        return getattr(self._c, name)

    def delete_registered_model(self, name: str) -> None:
        if name == lock.LOCK_PREFIX + NAME:
            self._paused.set()
            self._gate.wait(120)
        self._c.delete_registered_model(name)


class _CountedLooks:
    """The real client; `looked` is set once it has read the lock three times (three tries
    at taking or breaking it)."""

    def __init__(self, client, looked) -> None:
        self._c, self._looked, self._n = client, looked, 0

    def __getattr__(self, name: str):
        return getattr(self._c, name)

    def get_registered_model(self, name: str):
        if name == lock.LOCK_PREFIX + NAME:
            self._n += 1
            if self._n >= 3:
                self._looked.set()
        return self._c.get_registered_model(name)


def _holder(db: str, slow: bool, gate, paused, held, log) -> None:
    """`paused`: set by the slow breaker when it waits before its delete; by the fast one
    after three looks at the lock."""
    client = _client(Path(db))
    lk = lock.RegistryLock(_SlowDeletes(client, gate, paused) if slow else
                           _CountedLooks(client, paused), NAME, ttl=30, wait=120)
    try:
        lk.acquire()
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        log.put(("error", repr(exc)))
        return
    t0 = time.time()
    log.put(("acquired", os.getpid()))
    held.set()
    time.sleep(1.5)  # the critical section
    log.put(("interval", t0, time.time()))
    lk.release()


def _stale_lock(db: Path) -> None:
    dead = lock.RegistryLock(_client(db), NAME, ttl=-1)
    dead.acquire()  # expired at once: a holder that died long ago


def test_a_slow_breaker_never_deletes_the_fresh_lock(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    _stale_lock(db)
    ctx = mp.get_context("spawn")
    # every Event stays referenced here: a collected one vanishes before a child unpickles it
    gate, paused, held, looked, ignored = (ctx.Event() for _ in range(5))
    log = ctx.Queue()
    slow = ctx.Process(target=_holder, args=(str(db), True, gate, paused, ignored, log))
    slow.start()
    assert paused.wait(90), "the slow breaker never reached the stale lock"
    # it has read the expired lock and now waits just before deleting it
    fast = ctx.Process(target=_holder, args=(str(db), False, gate, looked, held, log))
    fast.start()
    # the old break let the fast one in at its first look; the atomic one makes it wait
    deadline = time.monotonic() + 90
    while not (held.is_set() or looked.is_set()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert looked.is_set() or held.is_set(), "the fast holder never tried the lock"
    gate.set()  # now let the slow breaker delete what it saw as stale
    for p in (slow, fast):
        p.join(60)
    msgs = []
    while not log.empty():
        msgs.append(log.get())
    spans = sorted(m[1:] for m in msgs if m[0] == "interval")
    assert len(spans) == 2, msgs
    (a0, a1), (b0, b1) = spans
    assert b0 >= a1, f"both processes held the lock at once: {spans}"


def _kill_holder(db: str, ready) -> None:
    lk = lock.RegistryLock(_client(Path(db)), NAME, ttl=600)
    lk.acquire()
    ready.set()
    time.sleep(600)


@pytest.mark.exclusive  # times the wait; the others order events, not the clock
def test_a_killed_holder_on_this_host_does_not_block_for_its_lease(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    _client(db)
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_kill_holder, args=(str(db), ready))
    p.start()
    assert ready.wait(60)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    t0 = time.monotonic()
    lk = lock.RegistryLock(_client(db), NAME, ttl=30, wait=20)
    lk.acquire()
    waited = time.monotonic() - t0
    lk.release()
    assert waited < 5, f"waited {waited:.1f}s for a lock whose holder is dead (lease 600 s)"


def test_a_live_holder_is_never_broken(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    c = _client(db)
    live = lock.RegistryLock(c, NAME, ttl=600)
    live.acquire()
    other = lock.RegistryLock(_client(db), NAME, ttl=30, wait=1.5)
    with pytest.raises(Exception, match="still held"):
        other.acquire()
    live.release()
    other.acquire()
    other.release()


def test_a_create_that_loses_to_a_release_waits_and_takes_the_lock(tmp_path: Path,
                                                                   monkeypatch) -> None:
    """MLflow's SQL store answers a losing create by looking the winner's model up; when the
    winner released it in between, the loser gets RESOURCE_DOES_NOT_EXIST (seen on
    PostgreSQL in the promotion race). That is contention, not an error: retry and win."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    client = _client(tmp_path / "mlflow.db")
    winner = lock.RegistryLock(client, NAME, ttl=30, wait=5)
    winner.acquire()
    real_get = SqlAlchemyStore.get_registered_model
    released = []

    def get_after_release(self, name):  # the winner's release lands between the two queries
        if name == winner.lock_name and not released:
            released.append(name)
            winner.release()
        return real_get(self, name)

    monkeypatch.setattr(SqlAlchemyStore, "get_registered_model", get_after_release)
    loser = lock.RegistryLock(client, NAME, ttl=30, wait=5)
    loser.acquire()
    try:
        assert released == [winner.lock_name]
        assert client.get_registered_model(loser.lock_name).tags["mlci.lock.token"] == \
            loser.token
    finally:
        loser.release()
    assert list(client.search_registered_models(f"name = '{loser.lock_name}'")) == []


def test_a_holder_paused_past_its_lease_is_fenced_off(tmp_path: Path) -> None:
    """A holder stopped (SIGSTOP, a VM pause) past its lease: another breaks the lock and
    takes it; when the first resumes, the fence refuses its write instead of two holders
    writing."""
    from mlci.errors import MlciError

    db = tmp_path / "mlflow.db"
    c = _client(db)
    paused = lock.RegistryLock(c, NAME, ttl=600)
    paused.acquire()
    paused._stop.set()  # the pause: its renewer stops too
    paused._renewer.join()
    paused.check()  # still ours
    c.set_registered_model_tag(paused.lock_name, "mlci.lock.expires", f"{time.time() - 1:.3f}")
    other = lock.RegistryLock(_client(db), NAME, ttl=30, wait=10)
    other.acquire()  # breaks the expired lease
    with pytest.raises(MlciError, match="lost the registry lock"):
        paused.check()
    other.check()
    other.release()


def test_a_holder_in_another_pid_namespace_is_not_taken_for_dead(tmp_path: Path) -> None:
    """Same host name, a pid that is free here, but another PID namespace (a container):
    that process may be alive, so only its lease can end the lock."""
    import socket

    db = tmp_path / "mlflow.db"
    c = _client(db)
    holder = lock.RegistryLock(c, NAME, ttl=600)
    holder.acquire()
    holder._stop.set()
    holder._renewer.join()
    free_pid = 4_000_000  # above any pid_max: no process here has it
    c.set_registered_model_tag(holder.lock_name, "mlci.lock.holder",
                               f"ci@{socket.gethostname()}/x/4026531836:{free_pid}:123")
    assert not lock._dead_on_this_host(f"ci@{socket.gethostname()}/x/1:{free_pid}:123")
    here = lock._machine()
    assert lock._dead_on_this_host(f"ci@{here}:{free_pid}:123")  # this namespace: gone
    other = lock.RegistryLock(_client(db), NAME, ttl=30, wait=1.5)
    with pytest.raises(Exception, match="still held"):
        other.acquire()
