"""HTTP test doubles on loopback: a ThreadingHTTPServer answering on a thread for a block."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# serve_forever's default 0.5 s made every shutdown wait up to half a second: about 30 s
# across the in-process tests' teardowns.
POLL_SECONDS = 0.02


@contextmanager
def running(server: ThreadingHTTPServer) -> Iterator[str]:
    """`server` answering until the block ends (then shut down and closed); yields its URL."""
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS},
                     daemon=True).start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> Iterator[str]:
    """`handler` on a free port of `host`, answering until the block ends; yields its URL."""
    with running(ThreadingHTTPServer((host, 0), handler)) as url:
        yield url
