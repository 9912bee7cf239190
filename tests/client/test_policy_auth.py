"""The token the server knows for a socket (stable_socket): a token that changes while the
socket is opening is sent in-band once it opens, and an auth error frame fetches a fresh one.
A live-expiry server closes a socket with 4401 when the token it knows expires, so a client
that forgets either duty sees 4401 closes although it refreshed in time."""
from __future__ import annotations

import random

import pytest

from system.client.policy import (
    ClientConfig, ClientPolicy, FetchToken, Fixes, FrameReceived, OpenSocket, Send, SetTimer, SocketClosed,
    SocketOpened, Start, TimerFired, TokenResult,
)


def make(profile: str = "fixed", **overrides) -> ClientPolicy:
    config = ClientConfig(fixes=Fixes.profile(profile), refresh_lead=10.0, **overrides)
    return ClientPolicy(config, random.Random(3), "c1")


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


def auth_refreshes(actions) -> list[tuple[int, str]]:
    return [(a.sock, a.frame["token"]) for a in of(actions, Send) if a.frame["type"] == "auth_refresh"]


def opening(p: ClientPolicy, ttl: float = 100.0) -> int:
    """Start and get a token; the socket is still in its handshake. Returns its id."""
    p.handle(Start(0.0))
    [opened] = of(p.handle(TokenResult(0.0, True, 200, "t0", ttl)), OpenSocket)
    assert opened.token == "t0"
    return opened.sock


def error(code: str) -> dict:
    return {"v": "1.0", "type": "error", "code": code, "message": "access token expired"}


def test_token_refreshed_during_the_handshake_is_sent_once_the_socket_opens():
    p = make()
    sock = opening(p)
    assert p.handle(TimerFired(90.0, "refresh")) == [FetchToken(refresh=True)]
    assert auth_refreshes(p.handle(TokenResult(90.5, True, 200, "t1", 190.5))) == []  # nothing to send on yet
    actions = p.handle(SocketOpened(91.0, sock))
    assert auth_refreshes(actions) == [(sock, "t1")]
    kinds = [a.frame["type"] for a in of(actions, Send)]
    assert kinds.index("auth_refresh") == 1 and kinds[0] == "resume"
    # the server now knows t1: the next refresh sends t2 once, and nothing is sent twice
    p.handle(TimerFired(180.0, "refresh"))
    assert auth_refreshes(p.handle(TokenResult(180.5, True, 200, "t2", 280.5))) == [(sock, "t2")]


def test_a_socket_opened_with_the_current_token_sends_none():
    p = make()
    sock = opening(p)
    assert auth_refreshes(p.handle(SocketOpened(1.0, sock))) == []


def test_legacy_leaves_the_token_of_an_opening_socket_alone():
    p = make("legacy")
    sock = opening(p)
    p.handle(TimerFired(90.0, "refresh"))
    assert of(p.handle(TokenResult(90.5, True, 200, "t1", 190.5)), Send) == []
    assert of(p.handle(SocketOpened(91.0, sock)), Send) == []


def test_auth_expired_error_fetches_a_fresh_token_at_once_and_sends_it_in_band():
    p = make(base_delay=1.0, max_delay=8.0)
    sock = opening(p)
    p.handle(SocketOpened(1.0, sock))
    assert p.handle(FrameReceived(50.0, sock, error("auth_expired"))) == [FetchToken(refresh=True)]
    assert auth_refreshes(p.handle(TokenResult(50.1, True, 200, "t1", 150.1))) == [(sock, "t1")]
    # refused again at once: back off rather than hammer the auth service
    actions = p.handle(FrameReceived(50.2, sock, error("auth_invalid")))
    assert not of(actions, FetchToken)
    [timer] = of(actions, SetTimer)
    assert timer.name == "refresh" and 50.2 <= timer.at <= 50.2 + 1.0
    assert p.handle(TimerFired(timer.at, "refresh")) == [FetchToken(refresh=True)]


def test_auth_error_then_4401_reconnects_with_a_fresh_token():
    p = make(base_delay=1.0, max_delay=8.0)
    sock = opening(p)
    p.handle(SocketOpened(1.0, sock))
    p.handle(FrameReceived(50.0, sock, error("auth_expired")))
    [timer] = of(p.handle(SocketClosed(50.05, sock, 4401, "auth_expired", "server")), SetTimer)
    p.handle(TokenResult(50.1, True, 200, "t1", 150.1))  # lands after the close: nothing to send on
    follow = p.handle(TimerFired(timer.at, "reconnect"))
    assert follow == [FetchToken(refresh=True)]
    [opened] = of(p.handle(TokenResult(timer.at, True, 200, "t2", timer.at + 100)), OpenSocket)
    assert opened.token == "t2"


@pytest.mark.parametrize("profile, code, sock_offset", [
    ("legacy", "auth_expired", 0),   # legacy ignores error frames
    ("fixed", "agent_error", 0),     # not about the token
    ("fixed", "auth_expired", 1),    # not the current socket
])
def test_other_error_frames_change_nothing(profile, code, sock_offset):
    p = make(profile)
    sock = opening(p)
    p.handle(SocketOpened(1.0, sock))
    assert p.handle(FrameReceived(50.0, sock + sock_offset, error(code))) == []
