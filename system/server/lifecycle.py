"""When a live session ends because of the server, sans-IO: live token expiry and shutdown.

Both engines drive these rules with their own clock (`now` in the token's time base: wall seconds
for the server, scenario seconds for the model).
"""
from __future__ import annotations

from dataclasses import dataclass

from system import wire
from system.server.handshake import Outcome, refusal

#: how long a live session may run on an expired token before it must have sent a fresh one
#: in-band (`auth_refresh`); the server's `--expiry-grace` default, kept in scenario seconds by the
#: emulation and by the model
EXPIRY_GRACE_S = 10.0


@dataclass(frozen=True)
class LiveExpiry:
    """The live-expiry rule: a session whose token expired `grace` ago is refused (4401)."""

    grace: float = EXPIRY_GRACE_S

    def deadline(self, expires_at: float) -> float:
        """When the session is refused unless a fresh token moves `expires_at`."""
        return expires_at + self.grace

    def due(self, now: float, expires_at: float) -> bool:
        return now >= expires_at + self.grace

    def refuse(self, traits: frozenset[str]) -> Outcome:
        return refusal(traits, wire.AUTH_FAILED, "auth_expired", "access token expired; refresh and reconnect")

    @staticmethod
    def forced(expires_at: float, now: float) -> float:
        """A session whose token the server expired now (admin API, token-expiry fault)."""
        return min(expires_at, now)


def shutdown(traits: frozenset[str], *, crash: bool = False) -> Outcome:
    """What every live connection gets when the server stops: close 1012 (graceful) or, for a crash
    or a legacy server (`abrupt_shutdown`), a dropped connection (the client sees 1006)."""
    if crash or "abrupt_shutdown" in traits:
        return Outcome("abort", reason="shutdown")
    return Outcome("close", code=wire.SERVICE_RESTART, reason="service restart")
