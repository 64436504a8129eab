"""Where a run comes from: git state and the CI run, recorded as lineage tags."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mlci.gha import env


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def git_info(root: Path) -> dict[str, str]:
    commit = env.github("SHA") or _git(root, "rev-parse", "HEAD")
    branch = (
        env.github("HEAD_REF")
        or env.github("REF_NAME")
        or _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    )
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    repo = env.github("REPOSITORY") or _git(root, "config", "--get", "remote.origin.url")
    info = {
        "git.commit": commit or "unknown",
        "git.branch": branch or "unknown",
        "git.dirty": "true" if status else "false",
        "git.repo": repo or "unknown",
    }
    return info


def ci_run_url() -> str | None:
    return env.run_url() or None


def trigger() -> str:
    return os.environ.get("MLCI_TRIGGER") or env.event_name() or "local"


def trigger_reason() -> str | None:
    """Why this run happened: MLCI_TRIGGER_REASON, or a repository_dispatch payload's reason
    (what `mlci monitor --dispatch` sends), so lineage can tell "retrained because …"."""
    if os.environ.get("MLCI_TRIGGER_REASON"):
        return os.environ["MLCI_TRIGGER_REASON"][:500]
    if env.event_name() == "repository_dispatch":
        payload = env.event().get("client_payload")
        reason = payload.get("reason") if isinstance(payload, dict) else None
        return str(reason)[:500] if reason else None
    return None


def actor() -> str:
    return env.actor() or os.environ.get("USER") or "unknown"
