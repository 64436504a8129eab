"""The registry lock: a lease held as a registered model only one client can create."""

from __future__ import annotations

import os
import socket
import time
import uuid
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlci import context
from mlci.errors import MlciError
from mlci.registry.aliases import _code

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mlflow import MlflowClient

LOCK_PREFIX = "mlci-lock."


@dataclass
class RegistryLock:
    """A lease held as a registered model only one client can create."""

    client: Any
    name: str
    ttl: float = 120.0
    wait: float = 120.0
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

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
                          "mlci.lock.holder": f"{context.actor()}@{socket.gethostname()}:"
                                              f"{os.getpid()}"},
                    description=f"mlci registry lock for {self.name}; deleted when released",
                )
                return
            except MlflowException as exc:
                if "RESOURCE_ALREADY_EXISTS" not in _code(exc):
                    raise
            self._break_if_stale()
            if time.monotonic() > deadline:
                raise MlciError(f"registry lock {self.lock_name} still held after "
                                f"{self.wait:.0f}s; another promotion is running")
            time.sleep(delay * (0.5 + uuid.uuid4().int % 1000 / 1000))
            delay = min(delay * 2, 1.0)

    def _break_if_stale(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            tags = self.client.get_registered_model(self.lock_name).tags
        except MlflowException:
            return  # released in between
        try:
            expires = float(tags.get("mlci.lock.expires", "0"))
        except ValueError:
            expires = 0.0
        if expires < time.time():
            with suppress(MlflowException):
                self.client.delete_registered_model(self.lock_name)

    def release(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            tags = self.client.get_registered_model(self.lock_name).tags
            if tags.get("mlci.lock.token") == self.token:
                self.client.delete_registered_model(self.lock_name)
        except MlflowException:
            pass


def _seconds(var: str, default: float) -> float:
    try:
        return float(os.environ.get(var) or default)
    except ValueError:
        raise MlciError(f"{var}={os.environ[var]!r} is not a number of seconds") from None


@contextmanager
def locked(client: MlflowClient, name: str) -> Iterator[None]:
    """Hold the model's registry lock. MLCI_LOCK_TTL (lease, default 120 s) and
    MLCI_LOCK_WAIT (how long to wait for it, default 120 s) tune it."""
    lock = RegistryLock(client, name, ttl=_seconds("MLCI_LOCK_TTL", 120.0),
                        wait=_seconds("MLCI_LOCK_WAIT", 120.0))
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
