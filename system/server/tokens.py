"""The token service's rules, sans-IO: issue, refresh with rotation, reuse detection, forced expiry, outage.

The asyncio server wraps these rules in signed JWTs over its SQLite store (`system/server/auth.py`);
the SimPy model hands the `AccessClaims` themselves to its clients as tokens, over a `MemoryBook`.
Both therefore refuse the same refresh for the same reason: a spent refresh token revokes its whole
family (RFC 6819 5.2.2.3) and every access token issued in it, a forced expiry bumps a generation (global or per user) so every access
token minted under an older one is expired, and an outage refuses everything with 503.

The caller passes `now` (the token time base: wall seconds on the server, scenario seconds in the
model) and the makers of secrets and ids, so nothing here reads a clock or a random source.
"""
from __future__ import annotations

import hashlib
from typing import Callable, NamedTuple, Protocol


class AuthError(Exception):
    """`code` is the error frame's (or HTTP body's) code: auth_expired, auth_invalid or auth_outage;
    `result` the auth_refresh_total label: invalid | reused | revoked | expired | outage."""

    def __init__(self, code: str, message: str, result: str = "invalid", family: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.result = result
        self.family = family  # the refresh family this call revoked (reuse detected)

    @property
    def status(self) -> int:
        """The HTTP status of the token endpoints for this refusal."""
        return 503 if self.result == "outage" else 401


def _outage() -> AuthError:
    return AuthError("auth_outage", "the auth service is unavailable", "outage")


# Named tuples, not dataclasses: the model makes one of each per refresh of every client (a fleet's
# day is hundreds of thousands), and a tuple is the cheapest immutable record Python builds.
class RefreshRecord(NamedTuple):
    family: str
    user: str
    expires_at: float
    used: bool
    revoked: bool


class AccessClaims(NamedTuple):
    """What an access token says: whose it is, until when, the generations it was minted under and
    its refresh family (revoked with the family)."""

    user: str
    issued_at: float
    expires_at: float
    global_gen: int
    user_gen: int
    token_id: str
    family: str


class Grant(NamedTuple):
    """A token endpoint's answer: an access token's claims and the next refresh token of its family."""

    claims: AccessClaims
    refresh_token: str
    family: str


class TokenBook(Protocol):
    """Where the rules keep their state (`system.server.store.Store` on disk, `MemoryBook` in the model)."""

    def generations(self, user: str) -> tuple[int, int]: ...  # (global, the user's)
    def bump_global_generation(self) -> int: ...
    def bump_user_generation(self, user: str) -> int: ...
    def add_refresh(self, digest: str, family: str, user: str, expires_at: float) -> None: ...
    def refresh_record(self, digest: str) -> RefreshRecord | None: ...
    def mark_refresh_used(self, digest: str) -> bool: ...
    def revoke_family(self, family: str) -> None: ...
    def family_revoked(self, family: str) -> bool: ...


def digest_of(token: str) -> str:
    """Refresh tokens are kept only as their SHA-256 digest."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenRules:
    def __init__(self, book: TokenBook, *, access_ttl: float, refresh_ttl: float,
                 new_secret: Callable[[], str], new_id: Callable[[], str],
                 digest: Callable[[str], str] | None = digest_of) -> None:
        """`digest`: how the book keys a refresh token (SHA-256, so a stolen database holds no usable
        token; None: the token itself, for the model's book, which lives in memory)."""
        self.book = book
        self.digest = digest
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.new_secret = new_secret
        self.new_id = new_id
        self.outage = False  # the auth service answers 503 while on (the auth_outage fault)
        self.issued = 0

    def issue(self, user: str, now: float) -> Grant:
        """A login: an access token and the first refresh token of a new family."""
        if self.outage:
            raise _outage()
        return self._grant(user, self.new_id(), now)

    def refresh(self, refresh_token: str, now: float) -> Grant:
        """Rotate: the presented refresh token is spent and the family's next one issued. Presenting a
        spent one (its answer was lost, or it was stolen) revokes the family: its holder must log in."""
        if self.outage:
            raise _outage()
        digest = refresh_token if self.digest is None else self.digest(refresh_token)
        record = self.book.refresh_record(digest)
        if record is None:
            raise AuthError("auth_invalid", "unknown refresh token")
        if record.revoked:
            raise AuthError("auth_invalid", "refresh token family revoked", "revoked")
        if not self.book.mark_refresh_used(digest):
            self.book.revoke_family(record.family)
            raise AuthError("auth_invalid", "refresh token reused; family revoked", "reused", record.family)
        if record.expires_at <= now:
            raise AuthError("auth_expired", "refresh token expired", "expired")
        return self._grant(record.user, record.family, now)

    def refresh_chain(self, refresh_token: str, times: list[float]) -> Grant:
        """`refresh` at each of `times` (in order), each presenting the refresh token the one before
        was given: the last grant, and the book, ids and count those refreshes leave, as one call.

        A calm client's refreshes in a batch (the SimPy model). A book that keeps only a family's
        latest two refresh tokens (`MemoryBook.KEPT`) never sees the middle ones: each is issued
        and spent before the next, and forgotten two rotations later, so only the first refresh
        and the last two go through the book (the skipped ones still take their ids and secrets,
        so every later id is as if they had not been skipped). Each is checked as `refresh` would
        check it: the book is not touched between them, so the first refresh's checks hold for all
        but expiry, which holds when no two are a refresh TTL apart (else they run one by one)."""
        n = len(times)
        if n < 3 or getattr(self.book, "KEPT", None) != 2 or (times[-1] - times[0] >= self.refresh_ttl and any(
                b - a >= self.refresh_ttl for a, b in zip(times, times[1:]))):
            grant = None
            for now in times:
                grant = self.refresh(refresh_token, now)
                refresh_token = grant.refresh_token
            if grant is None:
                raise ValueError("refresh_chain needs at least one time")
            return grant
        first = self.refresh(refresh_token, times[0])
        self.book.mark_refresh_used(first.refresh_token if self.digest is None else self.digest(first.refresh_token))
        new_id, new_secret = self.new_id, self.new_secret
        for _ in range(n - 3):  # the middle ones: an id and a secret each, as `_grant` takes them
            new_id()
            new_secret()
        self.issued += n - 3
        before_last = self._grant(first.claims.user, first.family, times[-2])
        return self.refresh(before_last.refresh_token, times[-1])

    def check(self, claims: AccessClaims, now: float) -> AccessClaims:
        """The claims of a token whose signature holds, if they are still good now."""
        if claims.expires_at <= now:
            raise AuthError("auth_expired", "access token expired")
        if (claims.global_gen, claims.user_gen) != self.book.generations(claims.user):
            raise AuthError("auth_expired", "access token expired by the server")
        if self.book.family_revoked(claims.family):
            raise AuthError("auth_invalid", "access token revoked with its refresh family")
        return claims

    def expire(self, user: str | None = None) -> None:
        """Expire every access token issued so far (of one user, or of everyone)."""
        if user is None:
            self.book.bump_global_generation()
        else:
            self.book.bump_user_generation(user)

    def _grant(self, user: str, family: str, now: float) -> Grant:
        book = self.book
        # tuple.__new__: the named tuples without their Python-level constructors (the model's hot path)
        global_gen, user_gen = book.generations(user)
        claims = tuple.__new__(AccessClaims, (user, now, now + self.access_ttl, global_gen, user_gen, self.new_id(),
                                                 family))
        refresh = self.new_secret()
        book.add_refresh(refresh if self.digest is None else self.digest(refresh), family, user, now + self.refresh_ttl)
        self.issued += 1
        return tuple.__new__(Grant, (claims, refresh, family))


class MemoryBook:
    """A `TokenBook` in dicts, for the model. A family keeps its latest refresh token and the one
    before (a client presents its latest, or the one before when an answer was lost), so a day of a
    large fleet's rotations stays bounded; an older one is unknown (401) instead of a reuse.

    Every login starts a family, and a family is kept for the refresh TTL (a spent token presented
    again must still revoke it), longer than a run: a fleet's day leaves hundreds of thousands. So
    a family is one tuple (its user, its two tokens and their expiries), a token only names its
    family, and `refresh_record` builds the record it is asked for."""

    KEPT = 2  # refresh tokens a family keeps (`TokenRules.refresh_chain` relies on it)

    def __init__(self) -> None:
        self._global = 0
        self._users: dict[str, int] = {}
        self._family_of: dict[str, str] = {}  # a kept refresh token (its digest) -> its family
        # family -> (user, latest token, its expiry, previous token or None, its expiry)
        self._families: dict[str, tuple[str, str, float, str | None, float | None]] = {}
        self._used: set[str] = set()
        self._revoked: set[str] = set()

    def generations(self, user: str) -> tuple[int, int]:
        return self._global, self._users.get(user, 0)

    def bump_global_generation(self) -> int:
        self._global += 1
        return self._global

    def bump_user_generation(self, user: str) -> int:
        self._users[user] = self._users.get(user, 0) + 1
        return self._users[user]

    def add_refresh(self, digest: str, family: str, user: str, expires_at: float) -> None:
        kept = self._families.get(family)
        if kept is not None and kept[3] is not None:  # the one before the latest is forgotten
            del self._family_of[kept[3]]
            self._used.discard(kept[3])
        self._family_of[digest] = family
        self._families[family] = (user, digest, expires_at, None, None) if kept is None else \
            (user, digest, expires_at, kept[1], kept[2])

    def refresh_record(self, digest: str) -> RefreshRecord | None:
        family = self._family_of.get(digest)
        if family is None:
            return None
        user, latest, expires_at, _, previous_expires_at = self._families[family]
        return tuple.__new__(RefreshRecord, (family, user, expires_at if digest == latest else previous_expires_at,
                                             digest in self._used, family in self._revoked))

    def mark_refresh_used(self, digest: str) -> bool:
        if digest not in self._family_of or digest in self._used:
            return False
        self._used.add(digest)
        return True

    def revoke_family(self, family: str) -> None:
        self._revoked.add(family)

    def family_revoked(self, family: str) -> bool:
        return family in self._revoked
