"""One client, a token service that goes down for a while, and a live-expiry server.

A deterministic stand-in for the drivers, narrower than `tests/client/world.py`: the network
never fails, so whatever goes wrong is the token service's outage meeting the client's refresh
policy. The server keeps, per open socket, the token it was last told (at the handshake or in an
`auth_refresh` frame) and closes the socket with 4401 `grace` seconds after that token expires,
as `stormbench serve --live-expiry` does. Only the tests use it.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from system.client.policy import (
    CancelTimer, ClientPolicy, CloseSocket, FetchToken, OpenSocket, Send, SetTimer, SocketClosed,
    SocketOpened, Start, TimerFired, TokenResult,
)

#: how many events a run may take before it is called a tight loop
MAX_EVENTS = 200_000


@dataclass
class AuthWorld:
    policy: ClientPolicy
    ttl: float
    outage: tuple[float, float]          # [start, end): the token service answers 503
    latency: float = 0.2                 # each token request and handshake takes this long
    grace: float = 10.0                  # the server's live-expiry grace
    now: float = 0.0
    closes_4401: list[float] = field(default_factory=list)
    expired_for: float = 0.0             # seconds an open socket's server-side token was expired
    lapsed_for: float = 0.0              # seconds the client held no valid token (after its first)
    token_requests: int = 0
    _queue: list[tuple[float, int, str, Any]] = field(default_factory=list)
    _serial: int = 0
    _timers: dict[str, int] = field(default_factory=dict)   # name -> generation
    _expiry: dict[str, float] = field(default_factory=dict)  # token -> expires_at
    _known: dict[int, str | None] = field(default_factory=dict)  # open sock -> the token the server knows
    _issued: int = 0

    def run(self, until: float) -> "AuthWorld":
        self._feed(Start(self.now))
        events = 0
        while self._queue and self._queue[0][0] <= until:
            at, _, kind, payload = heapq.heappop(self._queue)
            self._account(at)
            self.now = at
            events += 1
            assert events < MAX_EVENTS, "the policy made a tight loop"
            getattr(self, f"_on_{kind}")(payload)
        self._account(until)
        return self

    # ---- the client's actions ----

    def _feed(self, event) -> None:
        for action in self.policy.handle(event):
            if isinstance(action, SetTimer):
                gen = self._timers.get(action.name, 0) + 1
                self._timers[action.name] = gen
                self._at(action.at, "timer", (action.name, gen))
            elif isinstance(action, CancelTimer):
                self._timers.pop(action.name, None)
            elif isinstance(action, FetchToken):
                self.token_requests += 1
                self._at(self.now + self.latency, "token", None)
            elif isinstance(action, OpenSocket):
                self._at(self.now + self.latency, "open", (action.sock, action.token))
            elif isinstance(action, CloseSocket):
                self._known.pop(action.sock, None)
            elif isinstance(action, Send) and action.frame.get("type") == "auth_refresh":
                if action.sock in self._known and self._valid(action.frame["token"]):
                    self._known[action.sock] = action.frame["token"]
                    self._check_later(action.sock)

    # ---- the world's answers ----

    def _on_timer(self, payload) -> None:
        name, gen = payload
        if self._timers.get(name) == gen:
            del self._timers[name]
            self._feed(TimerFired(self.now, name))

    def _on_token(self, _) -> None:
        start, end = self.outage
        if start <= self.now < end:
            self._feed(TokenResult(self.now, False, 503))
            return
        self._issued += 1
        token = f"t{self._issued}"
        self._expiry[token] = self.now + self.ttl
        self._feed(TokenResult(self.now, True, 200, token, self.now + self.ttl))

    def _on_open(self, payload) -> None:
        sock, token = payload
        self._known[sock] = token if self._valid(token) else None
        self._feed(SocketOpened(self.now, sock))
        self._check_later(sock)

    def _on_check(self, sock: int) -> None:
        """The server's live-expiry deadline for `sock` came: close it unless told a newer token."""
        token = self._known.get(sock, "gone")
        if token == "gone" or self._deadline(token) > self.now + 1e-9:
            return
        del self._known[sock]
        self.closes_4401.append(self.now)
        self._feed(SocketClosed(self.now, sock, 4401, "auth_expired", "server"))

    # ---- helpers ----

    def _valid(self, token: str | None) -> bool:
        return token is not None and self._expiry.get(token, float("-inf")) > self.now

    def _deadline(self, token: str | None) -> float:
        return self._expiry.get(token, self.now) + self.grace if token is not None else self.now

    def _check_later(self, sock: int) -> None:
        self._at(self._deadline(self._known[sock]), "check", sock)

    def _account(self, until: float) -> None:
        """Add the time between now and `until` during which an open socket's token was expired."""
        for token in self._known.values():
            expired_since = self._expiry.get(token, self.now) if token is not None else self.now
            self.expired_for += max(0.0, until - max(self.now, expired_since))
        if self._issued:
            self.lapsed_for += max(0.0, until - max(self.now, self._expiry[f"t{self._issued}"]))

    def _at(self, at: float, kind: str, payload) -> None:
        self._serial += 1
        heapq.heappush(self._queue, (at, self._serial, kind, payload))
