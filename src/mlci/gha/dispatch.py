"""`repository_dispatch`: how a monitoring run starts the data trigger (or tells of a rollback)."""

from __future__ import annotations

import urllib.parse
from typing import Any

from mlci.errors import MlciError
from mlci.gha import env
from mlci.gha.github import GitHub, GitHubError


def dispatch(event_type: str, payload: dict[str, Any]) -> str:
    """POST /repos/{repo}/dispatches with MLCI_GITHUB_TOKEN (else GITHUB_TOKEN) to MLCI_REPO
    (else GITHUB_REPOSITORY); returns the line recorded among the run's actions."""
    token, repo = env.token(), env.repository()
    if not token or not repo:
        raise MlciError("--dispatch needs GITHUB_TOKEN and GITHUB_REPOSITORY (or MLCI_REPO)")
    gh = GitHub(api_url=env.api_url(), repo=repo, token=token)
    body = {"event_type": event_type,
            "client_payload": {k: v for k, v in payload.items() if v is not None}}
    try:
        gh.request("POST", f"/repos/{urllib.parse.quote(repo, safe='/')}/dispatches", body)
    except GitHubError as exc:
        raise MlciError(f"repository_dispatch to {repo} failed: {exc}") from None
    return f"dispatched {event_type} to {repo}"
