"""Post the report as one sticky comment through the GitHub REST API.

Only the standard library is used. The comment carries an HTML marker; on every push the last
comment holding that marker is updated in place instead of adding a new one. Listing follows
`Link: rel="next"` (100 comments a page). Rate limits (429, or 403 with no remaining quota) are
waited out a bounded number of times; any other 403 means the token cannot write (a pull
request from a fork), which the caller turns into a job-summary fallback.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_BODY = 65_536  # GitHub's limit on a comment body
USER_AGENT = "mlci-comment"


class GitHubError(Exception):
    """The API refused or failed in a way a retry does not fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"GitHub API {status}: {message}")
        self.status = status


class ReadOnlyToken(GitHubError):
    """403 that is not a rate limit: the token may not write here (e.g. a fork's pull request)."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    data: Any


@dataclass
class GitHub:
    api_url: str
    repo: str
    token: str
    retries: int = 3
    max_wait: float = 60.0
    timeout: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else \
            f"{self.api_url.rstrip('/')}/{path.lstrip('/')}"

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Response:
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(self.url(path), data=data, method=method, headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": USER_AGENT,
                **({"Content-Type": "application/json"} if data is not None else {}),
            })
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                    raw = resp.read()
                    headers = {k.lower(): v for k, v in resp.headers.items()}
                    return Response(resp.status, headers, json.loads(raw) if raw else None)
            except urllib.error.HTTPError as exc:
                headers = {k.lower(): v for k, v in exc.headers.items()}
                message = _message(exc.read())
                wait = _rate_limit_wait(exc.code, headers)
                if wait is None and exc.code >= 500:
                    wait = 2.0 ** attempt
                if wait is not None and attempt < self.retries:
                    self.sleep(min(wait, self.max_wait))
                    continue
                if exc.code == 403 and _rate_limit_wait(403, headers) is None:
                    raise ReadOnlyToken(403, message) from None
                raise GitHubError(exc.code, message) from None
            except urllib.error.URLError as exc:
                if attempt < self.retries:
                    self.sleep(min(2.0 ** attempt, self.max_wait))
                    continue
                raise GitHubError(0, f"cannot reach {self.api_url}: {exc.reason}") from None
        raise AssertionError("unreachable")

    def paginate(self, path: str) -> list[dict[str, Any]]:
        """Every item of a listing, following `Link: <…>; rel="next"`."""
        sep = "&" if "?" in path else "?"
        url: str | None = f"{path}{sep}per_page=100"
        items: list[dict[str, Any]] = []
        while url:
            resp = self.request("GET", url)
            items.extend(resp.data or [])
            url = next_link(resp.headers.get("link", ""))
        return items


def _message(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("message", "")) or "no message"
    except (ValueError, AttributeError):
        return raw.decode(errors="replace").strip().splitlines()[0] if raw.strip() else "no body"


def _rate_limit_wait(status: int, headers: dict[str, str]) -> float | None:
    """Seconds to wait when the response is a rate limit, else None."""
    if status not in (403, 429):
        return None
    if "retry-after" in headers:
        try:
            return max(float(headers["retry-after"]), 0.0)
        except ValueError:
            return 1.0
    if headers.get("x-ratelimit-remaining") == "0":
        try:
            return max(float(headers.get("x-ratelimit-reset", "0")) - time.time(), 0.0) + 1.0
        except ValueError:
            return 1.0
    return 1.0 if status == 429 else None


def next_link(link: str) -> str | None:
    for part in link.split(","):
        m = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', part)
        if m:
            return m.group(1)
    return None


def marker_line(marker: str) -> str:
    return f"<!-- {marker.replace('--', '- -')} -->"


def with_marker(body: str, marker: str) -> str:
    tail = "\n\n" + marker_line(marker) + "\n"
    if len(body) + len(tail) > MAX_BODY:
        note = "\n\n… (truncated)"
        body = body[: MAX_BODY - len(tail) - len(note)] + note
    return body + tail


@dataclass
class Posted:
    url: str
    action: str  # "created" | "updated"
    comment_id: int


def post_sticky(gh: GitHub, body: str, marker: str, *, pr: int | None = None,
                sha: str | None = None) -> Posted:
    """Create or update the one comment carrying `marker` on a pull request or a commit."""
    repo = urllib.parse.quote(gh.repo, safe="/")
    if pr is not None:
        listing, create = f"repos/{repo}/issues/{pr}/comments", f"repos/{repo}/issues/{pr}/comments"
        edit = f"repos/{repo}/issues/comments/{{id}}"
    elif sha:
        listing = create = f"repos/{repo}/commits/{sha}/comments"
        edit = f"repos/{repo}/comments/{{id}}"
    else:
        raise ValueError("a pull request number or a commit sha is needed")
    text = with_marker(body, marker)
    tag = marker_line(marker)
    mine = [c for c in gh.paginate(listing) if tag in (c.get("body") or "")]
    if mine:
        resp = gh.request("PATCH", edit.format(id=mine[-1]["id"]), {"body": text})
        action = "updated"
    else:
        resp = gh.request("POST", create, {"body": text})
        action = "created"
    return Posted(resp.data.get("html_url", ""), action, int(resp.data["id"]))
