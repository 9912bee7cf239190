"""Access and refresh tokens.

Access tokens are JWTs signed with HS256 only (the algorithm is pinned on decode, so
`alg: none` and every other algorithm are rejected), checked for `exp`, `iat`, `sub` and
`aud`. `exp` is whole seconds as RFC 7519 says; the precise expiry, which matters when the
harness compresses a 15 min TTL to seconds, rides in the `xp` claim. Time is the service's
`clock` (the event loop's, `system.clock`), never PyJWT's own `time.time()`: `exp` and `iat`
are required and signed, and `exp` and `xp` are judged here against that clock. Forced expiry (the
bench's token-expiry fault) bumps a generation counter, global or per user: a token minted
under an older generation is expired.

Refresh tokens are opaque random strings stored only as SHA-256 digests, rotated on
every use and grouped in families: presenting a spent one revokes the family (RFC 6819
5.2.2.3, refresh token rotation with reuse detection). Those rules are
`system.server.tokens.TokenRules`, which the model drives too; this module adds the signing.
"""
from __future__ import annotations

import math
import secrets
import uuid
from typing import Callable

import jwt

from system import clock as system_clock
from system.server.store import Store
from system.server.tokens import AccessClaims, AuthError, Grant, TokenRules

ALGORITHM = "HS256"
AUDIENCE = "stormbench-chat"

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

    def issue(self, user: str) -> dict:
        """A new access token and the first refresh token of a new family."""
        return self._answer(self.rules.issue(user, self.clock()))

    def refresh(self, refresh_token: str) -> dict:
        return self._answer(self.rules.refresh(refresh_token, self.clock()))

    def verify(self, token: str | None) -> AccessClaims:
        if not token:
            raise AuthError("auth_invalid", "no access token")
        if not token.isascii():  # a JWT is ASCII; a lone surrogate would not even encode
            raise AuthError("auth_invalid", "access token rejected: not ASCII")
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=[ALGORITHM], audience=AUDIENCE,
                options={"require": ["exp", "iat", "sub", "aud", "xp", "gg", "ug"],
                         "verify_exp": False, "verify_iat": False})
        except jwt.InvalidTokenError as exc:
            raise AuthError("auth_invalid", f"access token rejected: {exc}") from None
        # exp and xp judged against the service's clock (PyJWT's own exp check reads time.time())
        expires_at = min(float(claims["xp"]), float(claims["exp"]))
        return self.rules.check(AccessClaims(claims["sub"], float(claims["iat"]), expires_at,
                                             claims["gg"], claims["ug"], claims.get("jti", "")), self.clock())

    def expire(self, user: str | None = None) -> None:
        """Expire every access token issued so far (of one user, or of everyone)."""
        self.rules.expire(user)

    def _answer(self, grant: Grant) -> dict:
        c = grant.claims
        access = jwt.encode({
            "sub": c.user, "aud": AUDIENCE, "iat": int(c.issued_at), "exp": math.ceil(c.expires_at),
            "xp": c.expires_at, "jti": c.token_id, "gg": c.global_gen, "ug": c.user_gen,
        }, self.secret, algorithm=ALGORITHM)
        return {"access_token": access, "refresh_token": grant.refresh_token, "token_type": "Bearer",
                "expires_in": self.rules.access_ttl}
