"""Reconnect delays: capped exponential backoff with jitter, or the legacy client's fixed delay.

Kept apart from the policy so the delay laws can be read (and property-tested) on
their own. Jitter modes follow the AWS Builders' Library article: `full` is
U(0, d), `equal` is d/2 + U(0, d/2), `decorrelated` is min(cap, U(base, 3 * previous)).
"""
from __future__ import annotations

import random

from system.client.config import ClientConfig


class Backoff:
    def __init__(self, config: ClientConfig, rng: random.Random) -> None:
        self._config = config
        self._rng = rng
        self._previous = config.base_delay  # decorrelated jitter's memory
        # the law of the last delay: (low, high, cap) when it was min(cap, U(low, high)), None when it was
        # fixed; a model whose agent stands for several clients draws theirs from it (formats.record.derive)
        self.drawn: tuple[float, float, float] | None = None

    def reset(self) -> None:
        self._previous = self._config.base_delay

    def ceiling(self, failures: int, cap: float | None = None) -> float:
        """The un-jittered delay after `failures` consecutive failures (0 = the first retry);
        `cap` replaces `max_delay` (the policy's proactive refresh scales it with the token's life)."""
        c = self._config
        if not c.fixes.exp_backoff:
            return c.legacy_delay
        # min() before the power would overflow for long outages; 2**64 is far past any cap
        return min(c.max_delay if cap is None else cap, c.base_delay * 2.0 ** min(failures, 64))

    def delay(self, failures: int, cap: float | None = None) -> float:
        c = self._config
        ceiling = self.ceiling(failures, cap)
        if not c.fixes.jitter:
            self.drawn = None
            return ceiling
        if c.jitter == "equal":
            self.drawn = (ceiling / 2, ceiling, ceiling)
            return ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        if c.jitter == "decorrelated" and c.fixes.exp_backoff:
            if failures == 0:
                self.reset()
            top = c.max_delay if cap is None else cap
            self.drawn = (c.base_delay, 3 * self._previous, top)
            self._previous = min(top, self._rng.uniform(c.base_delay, 3 * self._previous))
            return self._previous
        self.drawn = (0.0, ceiling, ceiling)
        return self._rng.uniform(0, ceiling)  # full (and decorrelated without exponential growth)
