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
5.2.2.3, refresh token rotation with reuse detection).
"""
from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from dataclasses import dataclass
from typing import Callable

import jwt

from system import clock as system_clock
from system.server.store import Store

ALGORITHM = "HS256"
AUDIENCE = "stormbench-chat"


class AuthError(Exception):
    """`code` is the error frame's code: auth_expired or auth_invalid."""

    def __init__(self, code: str, message: str, result: str = "invalid") -> None:
        super().__init__(message)
        self.code = code
        self.result = result  # the auth_refresh_total label: invalid | reused | revoked | expired


@dataclass(frozen=True)
class Claims:
    user: str
    expires_at: float
    token_id: str


class TokenService:
    def __init__(self, store: Store, *, secret: str | None, access_ttl: float, refresh_ttl: float,
                 clock: Callable[[], float] = system_clock.now) -> None:
        self.store = store
        self.secret = secret or store.secret()
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.clock = clock

    def issue(self, user: str) -> dict:
        """A new access token and the first refresh token of a new family."""
        return self._pair(user, family=uuid.uuid4().hex)

    def refresh(self, refresh_token: str) -> dict:
        digest = _digest(refresh_token)
        record = self.store.refresh_record(digest)
        if record is None:
            raise AuthError("auth_invalid", "unknown refresh token")
        if record.revoked:
            raise AuthError("auth_invalid", "refresh token family revoked", "revoked")
        if not self.store.mark_refresh_used(digest):
            self.store.revoke_family(record.family)
            raise AuthError("auth_invalid", "refresh token reused; family revoked", "reused")
        if record.expires_at <= self.clock():
            raise AuthError("auth_expired", "refresh token expired", "expired")
        return self._pair(record.user, family=record.family)

    def verify(self, token: str | None) -> Claims:
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
        user = claims["sub"]
        if min(claims["xp"], claims["exp"]) <= self.clock():
            raise AuthError("auth_expired", "access token expired")
        if claims["gg"] != self.store.global_generation() or claims["ug"] != self.store.user_generation(user):
            raise AuthError("auth_expired", "access token expired by the server")
        return Claims(user=user, expires_at=float(claims["xp"]), token_id=claims.get("jti", ""))

    def expire(self, user: str | None = None) -> None:
        """Expire every access token issued so far (of one user, or of everyone)."""
        if user is None:
            self.store.bump_global_generation()
        else:
            self.store.bump_user_generation(user)

    def _pair(self, user: str, family: str) -> dict:
        now = self.clock()
        expires_at = now + self.access_ttl
        claims = {
            "sub": user, "aud": AUDIENCE, "iat": int(now), "exp": math.ceil(expires_at),
            "xp": expires_at, "jti": uuid.uuid4().hex,
            "gg": self.store.global_generation(), "ug": self.store.user_generation(user),
        }
        access = jwt.encode(claims, self.secret, algorithm=ALGORITHM)
        refresh = secrets.token_urlsafe(32)
        self.store.add_refresh(_digest(refresh), family, user, now + self.refresh_ttl)
        return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
                "expires_in": self.access_ttl}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
