"""Access and refresh tokens.

Access tokens are JWTs signed with HS256 only (the algorithm is pinned on decode, so
`alg: none` and every other algorithm are rejected), checked for `exp`, `iat`, `sub` and
`aud`. `exp` is whole seconds as RFC 7519 says; the precise expiry, which matters when the
harness compresses a 15 min TTL to seconds, rides in the `xp` claim. Time is the service's
`clock` (the event loop's, `system.clock`), never PyJWT's own `time.time()`: `exp` and `iat`
are required and signed, and `exp` and `xp` are judged here against that clock. Forced expiry (the
bench's token-expiry fault) bumps a generation counter, global or per user: a token minted
under an older generation is expired.

A token is issued only for a user's credential: the admin API creates users (`create_users`)
and hands out their secrets once; the store keeps only SHA-256 digests (a secret is 256 random
bits, so a fast hash is enough), compared in constant time.

Refresh tokens are opaque random strings stored only as SHA-256 digests, rotated on
every use and grouped in families: presenting a spent one revokes the family (RFC 6819
5.2.2.3, refresh token rotation with reuse detection), and with it every access token issued
in that family (the `fam` claim, checked on every verify). Those rules are
`system.server.tokens.TokenRules`, which the model drives too; this module adds the credentials,
the signing and the upkeep: refresh tokens past their expiry are pruned (`prune`, at most once a
`PRUNE_EVERY`), with families left without tokens.
"""
from __future__ import annotations

import hmac
import math
import secrets
import uuid
from typing import Callable

import jwt

from system import clock as system_clock
from system.server.store import Store
from system.server.tokens import AccessClaims, AuthError, Grant, TokenRules, digest_of

ALGORITHM = "HS256"
AUDIENCE = "stormbench-chat"
PRUNE_EVERY = 60.0  # seconds between sweeps of expired refresh tokens

__all__ = ["ALGORITHM", "AUDIENCE", "AuthError", "TokenService"]


class TokenService:
    """`system.server.tokens.TokenRules` over the SQLite store, its tokens signed as JWTs."""

    def __init__(self, store: Store, *, secret: str | None, access_ttl: float, refresh_ttl: float,
                 clock: Callable[[], float] = system_clock.now) -> None:
        self.store = store
        self.secret = secret or store.secret()
        self.clock = clock
        self.rules = TokenRules(store, access_ttl=access_ttl, refresh_ttl=refresh_ttl,
                                new_secret=lambda: secrets.token_urlsafe(32), new_id=lambda: uuid.uuid4().hex)
        self._pruned_at = clock()

    def issue(self, user: str, secret: str) -> dict:
        """A new access token and the first refresh token of a new family, for the user's secret."""
        digest = self.store.user_digest(user)
        if digest is None or not hmac.compare_digest(digest, digest_of(secret)):
            raise AuthError("bad_credentials", "unknown user or wrong secret")
        return self._answer(self.rules.issue(user, self.clock()))

    def create_users(self, users: list[str]) -> dict[str, str]:
        """New secrets for `users` (created, or their old secret replaced): user -> secret."""
        issued = {user: secrets.token_urlsafe(32) for user in users}
        self.store.set_users({user: digest_of(secret) for user, secret in issued.items()})
        return issued

    def refresh(self, refresh_token: str) -> dict:
        return self._answer(self.rules.refresh(refresh_token, self.clock()))

    def owner(self, refresh_token: str) -> str | None:
        """The user a refresh token was issued to (None: unknown), for per-user rate limits."""
        record = self.store.refresh_record(digest_of(refresh_token))
        return record.user if record is not None else None

    def prune(self) -> int:
        """Delete expired refresh tokens (and emptied families); returns how many tokens went."""
        now = self.clock()
        self._pruned_at = now
        return self.store.prune_refresh(now)

    def verify(self, token: str | None) -> AccessClaims:
        if not token:
            raise AuthError("auth_invalid", "no access token")
        if not token.isascii():  # a JWT is ASCII; a lone surrogate would not even encode
            raise AuthError("auth_invalid", "access token rejected: not ASCII")
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=[ALGORITHM], audience=AUDIENCE,
                options={"require": ["exp", "iat", "sub", "aud", "xp", "gg", "ug", "fam"],
                         "verify_exp": False, "verify_iat": False})
        except jwt.InvalidTokenError as exc:
            raise AuthError("auth_invalid", f"access token rejected: {exc}") from None
        # exp and xp judged against the service's clock (PyJWT's own exp check reads time.time())
        expires_at = min(float(claims["xp"]), float(claims["exp"]))
        return self.rules.check(AccessClaims(claims["sub"], float(claims["iat"]), expires_at, claims["gg"],
                                             claims["ug"], claims.get("jti", ""), claims["fam"]), self.clock())

    def expire(self, user: str | None = None) -> None:
        """Expire every access token issued so far (of one user, or of everyone)."""
        self.rules.expire(user)

    def _answer(self, grant: Grant) -> dict:
        c = grant.claims
        access = jwt.encode({
            "sub": c.user, "aud": AUDIENCE, "iat": int(c.issued_at), "exp": math.ceil(c.expires_at),
            "xp": c.expires_at, "jti": c.token_id, "gg": c.global_gen, "ug": c.user_gen, "fam": c.family,
        }, self.secret, algorithm=ALGORITHM)
        if c.issued_at - self._pruned_at >= PRUNE_EVERY:
            self.prune()
        return {"access_token": access, "refresh_token": grant.refresh_token, "token_type": "Bearer",
                "expires_in": self.rules.access_ttl}
