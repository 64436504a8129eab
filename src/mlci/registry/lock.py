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
long; one killed on this machine is detected at once (its pid is gone).
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


def _holder_id() -> str:
    return f"{context.actor()}@{socket.gethostname()}:{os.getpid()}"


def _dead_on_this_host(holder: str) -> bool:
    """True when the holder ran on this machine and its process is gone."""
    who, _, pid = holder.rpartition(":")
    host = who.rpartition("@")[2]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


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
def locked(client: MlflowClient, name: str) -> Iterator[None]:
    """Hold the model's registry lock. MLCI_LOCK_TTL (lease, renewed while held; default
    30 s) and MLCI_LOCK_WAIT (how long to wait for it, default 120 s) tune it."""
    lock = RegistryLock(client, name, ttl=_seconds("MLCI_LOCK_TTL", DEFAULT_TTL),
                        wait=_seconds("MLCI_LOCK_WAIT", 120.0))
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
