"""Rate limits on the auth endpoints, per user and per client address (token buckets).

Issuing a token costs a signature and a stored refresh row, so a client hammering `/auth/token`
or `/auth/refresh` (a credential-stuffing loop, a client stuck refreshing) is held to a rate:
beyond it the endpoint answers 429 with `Retry-After`. A request counts against its address
before its user is known, so guessing users from one address is bounded too.

The buckets live on `clock.now()` (unix seconds) and are kept in the server's SQLite (`save`
at most `SAVE_EVERY_S` after a request, and at shutdown; `load` at start), so a restart does not
hand a client a full burst again: a crash forgets at most the last `SAVE_EVERY_S` of requests. A
stored bucket is deleted once it would be full again.
"""
from __future__ import annotations

from system.server.config import ServerConfig
from system.server.ratelimit import KeyedLimiter, Rate
from system.server.store import Store

SAVE_EVERY_S = 1.0


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

    def _limiters(self) -> dict[str, KeyedLimiter]:
        return {name: limiter for name, limiter in (("user", self.users), ("address", self.addresses))
                if limiter is not None}

    def save(self, store: Store, now: float) -> None:
        """Store the buckets taken from since the last save; drop stored ones full by `now`."""
        for name, limiter in self._limiters().items():
            rows = limiter.changed()
            store.save_buckets(name, [(key, tokens, last, limiter.full_at(tokens, last))
                                      for key, tokens, last in rows], now)

    def load(self, store: Store, now: float) -> None:
        """Take back the buckets a previous process stored and that are not full by `now`."""
        for name, limiter in self._limiters().items():
            limiter.restore(store.buckets(name, now))
