"""How often one board may ask for what costs the hall (the hub's requests, webd's view of the boards): pure token buckets, time passed in.

A board's password is on the board, in the hall: whoever holds it (or a child at the dispenser's
button) may ask as fast as the network goes. Each bucket lets ``burst`` requests through at once,
then one every ``60 / per_minute`` seconds; an empty bucket answers how long until the next one.
The table is per key (a node id the broker's ACL pins to its account, with a service the site
knows): at most ``max_keys`` are kept, the least recently used forgotten first, and a forgotten
key is one with a full bucket, which is what it would have refilled to anyway.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimit:
    """Token buckets per key (see the module docstring)."""

    def __init__(self, *, burst: int, per_minute: float, max_keys: int = 256) -> None:
        if burst < 1 or per_minute <= 0 or max_keys < 1:
            raise ValueError("burst and max_keys must be >= 1 and per_minute > 0")
        self.burst, self.per_s, self.max_keys = burst, per_minute / 60.0, max_keys
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, key: Hashable, now: float) -> _Bucket:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(float(self.burst), now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            # a clock that went back refills nothing; one that jumped ahead fills the bucket at most
            b.tokens = min(float(self.burst), b.tokens + max(0.0, now - b.at) * self.per_s)
            b.at = now
        return b

    def take(self, key: Hashable, now: float) -> float:
        """Spend one request of ``key`` at ``now``: 0 when it may go, else the seconds until it may
        (rounded up to a whole second, at least 1)."""
        b = self._bucket(key, now)
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return float(max(1, math.ceil((1.0 - b.tokens) / self.per_s)))

    def full(self, key: Hashable, now: float) -> bool:
        """Whether ``key`` has all its burst again (or was never seen): it has been quiet long enough."""
        b = self._buckets.get(key)
        return b is None or b.tokens + max(0.0, now - b.at) * self.per_s >= self.burst
