"""The registry lock: a lease held as a registered model only one client can create.

MLflow has no conditional update, so every step that could race is an *exclusive create* on
the store (its unique constraint on registered-model names answers RESOURCE_ALREADY_EXISTS to
all but one client):

- acquire: create `mlci-lock.<name>` carrying a random token, the lease expiry and the holder
  (`actor@host:pid`);
- break a stale lock (expired lease, or a holder process on this host that no longer exists)
  or release one's own: first create `mlci-lock.<name>.end.<token>`. Only the one client that
  created it may delete that lock generation; it re-reads the lock, deletes it only if it still
  carries that token, then drops the claim. Tokens never repeat, so a slow breaker can never
  delete the fresh lock another process took meanwhile (the old check-then-delete did).

A create that loses the race can also answer RESOURCE_DOES_NOT_EXIST: MLflow's SQL store
looks the existing model up after the unique-constraint error, and the winner may have
released it in between. Both answers mean "contended, try again".

A live holder renews its lease every third of it, so a short lease (30 s by default) is safe
for long critical sections and a holder killed on another machine blocks others at most that
long; one killed on this machine is detected at once (its process is gone).

The holder is named by host, boot, PID namespace, pid and the process's start time: a process
in another container on the same host (another PID namespace, the same host name) is never
taken for dead because a pid is free here, and a recycled pid is not the holder. A holder that
was paused past its lease (and whose lock was broken and taken by another) must not write
after it resumes: `check()` is the fencing test, run by the alias writer right before the
write, and refuses when the lock no longer carries this holder's token or its lease ran out.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlci import context
from mlci.errors import MlciError
from mlci.errors import mlflow_code as _code

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mlflow import MlflowClient

LOCK_PREFIX = "mlci-lock."
# what a losing exclusive create answers (see the module docstring)
_LOST_RACE = ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST")
END_INFIX = ".end."
DEFAULT_TTL = 30.0


def _lost_race(exc: Exception) -> bool:
    code = _code(exc)
    return any(c in code for c in _LOST_RACE)


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ("" when unknown or gone)."""
    stat = _read(f"/proc/{pid}/stat")
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


def _machine() -> str:
    """This process's host, boot and PID namespace: where a pid means one process."""
    try:
        ns = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        ns = "?"
    boot = _read("/proc/sys/kernel/random/boot_id")[:8] or "?"
    return f"{socket.gethostname()}/{boot}/{ns}"


def _holder_id() -> str:
    pid = os.getpid()
    return f"{context.actor()}@{_machine()}:{pid}:{_start_time(pid) or '?'}"


def _dead_on_this_host(holder: str) -> bool:
    """True only when the holder ran in this host, boot and PID namespace and its process
    (that pid with that start time) is gone; anything unknown is alive (the lease decides)."""
    who, _, rest = holder.partition("@")
    machine, _, proc = rest.partition(":")
    pid, _, started = proc.partition(":")
    if machine != _machine() or "?" in machine or not pid.isdigit() or not started \
            or started == "?":
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _start_time(int(pid)) != started  # the pid was reused by another process


