"""A small GitHub REST server on 127.0.0.1 for the comment poster's tests.

It speaks the endpoints `mlci comment` calls, with GitHub's shapes: issue comments and commit
comments (list with `per_page`/`page` and a `Link: rel="next"` header, create, update). For
`mlci data pr` it also speaks pull requests: list (filtered by `state`, `head=owner:branch` and
`base`), create (422 when an open one already exists for the branch, or when `git_remote` names a
bare repository standing in for github.com's git side and the branch is not in it) and update. Modes
make it answer like a fork's read-only token (403 "Resource not accessible by integration"),
like a rate limit (429 with Retry-After, 403 with X-RateLimit-Remaining: 0, or a secondary rate
limit: 403 with GitHub's message and no header), or fail (500). `GET /user` answers as it does
for GITHUB_TOKEN (403: an installation token is no user), or with `login` when one is set.
Comments it creates are written by `author` (github-actions[bot], as for GITHUB_TOKEN).
`redirect_to` makes every request a 307 to another server (a renamed repository moved to
another host), to check where the token goes. Every request is recorded (method, path, query,
whether the token matched and whether an Authorization header came at all). For the release
workflow it creates releases (422 `already_exists` for a tag that has one).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from e2e.loopback import running


@dataclass
class State:
    token: str = "ghs_test_token_value"
    issue_comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    commit_comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    releases: list[dict[str, Any]] = field(default_factory=list)
    git_remote: str | None = None  # bare repository whose branches a new pull request needs
    requests: list[dict[str, Any]] = field(default_factory=list)
    read_only: bool = False
    rate_limited: int = 0          # answer this many requests with a rate limit first
    rate_limit_kind: str = "429"   # "429", "403" (primary) or "secondary" (403, no header)
    login: str | None = None       # GET /user answers this login; None: 403 as for GITHUB_TOKEN
    author: str = "github-actions[bot]"
    redirect_to: str | None = None
    broken: bool = False
    next_id: int = 1000

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


class FakeGitHub:
    def __init__(self) -> None:
        self.state = State()
        self.lock = threading.Lock()
        handler = _make_handler(self)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._stack = ExitStack()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeGitHub:
        self._stack.enter_context(running(self.server))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def add_issue_comment(self, pr: int, body: str, user: str = "someone") -> dict[str, Any]:
        c = {"id": self.state.new_id(), "body": body, "user": {"login": user}}
        c["html_url"] = f"https://github.test/o/r/pull/{pr}#issuecomment-{c['id']}"
        self.state.issue_comments.setdefault(pr, []).append(c)
        return c


def _make_handler(gh: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        def _handle(self, method: str) -> None:
            st = gh.state
            parsed = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parsed.query))
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            auth_ok = self.headers.get("Authorization") == f"Bearer {st.token}"
            with gh.lock:
                st.requests.append({"method": method, "path": parsed.path, "query": query,
                                    "auth_ok": auth_ok,
                                    "authorization": "Authorization" in self.headers})
                if st.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", st.redirect_to.rstrip("/") + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                if st.rate_limited > 0:
                    st.rate_limited -= 1
                    if st.rate_limit_kind == "429":
                        return self._send(429, {"message": "rate limited"}, {"Retry-After": "0"})
                    if st.rate_limit_kind == "secondary":
                        return self._send(403, {"message": "You have exceeded a secondary rate "
                                                "limit. Please wait a few minutes before you "
                                                "try again."})
                    return self._send(403, {"message": "API rate limit exceeded"},
                                      {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "0"})
                if st.broken:
                    return self._send(500, {"message": "server error"})
                if not auth_ok:
                    return self._send(401, {"message": "Bad credentials"})
                if method != "GET" and st.read_only:
                    return self._send(403, {"message": "Resource not accessible by integration"})
                return self._route(method, parsed.path, query, body)

        def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
            st = gh.state
            parts = path.strip("/").split("/")
            if parts == ["user"] and method == "GET":
                if st.login is None:
                    return self._send(403, {"message": "Resource not accessible by integration"})
                return self._send(200, {"login": st.login, "type": "User"})
            # /repos/o/r/issues/{n}/comments | /repos/o/r/issues/comments/{id}
            # /repos/o/r/commits/{sha}/comments | /repos/o/r/comments/{id}
            if len(parts) < 4 or parts[0] != "repos":
                return self._send(404, {"message": "Not Found"})
            rest = parts[3:]
            if rest[0] == "issues" and len(rest) == 3 and rest[2] == "comments":
                items = st.issue_comments.setdefault(int(rest[1]), [])
                if method == "GET":
                    return self._list(path, items, query)
                if method == "POST":
                    c = gh.add_issue_comment(int(rest[1]), body["body"], user=st.author)
                    return self._send(201, c)
            if rest[0] == "issues" and len(rest) == 3 and rest[1] == "comments" \
                    and method == "PATCH":
                return self._patch([c for cs in st.issue_comments.values() for c in cs],
                                   int(rest[2]), body)
            if rest[0] == "commits" and len(rest) == 3 and rest[2] == "comments":
                items = st.commit_comments.setdefault(rest[1], [])
                if method == "GET":
                    return self._list(path, items, query)
                if method == "POST":
                    c = {"id": st.new_id(), "body": body["body"], "user": {"login": st.author},
                         "html_url": f"https://github.test/o/r/commit/{rest[1]}#c{st.next_id}"}
                    items.append(c)
                    return self._send(201, c)
            if rest[0] == "pulls":
                return self._pulls(method, parts[1], rest, query, body)
            if rest == ["releases"] and method == "POST":
                return self._release(parts[1], body)
            if rest[0] == "comments" and len(rest) == 2 and method == "PATCH":
                return self._patch([c for cs in st.commit_comments.values() for c in cs],
                                   int(rest[1]), body)
            return self._send(404, {"message": "Not Found"})

        def _list(self, path: str, items: list[dict[str, Any]], query: dict[str, str]) -> None:
            per_page = min(int(query.get("per_page", "30")), 100)
            page = int(query.get("page", "1"))
            chunk = items[(page - 1) * per_page: page * per_page]
            headers = {}
            if page * per_page < len(items):
                nxt = f"{gh.url}{path}?per_page={per_page}&page={page + 1}"
                last = (len(items) + per_page - 1) // per_page
                headers["Link"] = (f'<{nxt}>; rel="next", '
                                   f'<{gh.url}{path}?per_page={per_page}&page={last}>; '
                                   'rel="last"')
            self._send(200, chunk, headers)

        def _pulls(self, method: str, owner: str, rest: list[str], query: dict[str, str],
                   body: Any) -> None:
            st = gh.state
            if len(rest) == 1 and method == "GET":
                items = [p for p in st.pulls
                         if query.get("state", "open") in ("all", p["state"])
                         and ("head" not in query or query["head"] == f"{owner}:{p['head']['ref']}")
                         and ("base" not in query or query["base"] == p["base"]["ref"])]
                return self._list("/".join(["", "repos", owner, *rest]), items, query)
            if len(rest) == 1 and method == "POST":
                head, base = body.get("head", ""), body.get("base", "")
                if any(p["state"] == "open" and p["head"]["ref"] == head
                       and p["base"]["ref"] == base for p in st.pulls):
                    return self._send(422, {"message": "Validation Failed", "errors": [
                        {"message": f"A pull request already exists for {owner}:{head}."}]})
                if st.git_remote and not _has_branch(st.git_remote, head):
                    return self._send(422, {"message": "Validation Failed",
                                            "errors": [{"field": "head", "code": "invalid"}]})
                n = len(st.pulls) + 1
                p = {"number": n, "id": st.new_id(), "state": "open", "title": body["title"],
                     "body": body.get("body", ""), "head": {"ref": head}, "base": {"ref": base},
                     "html_url": f"https://github.test/{owner}/r/pull/{n}"}
                st.pulls.append(p)
                return self._send(201, p)
            if len(rest) == 2 and method == "PATCH":
                for p in st.pulls:
                    if p["number"] == int(rest[1]):
                        p.update({k: v for k, v in body.items() if k in ("title", "body")})
                        return self._send(200, p)
            return self._send(404, {"message": "Not Found"})

        def _release(self, owner: str, body: Any) -> None:
            st = gh.state
            if any(r["tag_name"] == body["tag_name"] for r in st.releases):
                return self._send(422, {"message": "Validation Failed", "errors": [
                    {"resource": "Release", "code": "already_exists", "field": "tag_name"}]})
            r = {**body, "id": st.new_id(),
                 "html_url": f"https://github.test/{owner}/r/releases/tag/{body['tag_name']}"}
            st.releases.append(r)
            return self._send(201, r)

        def _patch(self, items: list[dict[str, Any]], cid: int, body: Any) -> None:
            for c in items:
                if c["id"] == cid:
                    c["body"] = body["body"]
                    return self._send(200, c)
            return self._send(404, {"message": "Not Found"})

        def do_GET(self) -> None:  # noqa: N802
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

        def do_PATCH(self) -> None:  # noqa: N802
            self._handle("PATCH")

    return Handler


def _has_branch(git_dir: str, branch: str) -> bool:
    import subprocess

    p = subprocess.run(["git", "--git-dir", git_dir, "rev-parse", "--verify", "--quiet",
                        f"refs/heads/{branch}"], capture_output=True)
    return p.returncode == 0
