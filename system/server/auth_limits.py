"""Rate limits on the auth endpoints, per user and per client address (token buckets).

Issuing a token costs a signature and a stored refresh row, so a client hammering `/auth/token`
or `/auth/refresh` (a credential-stuffing loop, a client stuck refreshing) is held to a rate:
beyond it the endpoint answers 429 with `Retry-After`. A request counts against its address
before its user is known, so guessing users from one address is bounded too.
"""
from __future__ import annotations

from system.server.config import ServerConfig
from system.server.ratelimit import KeyedLimiter, Rate


class AuthLimits:
    def __init__(self, config: ServerConfig) -> None:
        self.users = (KeyedLimiter(Rate(config.auth_user_rate, config.auth_user_burst))
                      if config.auth_user_rate is not None else None)
        self.addresses = (KeyedLimiter(Rate(config.auth_address_rate, config.auth_address_burst))
                          if config.auth_address_rate is not None else None)
        self.refused = 0

    def check(self, address: str | None, user: str | None, now: float) -> float:
        """0.0 when the request may go ahead, else the seconds until it may be retried."""
        wait = 0.0
        if self.addresses is not None:
            wait = self.addresses.take(address or "?", now)
        if not wait and self.users is not None and user is not None:
            wait = self.users.take(user, now)
        self.refused += bool(wait)
        return wait