@dataclass
class RegistryLock:
    """A lease held as a registered model only one client can create."""

    client: Any
    name: str
    ttl: float = DEFAULT_TTL
    wait: float = 120.0
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    _renewer: threading.Thread | None = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def lock_name(self) -> str:
        return LOCK_PREFIX + self.name

    def acquire(self) -> None:
        from mlflow.exceptions import MlflowException

        deadline = time.monotonic() + self.wait
        delay = 0.05
        while True:
            try:
                self.client.create_registered_model(
                    self.lock_name,
                    tags={"mlci.lock.token": self.token,
                          "mlci.lock.expires": f"{time.time() + self.ttl:.3f}",
                          "mlci.lock.holder": _holder_id()},
                    description=f"mlci registry lock for {self.name}; deleted when released",
                )
                self._start_renewing()
                return
            except MlflowException as exc:
                if not _lost_race(exc):
                    raise
            self._break_if_stale()
            if time.monotonic() > deadline:
                raise MlciError(f"registry lock {self.lock_name} still held after "
                                f"{self.wait:.0f}s; another promotion is running")
            time.sleep(delay * (0.5 + uuid.uuid4().int % 1000 / 1000))
            delay = min(delay * 2, 1.0)

    def _tags(self) -> dict[str, str] | None:
        from mlflow.exceptions import MlflowException

        try:
            return dict(self.client.get_registered_model(self.lock_name).tags or {})
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" in _code(exc):
                return None
            raise

    def _break_if_stale(self) -> None:
        tags = self._tags()
        if tags is None:
            return  # released in between
        token, expires_s = tags.get("mlci.lock.token"), tags.get("mlci.lock.expires")
        if not token or not expires_s:
            return  # being created or deleted (the store showed the row without its tags)
        try:
            expires = float(expires_s)
        except ValueError:
            expires = 0.0
        if expires < time.time() or _dead_on_this_host(tags.get("mlci.lock.holder", "")):
            self._end(token)

    def _end(self, token: str) -> bool:
        """Delete the lock generation `token`, as its one claimant; False if another client
        claimed it or the lock no longer carries that token."""
        from mlflow.exceptions import MlflowException

        claim = f"{self.lock_name}{END_INFIX}{token or 'none'}"
        try:
            self.client.create_registered_model(
                claim, description=f"ending mlci lock generation {token}")
        except MlflowException as exc:
            if _lost_race(exc):
                return False  # another client claimed this generation (and may be done)
            raise
        try:
            tags = self._tags()
            if tags is not None and tags.get("mlci.lock.token", "") == token:
                try:
                    self.client.delete_registered_model(self.lock_name)
                except MlflowException as exc:
                    if "RESOURCE_DOES_NOT_EXIST" not in _code(exc):
                        raise
                return True
            return False
        finally:
            with suppress(MlflowException):
                self.client.delete_registered_model(claim)

    def check(self) -> None:
        """The fencing test before a write: raise unless the lock still carries this holder's
        token and its lease has not run out (a holder paused past it may have been replaced)."""
        tags = self._tags()
        ok = tags is not None and tags.get("mlci.lock.token") == self.token
        try:
            ok = ok and float(tags.get("mlci.lock.expires", "0")) > time.time()  # type: ignore[union-attr]
        except ValueError:
            ok = False
        if not ok:
            raise MlciError(f"lost the registry lock {self.lock_name} (this process was paused "
                            "past its lease and another took it): nothing was written")

    def _start_renewing(self) -> None:
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, daemon=True,
                                         name=f"mlci-lock-{self.name}")
        self._renewer.start()

    def _renew(self) -> None:
        from mlflow.exceptions import MlflowException

        while not self._stop.wait(max(self.ttl / 3, 0.05)):
            with suppress(MlflowException):
                tags = self._tags()
                if tags is None or tags.get("mlci.lock.token") != self.token:
                    return  # lost (broken after a stall): nothing to renew
                self.client.set_registered_model_tag(
                    self.lock_name, "mlci.lock.expires", f"{time.time() + self.ttl:.3f}")

    def release(self) -> None:
        from mlflow.exceptions import MlflowException

        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        with suppress(MlflowException):
            self._end(self.token)


def _seconds(var: str, default: float) -> float:
    try:
        return float(os.environ.get(var) or default)
    except ValueError:
        raise MlciError(f"{var}={os.environ[var]!r} is not a number of seconds") from None


@contextmanager
def locked(client: MlflowClient, name: str) -> Iterator[RegistryLock]:
    """Hold the model's registry lock. MLCI_LOCK_TTL (lease, renewed while held; default
    30 s) and MLCI_LOCK_WAIT (how long to wait for it, default 120 s) tune it."""
    lock = RegistryLock(client, name, ttl=_seconds("MLCI_LOCK_TTL", DEFAULT_TTL),
                        wait=_seconds("MLCI_LOCK_WAIT", 120.0))
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
