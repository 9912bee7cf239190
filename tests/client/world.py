"""A small seeded stand-in for the network, the auth service and the server.

It executes the policy's actions the way a driver must (timers by name, at most one
token request, sockets that open, fail, close and deliver frames) and picks what
happens next at random, so property tests can walk a policy through long, varied
histories. Only the tests use it; the real drivers are system.client.driver and
the SimPy model.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from system.client.policy import (
    CancelTimer, ClientPolicy, CloseSocket, FetchToken, FrameReceived, HandshakeFailed,
    NetworkOffline, NetworkOnline, OpenSocket, SetTimer, SocketClosed, SocketOpened, Start,
    TimerFired, TokenResult, UserMessage,
)

CLOSE_CODES = (1000, 1001, 1006, 1011, 1012, 1013, 4401, 4403)


@dataclass
class World:
    policy: ClientPolicy
    seed: int
    token_ttl: float = 60.0
    message_pool: int = 12          # few ids, so repeats (duplicates) are common
    now: float = 0.0
    timers: dict[str, float] = field(default_factory=dict)
    fetch: FetchToken | None = None
    connecting: set[int] = field(default_factory=set)
    open: set[int] = field(default_factory=set)
    client_closed: list[int] = field(default_factory=list)  # awaiting their SocketClosed(by="client")
    online: bool = True
    trace: list = field(default_factory=list)               # (event, actions) in order
    max_live: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    @property
    def live(self) -> set[int]:
        return self.connecting | self.open

    def feed(self, event) -> list:
        actions = self.policy.handle(event)
        self.trace.append((event, actions))
        for action in actions:
            self._execute(action)
            self.max_live = max(self.max_live, len(self.live))
        return actions

    def _execute(self, a) -> None:
        if isinstance(a, SetTimer):
            assert a.at >= self.now - 1e-9, f"timer {a.name} set in the past: {a.at} < {self.now}"
            self.timers[a.name] = a.at
        elif isinstance(a, CancelTimer):
            self.timers.pop(a.name, None)
        elif isinstance(a, FetchToken):
            assert self.fetch is None, "two token requests in flight"
            self.fetch = a
        elif isinstance(a, OpenSocket):
            assert a.sock not in self.live, f"socket id {a.sock} reused"
            self.connecting.add(a.sock)
        elif isinstance(a, CloseSocket):
            if a.sock in self.open:
                self.client_closed.append(a.sock)
            self.connecting.discard(a.sock)
            self.open.discard(a.sock)

    def start(self) -> None:
        self.feed(Start(self.now))

    def step(self) -> None:
        """Advance a little and make one thing happen."""
        r = self.rng
        proposed = self.now + r.uniform(0.0, 3.0)
        due = min(self.timers.items(), key=lambda kv: kv[1], default=None)
        if due is not None and due[1] <= proposed:
            self.now = max(self.now, due[1])  # never step past a due timer
            del self.timers[due[0]]
            self.feed(TimerFired(self.now, due[0]))
            return
        self.now = proposed
        options = ["frame", "user", "network", "close", "idle"]
        if self.fetch is not None:
            options += ["token"] * 3
        if self.connecting:
            options += ["handshake"] * 3
        if self.client_closed:
            options += ["closed_by_client"] * 2
        choice = r.choice(options)
        getattr(self, f"_do_{choice}")()

    def _do_idle(self) -> None:
        due = min(self.timers.values(), default=None)
        if due is not None:
            self.now = max(self.now, due)

    def _do_token(self) -> None:
        r = self.rng
        ok = r.random() < 0.8  # an answer may land just after the network went
        status = 200 if ok else (None if not self.online else r.choice([401, 503]))
        self.fetch = None
        self.feed(TokenResult(self.now, ok, status, f"tok{r.randrange(10**6)}" if ok else None,
                              self.now + self.token_ttl if ok else None))

    def _do_handshake(self) -> None:
        r = self.rng
        sock = r.choice(sorted(self.connecting))
        self.connecting.discard(sock)
        if self.online and r.random() < 0.6:
            self.open.add(sock)
            self.feed(SocketOpened(self.now, sock))
        else:
            self.feed(HandshakeFailed(self.now, sock, r.choice([403, 503]) if self.online else None))

    def _do_close(self) -> None:
        if not self.open:
            return self._do_idle()
        r = self.rng
        sock = r.choice(sorted(self.open))
        self.open.discard(sock)
        code = r.choice(CLOSE_CODES)
        self.feed(SocketClosed(self.now, sock, code, "", "network" if code == 1006 else "server"))

    def _do_closed_by_client(self) -> None:
        sock = self.client_closed.pop(0)
        self.feed(SocketClosed(self.now, sock, 1000, "", "client"))

    def _do_frame(self) -> None:
        if not self.open:
            return self._do_idle()
        r = self.rng
        k = r.randrange(self.message_pool)
        for sock in sorted(self.open):  # the server fans a message out to every socket of the conversation
            self.feed(FrameReceived(self.now, sock, {"v": "1.0", "type": "assistant_message",
                                                     "id": f"m{k}", "seq": k + 1, "agent": "echo", "text": "hi"}))

    def _do_user(self) -> None:
        self.feed(UserMessage(self.now, "any two-bed flats?"))

    def _do_network(self) -> None:
        self.online = not self.online
        if self.online:
            self.feed(NetworkOnline(self.now))
            return
        self.feed(NetworkOffline(self.now))
        for sock in sorted(self.open):  # the network takes the sockets with it
            self.open.discard(sock)
            self.feed(SocketClosed(self.now, sock, 1006, "", "network"))

    def run(self, steps: int) -> "World":
        self.start()
        for _ in range(steps):
            self.step()
        return self
