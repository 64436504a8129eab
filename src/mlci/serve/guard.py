"""What the gateway refuses before any model runs: slow or oversized requests, too many at
once, and callers without the token.

- `GuardedH11`: uvicorn's h11 protocol with deadlines uvicorn lacks, on every path (health
  probes included): one for a request's headers, one for its whole body (`body_timeout` plus
  a moment, so the `Guard`'s 408 comes first where it answers) and a minimum body rate
  (after the first second a body must average `min_body_rate` bytes/s). A connection that
  misses one is closed. It also caps open connections, in all and per client address: over
  a cap, the connection of that client (or, over the total, of anyone) that has trickled
  longest -- part of its headers and not the rest, or a body that is not finished -- is
  closed to make room, so trickled requests cannot lock out `/healthz` or a real client.
- `Guard`: ASGI middleware for the model endpoints (`/predict`, `/feedback`, `/v2/models/`):
  at most `max_concurrent` in flight and `max_client_concurrent` per client address (503
  beyond), a body size limit checked on `Content-Length` and while reading (413), and a
  deadline for the whole body (408). Health, readiness and metrics endpoints bypass it, so
  probes answer while the models are busy.
- `token_ok`: bearer-token check in constant time.

A client is its peer address: behind a proxy every caller shares one, so set the per-client
limits as high as the global ones there (see SECURITY.md).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import resource
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

GUARDED = ("/predict", "/feedback", "/v2/models/")
FD_RESERVE = 64  # descriptors kept for the log, the registry, model files and probes


@dataclass(frozen=True)
class Limits:
    max_body: int = 1 << 20            # bytes of one request body
    body_timeout: float = 10.0         # seconds to receive the whole body
    header_timeout: float = 5.0        # seconds from connection (or keep-alive) to full headers
    max_connections: int = 512         # open connections (lowered to fit RLIMIT_NOFILE)
    max_concurrent: int = 32           # model requests in flight
    max_client_concurrent: int | None = None  # per client address (None: 3/4 of the above)
    max_client_connections: int = 64   # open connections per client address
    min_body_rate: int = 1024          # bytes/s a body must average after its first second
    max_image_pixels: int = 1 << 20    # width x height of the images of one request
    # connections the event loop accepts in one go (asyncio uses the listen backlog): they
    # hold descriptors before the cap can close any, so the cap leaves room for them
    backlog: int = 256

    @property
    def client_slots(self) -> int:
        """Model requests one client may have in flight: by default three quarters of all,
        so one caller's slow uploads leave room for everyone else."""
        if self.max_client_concurrent is not None:
            return min(self.max_client_concurrent, self.max_concurrent)
        return max(1, self.max_concurrent * 3 // 4)

    def fitted(self) -> Limits:
        """These limits with the backlog and `max_connections` within the process's
        descriptor limit (a burst of connections must not run it out)."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self
        room = max(32, soft - FD_RESERVE)
        backlog = min(self.backlog, room // 2)
        conns = max(16, min(self.max_connections, room - backlog))
        return replace(self, backlog=backlog, max_connections=conns,
                       max_client_connections=min(self.max_client_connections, conns))


def token_ok(header: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time."""
    given = ""
    if header and header[:7].lower() == "bearer ":
        given = header[7:].strip()
    return hmac.compare_digest(given.encode(), token.encode())


async def _respond(send: Callable, status: int, msg: str, *, close: bool = False,
                   retry_after: int | None = None) -> None:
    body = json.dumps({"error": msg}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: concurrency cap, body size limit and body deadline."""

    def __init__(self, app: Any, limits: Limits, refused: Callable[[str, str], None]) -> None:
        self.app, self.limits, self.refused = app, limits, refused
        self.inflight = 0
        self.by_client: dict[str, int] = {}

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(GUARDED):
            return await self.app(scope, receive, send)
        endpoint = scope["path"].strip("/").split("/")[0] or "-"
        if self.inflight >= self.limits.max_concurrent:
            self.refused(endpoint, "overloaded")
            return await _respond(send, 503, f"over {self.limits.max_concurrent} requests in "
                                             "flight; retry later", retry_after=1)
        who = client_of(scope)
        if self.by_client.get(who, 0) >= self.limits.client_slots:
            self.refused(endpoint, "client_overloaded")
            return await _respond(send, 503, f"over {self.limits.client_slots} requests in "
                                             "flight from this client; retry later",
                                  retry_after=1)
        self.inflight += 1
        self.by_client[who] = self.by_client.get(who, 0) + 1
        try:
            body = await self._body(scope, receive, send, endpoint)
            if body is None:
                return None
            done = False

            async def replay() -> dict:
                nonlocal done
                if not done:
                    done = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            return await self.app(scope, replay, send)
        finally:
            self.inflight -= 1
            if (left := self.by_client.pop(who) - 1) > 0:
                self.by_client[who] = left

    async def _body(self, scope: dict, receive: Callable, send: Callable,
                    endpoint: str) -> bytes | None:
        limit = self.limits.max_body
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            self.refused(endpoint, "body_too_large")
            await _respond(send, 413, f"body over {limit} bytes", close=True)
            return None
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                while True:
                    msg = await receive()
                    if msg["type"] == "http.disconnect":
                        return None
                    chunk = msg.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        self.refused(endpoint, "body_too_large")
                        await _respond(send, 413, f"body over {limit} bytes", close=True)
                        return None
                    chunks.append(chunk)
                    if not msg.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            self.refused(endpoint, "body_timeout")
            await _respond(send, 408, f"body not received within "
                                      f"{self.limits.body_timeout:g} s", close=True)
            return None


def client_of(scope: Mapping[str, Any]) -> str:
    c = scope.get("client")
    return str(c[0]) if c else "-"


BODY_GRACE = 0.5  # the protocol's body deadline trails the Guard's, so the 408 comes first


def guarded_h11(limits: Limits, dropped: Callable[[str], None]) -> type:
    """uvicorn's h11 protocol with a header deadline and a connection cap."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    # connections trickling: awaiting headers, or a body -> since when, oldest first
    waiting: dict[Any, float] = {}

    def victim(now: float, peer: str | None = None) -> Any:
        """The connection (of `peer`, if given) trickling longest: part of its headers and
        not the rest, a body behind the minimum rate (counting its first second in full),
        or nothing received for a second. A connection accepted in the same burst whose
        bytes are not read yet is spared."""
        for conn, since in waiting.items():
            if peer is not None and conn._peer != peer:
                continue
            if conn._body_since is not None:
                if conn._body_bytes < limits.min_body_rate * max(1.0, now - since):
                    return conn
            elif conn._partial or now - since > 1.0:
                return conn
        return None

    by_peer: dict[str, int] = {}

    class GuardedH11(H11Protocol):
        _timer: asyncio.TimerHandle | None = None
        _body_timer: asyncio.TimerHandle | None = None
        _body_since: float | None = None
        _body_bytes = 0
        _partial = False
        _peer = "-"

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            peer = transport.get_extra_info("peername")
            self._peer = str(peer[0]) if peer else "-"
            by_peer[self._peer] = by_peer.get(self._peer, 0) + 1
            now = self.loop.time()
            if by_peer[self._peer] > limits.max_client_connections:
                room = self._make_room(victim(now, self._peer), "client_over_capacity")
            elif len(self.connections) > limits.max_connections:
                room = self._make_room(victim(now), "over_capacity")
            else:
                room = True
            if room:
                self._arm()

        def _make_room(self, v: Any, reason: str) -> bool:
            """Close `v` to admit this connection (True), or, without one, this one."""
            if v is None:
                dropped(reason)
                self._drop()
                return False
            dropped("evicted")
            v._drop()
            return True

        def data_received(self, data: bytes) -> None:
            if self._timer is None and self.conn.their_state is h11.IDLE:
                self._arm()  # the first bytes of a request on a kept-alive connection
            in_body = self._body_since is not None
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:
                self._partial = self._timer is not None
            else:
                self._partial = False
                self._disarm()
            if self.conn.their_state is h11.SEND_BODY:
                if not in_body:
                    self._start_body()
                self._body_bytes += len(data)  # the first packet's headers too: a bound
            elif in_body:
                self._end_body()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            self._end_body()
            if (left := by_peer.pop(self._peer, 1) - 1) > 0:
                by_peer[self._peer] = left
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._timer = self.loop.call_later(limits.header_timeout, self._expired)
            waiting[self] = self.loop.time()

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._body_since is None:
                waiting.pop(self, None)

        def _expired(self) -> None:
            self._timer = None
            dropped("header_timeout")
            self._drop()

        # the body: a total deadline and a minimum rate, checked once a second
        def _start_body(self) -> None:
            self._body_since, self._body_bytes = self.loop.time(), 0
            waiting[self] = self._body_since
            self._body_timer = self.loop.call_later(1.0, self._check_body)

        def _end_body(self) -> None:
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None
            if self._body_since is not None:
                self._body_since = None
                waiting.pop(self, None)

        def _check_body(self) -> None:
            self._body_timer = None
            if self._body_since is None:
                return
            elapsed = self.loop.time() - self._body_since
            if elapsed >= limits.body_timeout + BODY_GRACE:
                dropped("body_timeout")
                self._drop()
            elif self._body_bytes < limits.min_body_rate * elapsed \
                    and elapsed < limits.body_timeout - 0.1:  # else the deadline is due
                dropped("body_too_slow")
                self._drop()
            else:
                wait = min(1.0, limits.body_timeout + BODY_GRACE - elapsed)
                self._body_timer = self.loop.call_later(wait, self._check_body)

        def _drop(self) -> None:
            self._disarm()
            self._end_body()
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedH11
