"""Weighted, sticky routing between the champion and the challenger.

A request carrying a key (a header such as a user id) is hashed with the rollout's id into one
of 10,000 buckets; the challenger owns the buckets below `weight * 100`. So a key always gets
the same variant at a given weight, and as the weight only grows during a rollout, a key that
reached the challenger stays there until the end. Requests without a key are split at random.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

BUCKETS = 10_000
CHAMPION, CHALLENGER, SHADOW = "champion", "challenger", "shadow"


def bucket(salt: str, key: str) -> int:
    h = hashlib.blake2b(f"{salt}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") % BUCKETS


@dataclass(frozen=True)
class Routing:
    """What the gateway applies; swapped as one object, so a request sees one consistent table."""

    champion: str
    challenger: str | None = None
    weight: float = 0.0            # percent of traffic to the challenger
    shadow: bool = False           # challenger also scores champion traffic (logged only)
    canary_id: str | None = None
    generation: int = 0

    def choose(self, key: str | None, rng: random.Random | None = None) -> str:
        if self.challenger is None or self.weight <= 0:
            return CHAMPION
        if self.weight >= 100:
            return CHALLENGER
        if key:
            return CHALLENGER if bucket(self.canary_id or "", key) < self.weight * 100 \
                else CHAMPION
        return CHALLENGER if (rng or random).random() * 100 < self.weight else CHAMPION

    def version(self, variant: str) -> str:
        if variant == CHAMPION:
            return self.champion
        assert self.challenger is not None
        return self.challenger
