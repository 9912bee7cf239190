"""The server core's handshake decision, through every trait combination, in both engines.

The pure decision first (every legacy trait combination against every fact), then the real asyncio
server and the SimPy model side by side: for each combination of the traits that shape a handshake
and each kind of connection (a valid token, an expired one, none, one over the connection limit),
both must answer with the same HTTP status, the same error frame and the same close code.
"""
from __future__ import annotations

import itertools
from contextlib import AsyncExitStack
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from formats.scenario import from_dict
from sim import calibration
from sim.client import SimClient
from sim.server import Sock
from sim.world import World
from system import wire
from system.client import events as ev
from system.server import handshake
from system.server.admission import ACCEPT, Decision
from system.server.config import LEGACY_TRAITS
from system.server.lifecycle import LiveExpiry, Revocation, shutdown
from system.server.tokens import AuthError
from tests.server.conftest import recv_json

ALL_TRAITS = sorted(LEGACY_TRAITS)
HANDSHAKE_TRAITS = ("abrupt_errors", "handshake_403", "no_shedding")
COMBOS = [frozenset(c) for r in range(len(ALL_TRAITS) + 1) for c in itertools.combinations(ALL_TRAITS, r)]
SHED = Decision(False, wire.TRY_AGAIN_LATER, "connection limit 1 reached")
EXPIRED = AuthError("auth_expired", "access token expired")


@pytest.mark.parametrize("traits", COMBOS, ids=lambda t: "+".join(sorted(t)) or "fixed")
def test_the_decision_under_every_trait_combination(traits: frozenset[str]) -> None:
    facts = itertools.product((True, False), (ACCEPT, SHED), (True, False), (None, EXPIRED), (True, False))
    for path_ok, admitted, origin_ok, auth, owner_ok in facts:
        early = handshake.before_upgrade(traits, path_ok=path_ok, origin_ok=origin_ok, auth=auth, owner_ok=owner_ok)
        if not path_ok:
            assert (early.kind, early.status) == ("http", 404)
            continue
        bad = not origin_ok or auth is not None or not owner_ok
        if "handshake_403" in traits and bad:
            assert (early.kind, early.status) == ("http", 403)  # a browser sees 1006 and no reason
            continue
        assert early is None
        admission = admitted if handshake.sheds(traits) else None
        outcome = handshake.after_upgrade(traits, admission=admission, origin_ok=origin_ok, auth=auth, owner_ok=owner_ok)
        if admission is SHED:
            assert (outcome.kind, outcome.code, outcome.error) == ("close", wire.TRY_AGAIN_LATER, None)
        elif not bad:
            assert outcome.kind == "accept"
        elif "abrupt_errors" in traits:
            assert (outcome.kind, outcome.client_code, outcome.error) == ("abort", wire.ABNORMAL, None)
        else:
            expected = (wire.FORBIDDEN, "forbidden_origin") if not origin_ok else \
                (wire.AUTH_FAILED, "auth_expired") if auth is not None else (wire.FORBIDDEN, "forbidden_conversation")
            assert (outcome.kind, outcome.code, outcome.error) == ("close", *expected)
    live = LiveExpiry(10.0)
    assert not live.due(109.9, 100.0) and live.due(110.0, 100.0)
    assert live.refuse(traits).client_code == (wire.ABNORMAL if "abrupt_errors" in traits else wire.AUTH_FAILED)
    assert shutdown(traits).client_code == (wire.ABNORMAL if "abrupt_shutdown" in traits else wire.SERVICE_RESTART)
    assert shutdown(traits, crash=True).client_code == wire.ABNORMAL


# ---- both engines ---------------------------------------------------------------------------------
CASES = ("valid", "expired", "no_token", "over_limit")
ENGINE_COMBOS = [frozenset(c) for r in range(4) for c in itertools.combinations(HANDSHAKE_TRAITS, r)]


def _summary(status: int | None, frames: list[dict], code: int | None) -> tuple:
    """What a client can tell about a handshake: an HTTP status, or the frames and the close code."""
    errors = [f["code"] for f in frames if f["type"] == "error"]
    welcomed = any(f["type"] == "welcome" for f in frames)
    return status, welcomed, errors, code


async def _real(make_server, traits: frozenset[str], case: str) -> tuple:
    server, api = await make_server(legacy_traits=traits, max_connections=1 if case == "over_limit" else None)
    token = None if case == "no_token" else (await api.token("c00000"))["access_token"]
    if case == "expired":
        assert (await api.post("/admin/expire-tokens", {"user": "c00000"}, admin=True))[0] == 200
    async with AsyncExitStack() as stack:
        if case == "over_limit":  # the one connection the server admits
            first = await stack.enter_async_context(api.connect("c00000", token))
            assert (await recv_json(first))["type"] == "welcome"
        return await _handshake(api, token)


async def _handshake(api, token: str | None) -> tuple:
    frames: list[dict] = []
    try:
        async with api.connect("c00000", token) as ws:
            try:
                while True:
                    frames.append(await recv_json(ws))
                    if frames[-1]["type"] == "welcome":
                        return _summary(None, frames, None)
            except ConnectionClosed:
                pass
            return _summary(None, frames, ws.close_code if ws.close_code is not None else wire.ABNORMAL)
    except InvalidStatus as exc:
        return _summary(exc.response.status_code, [], None)


class Observer(SimClient):
    """A model client that only writes down what the model server tells it (no policy behind it)."""

    __slots__ = ("seen",)

    def feed(self, event) -> None:
        self.seen.append(event)


