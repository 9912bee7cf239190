"""Admission policy for new WebSocket connections, sans-IO.

The server and the SimPy model both drive this object, so it never reads a clock
or touches a socket: the caller passes `now` (seconds, any monotonic origin) and
acts on the returned Decision. A shed connection is closed with 1013 (try again
later) by the fixed server; the legacy server does not consult the policy at all.
"""
from __future__ import annotations

from dataclasses import dataclass

from system.wire import TRY_AGAIN_LATER


@dataclass(frozen=True)
class AdmissionConfig:
    """Limits; None means unlimited. `burst` is the token bucket's depth
    (None: one second's worth of `handshake_rate`, at least 1)."""

    max_connections: int | None = None
    handshake_rate: float | None = None
    burst: int | None = None

    def __post_init__(self) -> None:
        if self.max_connections is not None and self.max_connections < 0:
            raise ValueError(f"max_connections: expected >= 0, got {self.max_connections}")
        if self.handshake_rate is not None and self.handshake_rate <= 0:
            raise ValueError(f"handshake_rate: expected > 0 per second, got {self.handshake_rate}")
        if self.burst is not None and self.burst < 1:
            raise ValueError(f"burst: expected >= 1, got {self.burst}")

    @property
    def bucket_depth(self) -> float:
        if self.burst is not None:
            return float(self.burst)
        return max(1.0, float(self.handshake_rate or 1.0))


@dataclass(frozen=True)
class Decision:
    accepted: bool
    code: int | None
    reason: str


ACCEPT = Decision(True, None, "admitted")


class AdmissionPolicy:
    """Connection cap plus a token bucket on the handshake rate.

    Every accepted admit() must be paired with one release() when that
    connection ends; rejected ones must not be released.
    """

    def __init__(self, config: AdmissionConfig) -> None:
        self.config = config
        self.active = 0
        self.accepted = 0
        self.rejected = 0
        self._tokens = config.bucket_depth
        self._last: float | None = None

    def _refill(self, now: float) -> None:
        rate = self.config.handshake_rate
        if rate is None:
            return
        if self._last is not None and now > self._last:
            self._tokens = min(self.config.bucket_depth, self._tokens + (now - self._last) * rate)
        if self._last is None or now > self._last:
            self._last = now

    def admit(self, now: float) -> Decision:
        self._refill(now)
        cap = self.config.max_connections
        if cap is not None and self.active >= cap:
            self.rejected += 1
            return Decision(False, TRY_AGAIN_LATER, f"connection limit {cap} reached")
        if self.config.handshake_rate is not None:
            if self._tokens < 1.0:
                self.rejected += 1
                return Decision(False, TRY_AGAIN_LATER, f"handshake rate {self.config.handshake_rate:g}/s exceeded")
            self._tokens -= 1.0
        self.active += 1
        self.accepted += 1
        return ACCEPT

    def release(self, now: float) -> None:
        if self.active <= 0:
            raise RuntimeError("release() without a matching accepted admit()")
        self._refill(now)
        self.active -= 1
