"""Each client's share of the prediction log: a token bucket per client address.

One client may add at most `share` of the log's size retention per minute (by request body
size, which is what the log stores), with that much as its burst. So the heaviest single
caller needs at least 1/share minutes to push everyone else's rows out of the log, and the
log's growth from one anonymous caller is bounded however fast it sends. Buckets are kept for
the `max_clients` most recent clients (a forgotten client starts with a full bucket).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class ClientShare:
    def __init__(self, capacity: float, per_seconds: float = 60.0, *,
                 max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity, self.rate = capacity, capacity / per_seconds
        self.max_clients, self.clock = max_clients, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _level(self, client: str, now: float) -> float:
        level, since = self._buckets.pop(client, (self.capacity, now))
        return min(self.capacity, level + (now - since) * self.rate)

    def has_room(self, client: str, cost: float) -> bool:
        """Whether `client` may add `cost` bytes now (nothing is charged yet)."""
        now = self.clock()
        with self._lock:
            level = self._level(client, now)
            self._buckets[client] = (level, now)
            self._trim()
            return cost <= level

    def charge(self, client: str, cost: float) -> None:
        """Charge `cost` bytes that were logged (at most down to zero)."""
        now = self.clock()
        with self._lock:
            self._buckets[client] = (max(0.0, self._level(client, now) - cost), now)
            self._trim()

    def _trim(self) -> None:
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)

    def retry_after(self, cost: float) -> int:
        """Seconds until a full bucket refills enough for `cost` (at least 1)."""
        return max(1, int(min(cost, self.capacity) / self.rate) + 1)
