"""Weighted, sticky routing between the champion and the challenger.

A request carrying a key (a header such as a user id) is hashed with the rollout's id into one
of 10,000 buckets; the challenger owns the buckets below `weight * 100`. So a key always gets
the same variant at a given weight, and as the weight only grows during a rollout, a key that
reached the challenger stays there until the end. Requests without a key are split at random.

Both the bucket and the key stored in the prediction log are keyed hashes (BLAKE2b keyed with
the deployment's secret, `<out>/serve/route-secret`, created once and kept with the rollout
state): without the secret, a log reader cannot test guesses, so a 6-digit user id is no
longer found by hashing all million candidates.
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
from dataclasses import dataclass
from pathlib import Path

BUCKETS = 10_000
MIN_SECRET = 16  # bytes
CHAMPION, CHALLENGER, SHADOW = "champion", "challenger", "shadow"


def bucket(salt: str, key: str, secret: bytes = b"") -> int:
    h = hashlib.blake2b(f"{salt}\0{key}".encode(), digest_size=8, key=secret).digest()
    return int.from_bytes(h, "big") % BUCKETS


def route_key(key: str | None, secret: bytes) -> str | None:
    """The routing key as the log stores it: a keyed hash, never the key."""
    if not key:
        return None
    return hashlib.blake2b(key.encode(), digest_size=8, key=secret,
                           person=b"mlci-route").hexdigest()


def deployment_secret(path: Path) -> bytes:
    """The deployment's hashing secret: read from `path`, or created there (mode 0600,
    exclusively, so two gateways starting at once agree on one)."""
    path = Path(path)
    try:
        secret = bytes.fromhex(path.read_text(encoding="ascii").strip())[:64]
    except FileNotFoundError:
        secret = None
    if secret is not None:
        if len(secret) < MIN_SECRET:  # empty would mean unkeyed hashes anyone can test
            raise ValueError(f"{len(secret)} bytes; a route secret has at least "
                             f"{MIN_SECRET} (delete the file to create one)")
        return secret
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return deployment_secret(path)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(value.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return value


@dataclass(frozen=True)
class Routing:
    """What the gateway applies; swapped as one object, so a request sees one consistent table."""

    champion: str
    challenger: str | None = None
    weight: float = 0.0            # percent of traffic to the challenger
    shadow: bool = False           # challenger also scores champion traffic (logged only)
    canary_id: str | None = None
    generation: int = 0

    def choose(self, key: str | None, rng: random.Random | None = None, *,
               secret: bytes = b"") -> str:
        if self.challenger is None or self.weight <= 0:
            return CHAMPION
        if self.weight >= 100:
            return CHALLENGER
        if key:
            return CHALLENGER if bucket(self.canary_id or "", key, secret) < self.weight * 100 \
                else CHAMPION
        return CHALLENGER if (rng or random).random() * 100 < self.weight else CHAMPION

    def version(self, variant: str) -> str:
        if variant == CHAMPION:
            return self.champion
        assert self.challenger is not None
        return self.challenger
