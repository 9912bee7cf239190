"""The handshake decision and every refusal the server makes, sans-IO.

The asyncio server (`system/server/ws.py`) and the SimPy model (`sim/server.py`) both ask these
functions what to do with a connection, so a legacy trait changes both engines the same way. The
caller looks up the facts (is the path one of ours, what did admission say, is the Origin allowed,
did the token verify, may this user open this conversation) and acts on the returned `Outcome`:
no socket, no clock and no store is touched here.

Order (README "Server behaviour"): path (HTTP 404) → under `handshake_403` the Origin, token and
conversation checks before the upgrade (HTTP 403) → upgrade → admission (close 1013) → Origin
(4403) → token (error frame, then 4401) → conversation (4403) → conversation limit (4403) → accept. A refusal after the upgrade
is an `error` frame and a close, except under `abrupt_errors`, where the connection is dropped
without either (the client sees 1006). A shed (1013) is a plain close under every trait.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from system import wire
from system.server.admission import Decision
from system.server.tokens import AuthError

Kind = Literal["accept", "http", "close", "abort"]


@dataclass(frozen=True)
class Outcome:
    """What the server does with a connection.

    `accept`: send `welcome`. `http`: answer `status` before the upgrade. `close`: send the `error`
    frame `error` (when not None), then close with `code`. `abort`: drop the TCP connection, no frame.
    """

    kind: Kind
    status: int | None = None
    code: int | None = None
    error: str | None = None
    reason: str = ""

    @property
    def client_code(self) -> int | None:
        """The close code the client sees (1006 for an abort, None for an HTTP answer or an accept)."""
        return wire.ABNORMAL if self.kind == "abort" else self.code


ACCEPT = Outcome("accept")


def refusal(traits: frozenset[str], code: int, error: str | None, reason: str) -> Outcome:
    """An error the server tells the client about: the `error` frame `error` (None: none) then close
    `code`, or, for a legacy server (`abrupt_errors`), a dropped connection that says nothing."""
    if "abrupt_errors" in traits:
        return Outcome("abort", error=None, reason=reason)
    return Outcome("close", code=code, error=error, reason=reason)


def before_upgrade(traits: frozenset[str], *, path_ok: bool, origin_ok: bool,
                   auth: AuthError | None, owner_ok: bool) -> Outcome | None:
    """The HTTP answer to an upgrade request, or None to upgrade. Only the legacy server
    (`handshake_403`) refuses a bad Origin, token or conversation here; a browser sees 1006."""
    if not path_ok:
        return Outcome("http", status=404, reason="expected /ws/chat/{conversation_id}?token=...")
    if "handshake_403" not in traits:
        return None
    if not origin_ok:
        return Outcome("http", status=403, reason="forbidden origin")
    if auth is not None:
        return Outcome("http", status=403, reason=auth.code)
    if not owner_ok:
        return Outcome("http", status=403, reason="forbidden_conversation")
    return None


def after_upgrade(traits: frozenset[str], *, admission: Decision | None, origin_ok: bool,
                  auth: AuthError | None, owner_ok: bool, quota_ok: bool = True) -> Outcome:
    """Accept the upgraded connection or refuse it. `admission` is None when the server does not
    consult its admission policy (`no_shedding`); `quota_ok` is False for a new conversation of a
    user who has opened as many as the server keeps (a retry cannot help: 4403)."""
    if admission is not None and not admission.accepted:
        return Outcome("close", code=admission.code or wire.TRY_AGAIN_LATER, reason="try again later")
    if not origin_ok:
        return refusal(traits, wire.FORBIDDEN, "forbidden_origin", "Origin not allowed")
    if auth is not None:
        return refusal(traits, wire.AUTH_FAILED, auth.code, str(auth))
    if not owner_ok:
        return refusal(traits, wire.FORBIDDEN, "forbidden_conversation", "this conversation belongs to another user")
    if not quota_ok:
        return refusal(traits, wire.FORBIDDEN, "conversation_limit", "this user has opened as many conversations as the server keeps")
    return ACCEPT


def sheds(traits: frozenset[str]) -> bool:
    """Whether the server consults its admission policy (the legacy `no_shedding` never does)."""
    return "no_shedding" not in traits
