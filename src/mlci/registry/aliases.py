"""Small registry reads and the one alias write: which version an alias points at, set it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from mlci.errors import MlciError, is_absent, registry_error
from mlci.errors import mlflow_code as _code

if TYPE_CHECKING:
    from mlflow import MlflowClient

ALIASES = ("staging", "champion")
ROLLBACK_ALIAS = "champion"
TAG = "mlci."


def check_alias(alias: str, allowed: tuple[str, ...] = ALIASES) -> str:
    if alias in allowed:
        return alias
    close = [a for a in allowed if a.lower() == alias.strip().lower()]
    hint = f"; aliases are case-sensitive, did you mean {close[0]!r}?" if close else ""
    raise MlciError(f"alias {alias!r} is not one of {', '.join(allowed)}{hint}")


def require_model(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in _code(exc):
            raise MlciError(f"registered model {name!r} not found in the registry") from None
        raise


def get_version(client: MlflowClient, name: str, version: str):
    from mlflow.exceptions import MlflowException

    if not str(version).isdigit():
        raise MlciError(f"version {version!r} is not a version number")
    try:
        return client.get_model_version(name, str(int(version)))
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in _code(exc):
            raise MlciError(f"model version {name}/{version} not found") from None
        raise


def current(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version an alias points at, or None. (Search results may omit aliases; this
    asks the registry for the alias directly.)"""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if is_absent(exc):
            return None
        raise registry_error(f"{name}@{alias}", exc) from None


def set_alias(client: MlflowClient, name: str, alias: str, version: str) -> None:
    """Set and confirm; retry the unique-constraint error two first-time setters can hit."""
    from mlflow.exceptions import MlflowException

    for attempt in range(5):
        try:
            client.set_registered_model_alias(name, alias, version)
        except MlflowException as exc:
            msg = str(exc)
            if attempt < 4 and ("UNIQUE" in msg or "IntegrityError" in msg
                                or "TEMPORARILY_UNAVAILABLE" in _code(exc)):
                time.sleep(0.1 * (attempt + 1))
                continue
            raise
        if current(client, name, alias) == str(version):
            return
    raise MlciError(f"alias {name}@{alias} did not stay on version {version}: "
                    "something moved it outside mlci")
