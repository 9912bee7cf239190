"""When a live session ends because of the server, sans-IO: live token expiry and shutdown.

Both engines drive these rules with their own clock (`now` in the token's time base: wall seconds
for the server, scenario seconds for the model).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Iterable, TypeVar

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


S = TypeVar("S", bound=Hashable)


@dataclass(frozen=True)
class Revocation:
    """Access tokens the server stops honouring while sessions may hold them: every one (a forced
    expiry of everyone: `users` and `family` None), those of `users` (a forced expiry of some), or
    those of one refresh `family` (a spent refresh token presented again revokes its family,
    RFC 6819 5.2.2.3, `system.server.tokens`)."""

    users: frozenset[str] | None = None
    family: str | None = None

    def hits(self, user: str, family: str) -> bool:
        if self.family is not None:
            return family == self.family
        return self.users is None or user in self.users

    def expire(self, live_expiry: bool, sessions: Iterable[tuple[S, str, str, float]],
               now: float) -> list[tuple[S, float]]:
        """The live sessions it hits (each given as (session, user, family, expires_at)), each with
        its expiry moved to `now` (`LiveExpiry.forced`): it must present a token of a family still
        honoured in-band within the grace, or `LiveExpiry.refuse` ends it (4401 after an
        `auth_expired` error frame, dropped under `abrupt_errors`). Without live expiry a live
        session's token is never checked again: none is hit."""
        if not live_expiry:
            return []
        return [(s, LiveExpiry.forced(expires_at, now)) for s, user, family, expires_at in sessions
                if self.hits(user, family)]


def shutdown(traits: frozenset[str], *, crash: bool = False) -> Outcome:
    """What every live connection gets when the server stops: close 1012 (graceful) or, for a crash
    or a legacy server (`abrupt_shutdown`), a dropped connection (the client sees 1006)."""
    if crash or "abrupt_shutdown" in traits:
        return Outcome("abort", reason="shutdown")
    return Outcome("close", code=wire.SERVICE_RESTART, reason="service restart")
