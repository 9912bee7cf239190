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
    forgotten key starts with a full bucket again).

    The buckets can outlive the process: `changed()` hands out the buckets taken from since it was
    last called (to be stored), `restore()` takes stored ones back (their times must then be on a
    clock that survives a restart)."""

    def __init__(self, rate: Rate, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._changed: set[str] = set()

    def take(self, key: str, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._bucket(key, TokenBucket(self.rate, now))
        else:
            self._buckets.move_to_end(key)
        self._changed.add(key)
        return bucket.take(now)

    def _bucket(self, key: str, bucket: TokenBucket) -> TokenBucket:
        self._buckets[key] = bucket
        if len(self._buckets) > self.max_keys:
            self._changed.discard(self._buckets.popitem(last=False)[0])
        return bucket

    def changed(self) -> list[tuple[str, float, float]]:
        """(key, tokens, last) of every bucket taken from since the previous call."""
        rows = [(k, self._buckets[k].tokens, self._buckets[k].last) for k in self._changed if k in self._buckets]
        self._changed.clear()
        return rows

    def restore(self, rows: list[tuple[str, float, float]]) -> None:
        """Take back buckets `changed()` handed out (by a previous process, say)."""
        for key, tokens, last in rows:
            bucket = self._bucket(key, TokenBucket(self.rate, last))
            bucket.tokens = min(float(self.rate.burst), tokens)

    def full_at(self, tokens: float, last: float) -> float:
        """When a bucket left with `tokens` at `last` is full again (then it need not be kept)."""
        return last + (self.rate.burst - tokens) / self.rate.per_s

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(wait: float) -> str:
    """A `Retry-After` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait)))
