"""What a job tells a step: the action's inputs (`MLCI_*`), the `GITHUB_*` context and the event
file. This module is the only reader of `GITHUB_*` and of the event file in the package (a
layer test holds it to that): every other module, at any layer, asks it.

Inputs reach Python only through `env:` (never interpolated into shell code); an empty input
means "not set" so that the command's own default applies."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

TRUE = ("1", "true", "yes", "on")


def value(name: str, default: str = "") -> str:
    """The input `MLCI_<name>`, stripped; `default` when empty or unset."""
    return os.environ.get(f"MLCI_{name}", "").strip() or default


def flag(name: str, default: bool = False) -> bool:
    raw = value(name)
    return raw.lower() in TRUE if raw else default


def repository() -> str:
    """owner/name: MLCI_REPO, else GITHUB_REPOSITORY (empty when neither is set)."""
    return value("REPO") or github("REPOSITORY")


def api_url() -> str:
    return value("API_URL") or github("API_URL") or "https://api.github.com"


def token() -> str:
    """MLCI_GITHUB_TOKEN (the action's `github-token` input), else GITHUB_TOKEN."""
    return value("GITHUB_TOKEN") or github("TOKEN")


def github(name: str) -> str:
    """`GITHUB_<name>`, stripped ("" outside Actions)."""
    return os.environ.get(f"GITHUB_{name}", "").strip()


def event_name() -> str:
    return github("EVENT_NAME")


def actor() -> str:
    return github("ACTOR")


def default_branch() -> str:
    """MLCI_DEFAULT_BRANCH, else the event's repository.default_branch ("" when unknown)."""
    return value("DEFAULT_BRANCH") or \
        str((event().get("repository") or {}).get("default_branch") or "")


_parsed: dict[tuple[str, int, int], dict[str, Any]] = {}


def event() -> dict[str, Any]:
    """The webhook payload GitHub wrote to GITHUB_EVENT_PATH ({} when absent or unreadable);
    parsed once per file version."""
    path = os.environ.get("GITHUB_EVENT_PATH")
    if not path:
        return {}
    try:
        st = Path(path).stat()
        key = (path, st.st_mtime_ns, st.st_size)
        if key not in _parsed:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            _parsed.clear()
            _parsed[key] = data if isinstance(data, dict) else {}
        return _parsed[key]
    except (OSError, ValueError):
        return {}


def event_pr(ev: dict[str, Any]) -> int | None:
    """The pull request number of the triggering event, if any."""
    pr = ev.get("pull_request")
    if isinstance(pr, dict) and isinstance(pr.get("number"), int):
        return pr["number"]
    issue = ev.get("issue")
    if isinstance(issue, dict) and issue.get("pull_request") and isinstance(issue.get("number"),
                                                                              int):
        return issue["number"]
    return None


def from_fork(ev: dict[str, Any]) -> bool:
    """A pull request whose head lives in another repository: its GITHUB_TOKEN is read-only."""
    pr = ev.get("pull_request")
    if not isinstance(pr, dict):
        return False
    head = ((pr.get("head") or {}).get("repo") or {}).get("full_name")
    base = ((pr.get("base") or {}).get("repo") or {}).get("full_name")
    return bool(head and base and head != base)


def run_url() -> str:
    """The run's page (its artifacts are listed there); empty outside Actions."""
    server = github("SERVER_URL").rstrip("/")
    repo, run_id = github("REPOSITORY"), github("RUN_ID")
    return f"{server}/{repo}/actions/runs/{run_id}" if server and repo and run_id else ""
