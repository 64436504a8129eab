"""What the gateway refuses before any model runs: slow or oversized requests, too many at
once, and callers without the token.

- `GuardedH11`: uvicorn's h11 protocol with a deadline for a request's headers (uvicorn has
  none: a connection that never finishes its headers is held forever) and a cap on open
  connections. Over the cap, the connection that has trickled longest (part of its headers
  and not the rest) is closed to make room, so trickled requests cannot lock out
  `/healthz` or a real client.
- `Guard`: ASGI middleware for the model endpoints (`/predict`, `/feedback`, `/v2/models/`):
  at most `max_concurrent` in flight (503 beyond), a body size limit checked on
  `Content-Length` and while reading (413), and a deadline for the whole body (408). Health,
  readiness and metrics endpoints bypass it, so probes answer while the models are busy.
- `token_ok`: bearer-token check in constant time.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import resource
from collections.abc import Callable
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
    max_image_pixels: int = 1 << 20    # width x height of the images of one request
    # connections the event loop accepts in one go (asyncio uses the listen backlog): they
    # hold descriptors before the cap can close any, so the cap leaves room for them
    backlog: int = 256

    def fitted(self) -> Limits:
        """These limits with the backlog and `max_connections` within the process's
        descriptor limit (a burst of connections must not run it out)."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self
        room = max(32, soft - FD_RESERVE)
        backlog = min(self.backlog, room // 2)
        return replace(self, backlog=backlog,
                       max_connections=max(16, min(self.max_connections, room - backlog)))


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

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(GUARDED):
            return await self.app(scope, receive, send)
        endpoint = scope["path"].strip("/").split("/")[0] or "-"
        if self.inflight >= self.limits.max_concurrent:
            self.refused(endpoint, "overloaded")
            return await _respond(send, 503, f"over {self.limits.max_concurrent} requests in "
                                             "flight; retry later", retry_after=1)
        self.inflight += 1
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


def guarded_h11(limits: Limits, dropped: Callable[[str], None]) -> type:
    """uvicorn's h11 protocol with a header deadline and a connection cap."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    waiting: dict[Any, float] = {}  # connections awaiting headers -> since, oldest first

    def victim(now: float) -> Any:
        """The connection trickling longest: part of its headers received and not the rest,
        or nothing received for a second. A connection accepted in the same burst whose
        bytes are not read yet is spared."""
        for conn, since in waiting.items():
            if conn._partial or now - since > 1.0:
                return conn
        return None

    class GuardedH11(H11Protocol):
        _timer: asyncio.TimerHandle | None = None
        _partial = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                v = victim(self.loop.time())
                if v is None:
                    dropped("over_capacity")
                    self._drop()
                    return
                dropped("evicted")
                v._drop()
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._timer is None and self.conn.their_state is h11.IDLE:
                self._arm()  # the first bytes of a request on a kept-alive connection
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:
                self._partial = self._timer is not None
            else:
                self._partial = False
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._timer = self.loop.call_later(limits.header_timeout, self._expired)
            waiting[self] = self.loop.time()

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            waiting.pop(self, None)

        def _expired(self) -> None:
            self._timer = None
            dropped("header_timeout")
            self._drop()

        def _drop(self) -> None:
            self._disarm()
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedH11
