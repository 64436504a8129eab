"""Where a run comes from: git state and the CI run, recorded as lineage tags."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def git_info(root: Path) -> dict[str, str]:
    commit = os.environ.get("GITHUB_SHA") or _git(root, "rev-parse", "HEAD")
    branch = (
        os.environ.get("GITHUB_HEAD_REF")
        or os.environ.get("GITHUB_REF_NAME")
        or _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    )
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    repo = os.environ.get("GITHUB_REPOSITORY") or _git(root, "config", "--get", "remote.origin.url")
    info = {
        "git.commit": commit or "unknown",
        "git.branch": branch or "unknown",
        "git.dirty": "true" if status else "false",
        "git.repo": repo or "unknown",
    }
    return info


def ci_run_url() -> str | None:
    server, repo, run = (os.environ.get(k) for k in
                         ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    if server and repo and run:
        return f"{server}/{repo}/actions/runs/{run}"
    return None


def trigger() -> str:
    return os.environ.get("MLCI_TRIGGER") or os.environ.get("GITHUB_EVENT_NAME") or "local"


def trigger_reason() -> str | None:
    """Why this run happened: MLCI_TRIGGER_REASON, or a repository_dispatch payload's reason
    (what `mlci monitor --dispatch` sends), so lineage can tell "retrained because …"."""
    import json

    if os.environ.get("MLCI_TRIGGER_REASON"):
        return os.environ["MLCI_TRIGGER_REASON"][:500]
    path = os.environ.get("GITHUB_EVENT_PATH")
    if path and os.environ.get("GITHUB_EVENT_NAME") == "repository_dispatch":
        try:
            with open(path, encoding="utf-8") as fh:
                reason = (json.load(fh).get("client_payload") or {}).get("reason")
        except (OSError, ValueError):
            return None
        return str(reason)[:500] if reason else None
    return None


def actor() -> str:
    return os.environ.get("GITHUB_ACTOR") or os.environ.get("USER") or "unknown"
