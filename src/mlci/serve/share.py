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

    def take(self, client: str, cost: float) -> bool:
        """Charge `cost` bytes to `client`: False (nothing charged) when over its share."""
        now = self.clock()
        with self._lock:
            level, since = self._buckets.pop(client, (self.capacity, now))
            level = min(self.capacity, level + (now - since) * self.rate)
            ok = cost <= level
            self._buckets[client] = (level - cost if ok else level, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return ok

    def retry_after(self, cost: float) -> int:
        """Seconds until a full bucket refills enough for `cost` (at least 1)."""
        return max(1, int(min(cost, self.capacity) / self.rate) + 1)
