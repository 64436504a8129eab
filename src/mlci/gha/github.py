"""A small GitHub REST client (standard library only) and the sticky comment on top of it.

Rate limits follow GitHub's documented rules ("Best practices for using the REST API"):
`retry-after` first; else, with `x-ratelimit-remaining: 0`, until `x-ratelimit-reset`; else a
secondary rate limit (403 or 429 whose message says "rate limit", often with no header at all)
waits at least one minute, doubling on each repeat. A wait longer than `max_wait` is not cut
short (retrying early extends the limit): the request fails instead. Any other 403 means the
token may not write here (a pull request from a fork), which callers turn into the job-summary
fallback.

The token is sent to the API host only: a redirect to another host is followed without the
`Authorization` header.
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
SECONDARY_WAIT = 60.0  # GitHub: "wait for at least one minute before retrying"
ACTIONS_BOT = "github-actions[bot]"  # the login of comments written with GITHUB_TOKEN


class GitHubError(Exception):
    """The API refused or failed in a way a retry does not fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"GitHub API {status}: {message}")
        self.status = status


class ReadOnlyToken(GitHubError):
    """403 that is not a rate limit: the token may not write here (e.g. a fork's pull request)."""


class RateLimited(GitHubError):
    """Still rate limited after the allowed retries, or the wait exceeds `max_wait`."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    data: Any


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but drop the token when one leaves the host it was meant for."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            for name in list(new.headers):
                if name.lower() == "authorization":
                    del new.headers[name]
        return new


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


_OPENER = urllib.request.build_opener(_SameHostRedirects)


@dataclass
class GitHub:
    api_url: str
    repo: str
    token: str
    retries: int = 3
    max_wait: float = 600.0
    timeout: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.time, repr=False)
    opener: urllib.request.OpenerDirector = field(default=_OPENER, repr=False)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else \
            f"{self.api_url.rstrip('/')}/{path.lstrip('/')}"

    def _headers(self, url: str, has_body: bool) -> dict[str, str]:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
                   "User-Agent": USER_AGENT}
        if _origin(url) == _origin(self.api_url):  # a `Link` to another host gets no token
            headers["Authorization"] = f"Bearer {self.token}"
        if has_body:
            headers["Content-Type"] = "application/json"
        return headers

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Response:
        data = None if body is None else json.dumps(body).encode()
        url = self.url(path)
        secondary = 0
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(url, data=data, method=method,
                                         headers=self._headers(url, data is not None))
            try:
                with self.opener.open(req, timeout=self.timeout) as resp:
                    raw = resp.read()
                    headers = {k.lower(): v for k, v in resp.headers.items()}
                    return Response(resp.status, headers, json.loads(raw) if raw else None)
            except urllib.error.HTTPError as exc:
                headers = {k.lower(): v for k, v in exc.headers.items()}
                message = _message(exc.read())
                limit = rate_limit_wait(exc.code, headers, message, self.clock(), secondary)
                if limit is not None:
                    secondary += 1
                    if attempt >= self.retries or limit > self.max_wait:
                        raise RateLimited(exc.code, f"{message} (rate limited; retry in "
                                                    f"{limit:.0f} s)") from None
                    self.sleep(limit)
                    continue
                if exc.code >= 500 and attempt < self.retries:
                    self.sleep(min(2.0 ** attempt, self.max_wait))
                    continue
                if exc.code == 403:
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

    def login(self) -> str:
        """Who the token is: `GET /user` for a user's token; GITHUB_TOKEN (an installation
        token, refused there) writes as github-actions[bot]."""
        try:
            data = self.request("GET", "user").data
        except ReadOnlyToken:
            return ACTIONS_BOT
        except GitHubError as exc:
            if exc.status in (401, 404):
                return ACTIONS_BOT
            raise
        return str((data or {}).get("login") or ACTIONS_BOT)


def _message(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("message", "")) or "no message"
    except (ValueError, AttributeError):
        return raw.decode(errors="replace").strip().splitlines()[0] if raw.strip() else "no body"


def rate_limit_wait(status: int, headers: dict[str, str], message: str, now: float,
                    repeats: int = 0) -> float | None:
    """Seconds GitHub asks us to wait when the response is a rate limit, else None.

    `repeats` counts the rate limits already met by this request: a secondary limit with no
    header waits 60 s, then 120 s, 240 s…"""
    if status not in (403, 429):
        return None
    retry_after = headers.get("retry-after", "").strip()
    if retry_after:
        try:
            return max(float(retry_after), 0.0)
        except ValueError:
            return SECONDARY_WAIT
    if headers.get("x-ratelimit-remaining") == "0":
        try:
            left = float(headers.get("x-ratelimit-reset", "0")) - now
        except ValueError:
            return SECONDARY_WAIT
        return left + 1.0 if left > 0 else 0.0  # a second past the reset: clocks differ
    if status == 429 or "rate limit" in message.lower():
        return SECONDARY_WAIT * 2.0 ** repeats
    return None


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


def post_sticky(gh: GitHub, body: str, marker: str, *, author: str, pr: int | None = None,
                sha: str | None = None) -> Posted:
    """Create or update the one comment carrying `marker` on a pull request or a commit.

    Only a comment written by `author` (the token's own login) is edited: anyone can paste the
    marker into a comment of theirs, and that comment must not become ours."""
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
    mine = [c for c in gh.paginate(listing)
            if tag in (c.get("body") or "") and (c.get("user") or {}).get("login") == author]
    if mine:
        resp = gh.request("PATCH", edit.format(id=mine[-1]["id"]), {"body": text})
        action = "updated"
    else:
        resp = gh.request("POST", create, {"body": text})
        action = "created"
    return Posted(resp.data.get("html_url", ""), action, int(resp.data["id"]))
