"""Where a registry write comes from, and which versions may be loaded as the champion.

A model is a pickle: loading it runs code, so a version is as trusted as the run that made it
(SECURITY.md). Pull-request runs never write to the registry: registering, promoting and
rolling back refuse in a `pull_request*` event unless MLCI_ALLOW_PR_REGISTRY=true (for a
throw-away registry). Every evaluated version records its origin as run *params*, which
MLflow never lets anyone change: the event, the ref, the default branch and whether that ref
is the default branch. `evaluate` loads a registry champion only when its origin says
trusted. With MLCI_TRUST_KEY set (a secret only default-branch jobs receive), the origin is
also signed (HMAC-SHA256) and the signature is required: code that runs in a pull request,
which has no key, cannot forge it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mlci.errors import MlciError
from mlci.gha import env

if TYPE_CHECKING:
    from mlflow import MlflowClient

PARAM = "mlci.trust."
PR_EVENTS = frozenset({"pull_request", "pull_request_target", "pull_request_review",
                       "pull_request_review_comment"})
FIELDS = ("event", "ref", "default_branch", "trusted")


def origin() -> dict[str, str]:
    """This process's origin. Outside GitHub Actions (no GITHUB_EVENT_NAME) it is a local
    run by whoever owns the store: trusted."""
    event = env.event_name() or "local"
    ref = env.github("REF")
    default = env.default_branch()
    if not default and event == "schedule" and ref.startswith("refs/heads/"):
        default = ref[len("refs/heads/"):]  # GitHub runs schedules on the default branch only
    if event == "local":
        trusted = True
    elif event in PR_EVENTS:
        trusted = False
    else:
        trusted = bool(default) and ref == f"refs/heads/{default}"
    return {"event": event, "ref": ref, "default_branch": default,
            "trusted": "true" if trusted else "false"}


def refuse_untrusted_write(action: str, *, store: str | None = None,
                           out_dir: Path | None = None) -> None:
    """Raise (exit 2) for a registry write from a pull-request event.

    Registering into the job's own embedded store (`<out>/mlflow.db`, what the code trigger
    uses on a pull request) is allowed: that store lives and dies with the job and is saved
    only from default-branch pushes, and its champion is loaded only when trusted (see
    `check_model`). Every other store is shared, and a pull request never writes to it.
    """
    event = env.event_name()
    allowed = (os.environ.get("MLCI_ALLOW_PR_REGISTRY") or "").lower() in ("1", "true", "yes")
    if store is not None and out_dir is not None and \
            store == f"sqlite:///{(out_dir / 'mlflow.db').resolve()}":
        allowed = True
    if event in PR_EVENTS and not allowed:
        raise MlciError(f"refusing to {action} from a {event} event: pull-request runs never "
                        "write to the registry (use --no-register; MLCI_ALLOW_PR_REGISTRY=true "
                        "only for a throw-away registry)")


MODEL_DIGEST = "mlci.model.digest"  # a run param, logged by train: the files of `model/`
EVIDENCE_SIGNATURE = PARAM + "evaluation."  # + digest prefix: HMAC of an evaluation record


def _key() -> str | None:
    key = os.environ.get("MLCI_TRUST_KEY")
    if key is not None and not key.strip():
        raise MlciError("MLCI_TRUST_KEY is set but empty: set the secret, or unset it")
    return key


def _signature(key: str, run_id: str, values: dict[str, str]) -> str:
    msg = json.dumps({"run_id": run_id, **values}, sort_keys=True).encode()
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()


def record(client: MlflowClient, run_id: str) -> dict[str, str]:
    """Log this process's origin on the run (params: written once, never changed); with
    MLCI_TRUST_KEY, sign it together with the digest of the model's files."""
    from mlflow.entities import Param

    values = origin()
    params = {PARAM + k: v for k, v in values.items()}
    existing = client.get_run(run_id).data.params
    key = _key()
    if key:
        signed = {**values, "model_digest": existing.get(MODEL_DIGEST, "")}
        params[PARAM + "signature"] = _signature(key, run_id, signed)
    new = [Param(k, v) for k, v in params.items() if k not in existing]
    if new:
        client.log_batch(run_id, params=new)
    return values


def sign_evidence(client: MlflowClient, run_id: str, digest: str) -> None:
    """With MLCI_TRUST_KEY: an HMAC over an evaluation record's digest, so that a record
    rewritten together with a new digest param (anyone with write access can add params) is
    still refused by the gate."""
    key = _key()
    if key:
        client.log_param(run_id, EVIDENCE_SIGNATURE + digest.split(":", 1)[1][:16],
                         _signature(key, run_id, {"evaluation_digest": digest}))


def evidence_signed(params: dict[str, str], run_id: str, digest: str) -> str:
    """Why an evaluation record's digest is not signed, or "" when it is (or no key is set)."""
    key = _key()
    if not key:
        return ""
    got = params.get(EVIDENCE_SIGNATURE + digest.split(":", 1)[1][:16], "")
    good = _signature(key, run_id, {"evaluation_digest": digest})
    return "" if hmac.compare_digest(good, got) else \
        "the evaluation record is not signed with MLCI_TRUST_KEY"


def check_model(client: MlflowClient, mv, files_digest: str, *, role: str = "model") -> None:
    """Raise (exit 2) before a registered version's files are unpickled, unless:

    - its files are the ones training recorded (`mlci.model.digest`): nobody swapped the
      pickle in the artifact store since;
    - its origin is the default branch (or a local run), as `mlci evaluate` or `mlci adopt`
      recorded it; a version with no origin at all (registered outside mlci) is refused,
      except by the gateway when no MLCI_TRUST_KEY is set (the operator chose that registry);
    - with MLCI_TRUST_KEY: the origin and the files' digest carry the key's signature.
    """
    params = client.get_run(mv.run_id).data.params
    where = f"{role} {mv.name}/{mv.version}"
    recorded = params.get(MODEL_DIGEST)
    if recorded is not None and recorded != files_digest:
        raise MlciError(f"{where}: its files differ from the ones training recorded "
                        f"({MODEL_DIGEST}): refusing to load it")
    values = {k: params.get(PARAM + k, "") for k in FIELDS}
    key = _key()
    if not values["event"]:
        if role == "served model" and not key:
            return
        raise MlciError(f"{where} has no recorded origin (registered outside mlci): refusing "
                        "to load it; bring it under mlci with `mlci adopt --version "
                        f"{mv.version}`")
    if values["trusted"] != "true":
        raise MlciError(f"{where} was registered from a {values['event']} event on "
                        f"{values['ref'] or 'an unknown ref'}, not from the default branch: "
                        "refusing to load it (promote a default-branch version, or "
                        "--baseline none)")
    if key:
        good = _signature(key, mv.run_id, {**values, "model_digest": recorded or ""})
        if recorded is None or not hmac.compare_digest(good, params.get(PARAM + "signature",
                                                                          "")):
            raise MlciError(f"{where}: its origin and files are not signed with "
                            "MLCI_TRUST_KEY: refusing to load it")
