"""Open, or update, the one pull request of a branch through the GitHub REST API.

The data trigger pushes its updated `.dvc`/`dvc.lock` files to a branch and asks for a pull
request from that branch to the base, with the report as the body, so a data change is reviewed
like code. One pull request per branch: when an open one already exists (found by
`head=<owner>:<branch>`), its title and body are updated instead of opening a second one. A race
with another job that opened it first (422 "A pull request already exists") ends the same way.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any

from mlci.gha.github import MAX_BODY, GitHub, GitHubError


@dataclass
class PullRequest:
    url: str
    number: int
    action: str  # "created" | "updated"


def fit_body(body: str) -> str:
    """The body within GitHub's limit (65,536 characters), marked when cut."""
    if len(body) <= MAX_BODY:
        return body
    note = "\n\n… (truncated)"
    return body[: MAX_BODY - len(note)] + note


def find_open(gh: GitHub, branch: str, base: str) -> dict[str, Any] | None:
    """The open pull request from `branch` (in the repository itself) to `base`, if any."""
    owner = gh.repo.split("/", 1)[0]
    query = urllib.parse.urlencode({"state": "open", "head": f"{owner}:{branch}", "base": base})
    repo = urllib.parse.quote(gh.repo, safe="/")
    for pr in gh.paginate(f"repos/{repo}/pulls?{query}"):
        if (pr.get("head") or {}).get("ref") == branch and pr.get("state", "open") == "open":
            return pr
    return None


def open_or_update(gh: GitHub, *, branch: str, base: str, title: str,
                   body: str) -> PullRequest:
    """Create the pull request `branch` → `base`, or update the open one's title and body."""
    if not branch or not base:
        raise ValueError("a branch and a base are needed")
    if branch == base:
        raise ValueError(f"the branch and the base are the same ({branch!r})")
    repo = urllib.parse.quote(gh.repo, safe="/")
    text = fit_body(body)
    existing = find_open(gh, branch, base)
    if existing is None:
        try:
            resp = gh.request("POST", f"repos/{repo}/pulls",
                              {"title": title, "head": branch, "base": base, "body": text})
            return _result(resp.data, "created")
        except GitHubError as exc:
            if exc.status != 422:
                raise
            existing = find_open(gh, branch, base)  # opened meanwhile by another job
            if existing is None:
                raise
    resp = gh.request("PATCH", f"repos/{repo}/pulls/{int(existing['number'])}",
                      {"title": title, "body": text})
    return _result(resp.data, "updated")


def _result(data: dict[str, Any], action: str) -> PullRequest:
    return PullRequest(str(data.get("html_url", "")), int(data["number"]), action)
