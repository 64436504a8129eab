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


def model_exists(client: MlflowClient, name: str) -> bool:
    """Whether the registered model exists; a denied or failed read is an error."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if is_absent(exc):
            return False
        raise registry_error(f"model {name}", exc) from None
    return True


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


def version_by_ref(client: MlflowClient, name: str, ref: str):
    """A version by number or alias, or a one-line error."""
    from mlflow.exceptions import MlflowException

    try:
        if ref.isdigit():
            return client.get_model_version(name, ref)
        return client.get_model_version_by_alias(name, ref)
    except MlflowException:
        raise MlciError(f"model {name}@{ref} not found in the registry") from None


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


def set_candidate(client: MlflowClient, name: str, version: str) -> None:
    """`candidate` names the newest registered version: it only moves forward (a slower job
    that registered an older version does not take it back). Not a promotion: no evidence,
    no audit."""
    now = current(client, name, "candidate")
    if now is None or int(now) < int(version):
        set_alias(client, name, "candidate", version)


def remove(client: MlflowClient, name: str, alias: str) -> None:
    """Delete an alias; one that is already gone is fine."""
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model_alias(name, alias)
    except MlflowException as exc:
        if not is_absent(exc) and "RESOURCE_DOES_NOT_EXIST" not in _code(exc):
            raise registry_error(f"{name}@{alias}", exc) from None
