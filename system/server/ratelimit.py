"""Token buckets, sans-IO: the caller passes `now` (any monotonic origin).

Used for `resume` frames per connection and for the auth endpoints per user and per client
address. A refused take says how long until a token is back, which becomes `Retry-After`.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """`per_s` tokens a second, at most `burst` saved up."""

    per_s: float
    burst: int

    def __post_init__(self) -> None:
        if not self.per_s > 0:
            raise ValueError(f"rate: expected > 0 per second, got {self.per_s}")
        if self.burst < 1:
            raise ValueError(f"burst: expected >= 1, got {self.burst}")


class TokenBucket:
    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self.tokens = float(rate.burst)
        self.last = now

    def take(self, now: float) -> float:
        """0.0 when a token was taken, else the seconds until one will be there."""
        if now > self.last:
            self.tokens = min(float(self.rate.burst), self.tokens + (now - self.last) * self.rate.per_s)
            self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate.per_s


class KeyedLimiter:
    """One bucket per key (a user, an address), remembering at most `max_keys` of them: the least
    recently used is forgotten first, so an attacker cycling keys costs bounded memory (a
    forgotten key starts with a full bucket again)."""

    def __init__(self, rate: Rate, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(wait: float) -> str:
    """A `Retry-After` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait)))