def _model(traits: frozenset[str], case: str) -> tuple:
    doc = {"name": "handshake", "seed": 1, "duration": "1m",
           "system": {"behaviour": {"base": "fixed", "legacy": sorted(traits)},
                      **({"admission": {"max_connections": 1}} if case == "over_limit" else {})},
           "fleet": {"clients": 1}}
    world = World(from_dict(doc), calibration.load()[0], clients=1)
    client = Observer(world, 0, "c00000", None)
    client.seen = []
    token = None if case == "no_token" else world.tokens.rules.issue("c00000", 0.0).claims
    if case == "expired":
        world.tokens.expire(["c00000"])
    if case == "over_limit":  # the one connection the server admits
        first = Sock(client, 0)
        client.socks[0] = first
        world.server.connect(first, token, None)
        world.env.run(until=10.0)
        assert first.server_open
        client.seen.clear()
    s = Sock(client, 1)
    client.socks[1] = s
    world.server.connect(s, token, None)
    world.env.run(until=30.0)
    status, frames, code = None, [], None
    for e in client.seen:
        if isinstance(e, ev.HandshakeFailed):
            status = e.status
        elif isinstance(e, ev.FrameReceived):
            frames.append(e.frame)
        elif isinstance(e, ev.SocketClosed):
            code = e.code
    if any(f["type"] == "welcome" for f in frames):
        code = None
    return _summary(status, frames, code)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("traits", ENGINE_COMBOS, ids=lambda t: "+".join(sorted(t)) or "fixed")
async def test_both_engines_close_alike(make_server, traits: frozenset[str], case: str) -> None:
    real = await _real(make_server, traits, case)
    assert _model(traits, case) == real
    if case == "valid":
        assert real == (None, True, [], None)
    elif case == "over_limit" and "no_shedding" not in traits:
        assert real == (None, False, [], wire.TRY_AGAIN_LATER)


# ---- a refresh family revoked under a live socket -------------------------------------------------
REVOKE_COMBOS = [frozenset(), frozenset({"abrupt_errors"})]


def test_a_revocation_hits_the_sessions_of_its_family_or_users_and_only_with_live_expiry() -> None:
    sessions = [("a1", "alice", "f1", 500.0), ("a2", "alice", "f2", 50.0), ("b1", "bob", "f3", 500.0)]
    assert Revocation(family="f1").expire(True, sessions, 100.0) == [("a1", 100.0)]
    assert Revocation(frozenset({"alice"})).expire(True, sessions, 100.0) == [("a1", 100.0), ("a2", 50.0)]
    assert [s for s, _ in Revocation().expire(True, sessions, 100.0)] == ["a1", "a2", "b1"]
    assert Revocation(family="f1").expire(False, sessions, 100.0) == []  # no live expiry: never checked again


async def _real_reuse(make_server, traits: frozenset[str]) -> tuple:
    server, api = await make_server(legacy_traits=traits, live_expiry=True, expiry_grace=0.3)
    pair = await api.token("c00000")
    async with api.connect("c00000", pair["access_token"]) as ws:
        frames = [await recv_json(ws)]
        assert (await api.post("/auth/refresh", {"refresh_token": pair["refresh_token"]}))[0] == 200
        status, body = await api.post("/auth/refresh", {"refresh_token": pair["refresh_token"]})  # spent: reused
        assert (status, body["error"]) == (401, "auth_invalid")
        try:
            while True:
                frames.append(await recv_json(ws))
        except ConnectionClosed:
            pass
        return _summary(None, frames, ws.close_code if ws.close_code is not None else wire.ABNORMAL)


def _model_reuse(traits: frozenset[str]) -> tuple:
    doc = {"name": "reuse", "seed": 1, "duration": "2m",
           "system": {"behaviour": {"base": "fixed", "legacy": sorted(traits)}, "live_expiry": True},
           "fleet": {"clients": 1}}
    world = World(from_dict(doc), calibration.load()[0], clients=1)
    client = Observer(world, 0, "c00000", None)
    client.seen = []
    grant = world.tokens.rules.issue("c00000", 0.0)
    client.refresh_handle = grant.refresh_token
    s = Sock(client, 0)
    client.socks[0] = s
    world.server.connect(s, grant.claims, None)
    world.env.run(until=10.0)
    answers: list[int] = []
    for _ in range(2):  # the same refresh token twice: rotated, then reused
        world.tokens.fetch(client, lambda ok, status, *_rest: answers.append(status), refresh=True)
        world.env.run(until=world.env.now + 5.0)
    assert answers == [200, 401]
    world.env.run(until=100.0)
    frames = [e.frame for e in client.seen if isinstance(e, ev.FrameReceived)]
    codes = [e.code for e in client.seen if isinstance(e, ev.SocketClosed)]
    return _summary(None, frames, codes[0] if codes else None)


@pytest.mark.parametrize("traits", REVOKE_COMBOS, ids=lambda t: "+".join(sorted(t)) or "fixed")
async def test_both_engines_close_a_live_socket_of_a_revoked_family_alike(make_server, traits: frozenset[str]) -> None:
    """A spent refresh token presented again revokes its family: the live socket holding an access
    token of that family is refused when the live-expiry grace runs out, in both engines."""
    real = await _real_reuse(make_server, traits)
    assert _model_reuse(traits) == real
    if "abrupt_errors" in traits:
        assert real == (None, True, [], wire.ABNORMAL)
    else:
        assert real == (None, True, ["auth_expired"], wire.AUTH_FAILED)
