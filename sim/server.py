"""The modelled server side: accept path, admission, live sockets, tokens, fan-out, heartbeats.

Everything happens in SimPy time through calls scheduled on `sim.schedule.ModelEnvironment`
(no generator per socket: a fleet has hundreds of thousands). The accept path is a `Slots` pool (what a
`simpy.Resource` does, without its request and release events) with
`calibration.handshake_servers` slots and a measured service-time distribution, so a herd
queues exactly as an M/M/c (or M/G/c) queue would. Admission is the server's own sans-IO
`AdmissionPolicy`, driven with simulated `now`.

How the model reads the system's behaviour (README "Server HTTP API", DESIGN "system under test"):
- a bad or expired token: the legacy server (`handshake_403`) answers HTTP 403 at the handshake;
  the fixed one opens and closes with 4401 at once (`abrupt_errors`: drops it, the client sees 1006);
- `live_expiry`: a live socket whose token expired `expiry_grace` ago is closed with 4401 unless
  an in-band `auth_refresh` extended it; revoking tokens (`token_expiry`) sets the clock to now;
- a shed connection (admission) is opened and closed with 1013; a `no_shedding` server does not
  consult admission; an `abrupt_shutdown` server drops every socket without a close frame on a
  graceful restart (clients see 1006);
- a broken network path (partition, offline, blackhole) leaves a half-open socket: the server's
  heartbeat drops its end (the first ping after the break, plus the timeout, if the path is still
  broken then); the client, which does not ping, learns when the path heals (see sim.client).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from sim.scrapes import AgentHistogram
from system.server.admission import AdmissionConfig, AdmissionPolicy

if TYPE_CHECKING:  # pragma: no cover
    from sim.calibration import Calibration, Dist
    from sim.client import SimClient
    from sim.schedule import ModelEnvironment

ABNORMAL, RESTART, INTERNAL, EXPIRED = 1006, 1012, 1011, 4401


class Draws:
    """Pre-drawn blocks of one distribution: per-event numpy calls cost more than the event."""

    __slots__ = ("_dist", "_rng", "_block", "_buf", "_i")

    def __init__(self, dist: "Dist | Callable[[np.random.Generator, int], np.ndarray]",
                 rng: np.random.Generator, block: int = 8192) -> None:
        self._dist = dist if callable(dist) else dist.sample
        self._rng, self._block = rng, block
        self._buf: list[float] = []
        self._i = 0

    def __call__(self) -> float:
        if self._i >= len(self._buf):
            self._buf = self._dist(self._rng, self._block).tolist()
            self._i = 0
        self._i += 1
        return self._buf[self._i - 1]


class Slots:
    """`capacity` servers taken first come, first served, as `simpy.Resource` grants them, but
    without a request and a release event per use, nor a closure: with a refresh every few
    minutes per client those were most of the model's queueing cost. `acquire(fn, *args)` calls
    fn(*args) once a slot is the caller's (at once when one is free) and the holder `release()`s
    it, which passes it straight to the longest waiter. `serve(service, fn, *args)` is the common
    use: hold a slot for a draw of `service()` (drawn when it is granted), free it, call fn(*args)."""

    __slots__ = ("env", "capacity", "busy", "_waiting", "waits")

    def __init__(self, env: "ModelEnvironment", capacity: int) -> None:
        self.env = env
        self.capacity = capacity
        self.busy = 0
        self._waiting: deque[tuple[Callable[..., None], tuple]] = deque()
        self.waits: list[float] | None = None  # a list: the queueing delay of every `serve` (the M/M/c check)

    def acquire(self, fn: Callable[..., None], *args: Any) -> None:
        if self.busy < self.capacity:
            self.busy += 1
            fn(*args)
        else:
            self._waiting.append((fn, args))

    def release(self) -> None:
        if self._waiting:
            fn, args = self._waiting.popleft()
            fn(*args)
        else:
            self.busy -= 1

    def serve(self, service: Callable[[], float], fn: Callable[..., None], *args: Any) -> None:
        self.acquire(self._hold, self.env.now, service, fn, args)

    def _hold(self, since: float, service: Callable[[], float], fn: Callable[..., None], args: tuple) -> None:
        if self.waits is not None:
            self.waits.append(self.env.now - since)
        self.env.call_in(service(), self._served, fn, args)

    def _served(self, fn: Callable[..., None], args: tuple) -> None:
        self.release()
        fn(*args)

    @property
    def queued(self) -> int:
        return len(self._waiting)


class Sock:
    """One WebSocket as both ends see it; `client_open` and `server_open` part when it half-opens."""

    __slots__ = ("client", "sock", "conv", "state", "server_open", "client_open", "expires",
                 "broken_at", "gen", "admitted", "opened_at")

    def __init__(self, client: "SimClient", sock: Any) -> None:
        self.client, self.sock, self.conv = client, sock, client.conversation
        self.state = "connecting"
        self.server_open = self.client_open = False
        self.expires = float("inf")
        self.broken_at: float | None = None
        self.gen = 0  # bumped whenever a scheduled check about this socket becomes stale
        self.admitted = False
        self.opened_at = 0.0  # the server's keepalive pings this socket every interval from here


@dataclass(frozen=True)
class ServerSetup:
    legacy_handshake: bool  # bad token -> HTTP 403 at the handshake (legacy) instead of close 4401
    abrupt_shutdown: bool  # a graceful restart drops sockets without a close frame (legacy)
    abrupt_errors: bool  # an expired token drops the socket without an error or close frame (legacy)
    admission: bool  # the fixed server sheds with 1013; the legacy one admits everything
    live_expiry: bool
    expiry_grace: float
    token_ttl: float
    heartbeat_interval: float
    heartbeat_timeout: float
    max_connections: int | None
    handshake_rate: float | None
    acks: bool = True  # user messages acknowledged and resends dropped by id (legacy no_acks: neither)


class TokenService:
    """Issues and checks access tokens; an outage answers 503; expiry can be forced per client."""

    def __init__(self, env: "ModelEnvironment", ttl: float, latency: Callable[[], float]) -> None:
        self.env, self.ttl, self.latency = env, ttl, latency
        self.cpu: Slots | None = None
        self.service: Callable[[], float] = latency
        self.server_up: Callable[[], bool] = lambda: True
        self.refused_after = 0.0
        self.outage = False
        self._serial = 0
        self._tokens: dict[str, tuple[int, float, float]] = {}  # token -> (client, issued, expires)
        self._family: dict[int, str] = {}  # client -> the refresh token the server last issued it
        self.revoked_before: dict[int, float] = {}
        self.revoked_all_before = -1.0
        self.issued = 0

    def fetch(self, client: "SimClient", done: Callable[[bool, int, str | None, float | None], None],
              refresh: bool = False) -> None:
        """A login (`refresh` False) or a refresh. Refresh tokens rotate as the server's do: a refresh
        presenting anything but the latest one issued (its answer was lost, say in a one-way
        blackhole) is a reuse, answered 401, and revokes the family: the client must log in anew.
        Each model token doubles as its refresh token (`client.refresh_handle`)."""
        if self.cpu is None:
            self.env.call_in(self.latency(), self._answer, client, done, refresh)
            return
        if not self.server_up():  # the token endpoint is down with the server: refused at once
            self.env.call_in(self.refused_after, done, False, None, None, None)
            return
        self.cpu.serve(self.service, self._answer, client, done, refresh)

    def _answer(self, client: "SimClient", done: Callable[[bool, int, str | None, float | None], None],
                refresh: bool) -> None:
        now = self.env.now
        if self.outage:
            done(False, 503, None, None)
            return
        if refresh and self._family.get(client.index) != client.refresh_handle:
            self._family.pop(client.index, None)
            done(False, 401, None, None)
            return
        token, expires = self.issue(client, now)
        done(True, 200, token, expires)

    def issue(self, client: "SimClient", now: float) -> tuple[str, float]:
        """A new access (and refresh) token for `client`, issued at `now`."""
        self._serial += 1
        self.issued += 1
        token = f"t{self._serial}"
        expires = now + self.ttl
        self._tokens[token] = (client.index, now, expires)
        self._family[client.index] = token
        client.own_tokens.append(token)
        if len(client.own_tokens) > 4:  # a client only ever presents its latest few
            self._tokens.pop(client.own_tokens.pop(0), None)
        return token, expires

    def answer_time(self) -> float:
        """How long a refresh takes when nothing queues with it: a service draw on the server's CPU
        (or the token latency of an external service). The calm path (`SimClient.wake`) uses it."""
        return self.latency() if self.cpu is None else self.service()

    def serve_on(self, cpu: Slots, service: Callable[[], float], server_up: Callable[[], bool],
                 refused_after: float) -> None:
        """Requests queue for the server's `cpu` slots and hold one for `service` (not pure latency),
        and are refused while the server is down (a restart takes the token endpoint with it)."""
        self.cpu, self.service, self.server_up, self.refused_after = cpu, service, server_up, refused_after

    def expires_at(self, token: str | None, client_index: int) -> float | None:
        """When the token stops being valid, None when it is unknown or already revoked."""
        info = self._tokens.get(token) if token else None
        if info is None:
            return None
        owner, issued, expires = info
        if owner != client_index or issued <= max(self.revoked_all_before, self.revoked_before.get(owner, -1.0)):
            return None
        return expires

    def expire(self, clients: list[int] | None) -> None:
        now = self.env.now
        if clients is None:
            self.revoked_all_before = now
        else:
            for c in clients:
                self.revoked_before[c] = now


class ModelServer:
    def __init__(self, env: "ModelEnvironment", setup: ServerSetup, calibration: "Calibration",
                 rng: np.random.Generator, tokens: TokenService, on_sent: Callable[[str, str, int, float], None] | None) -> None:
        self.env, self.setup, self.cal, self.tokens = env, setup, calibration, tokens
        self.handshake = Slots(env, calibration.handshake_servers)
        self.service = Draws(calibration.handshake_service, rng)
        self.close_service = None if calibration.close_service is None else Draws(calibration.close_service, rng)
        self.agent = Draws(calibration.agent_latency, rng)
        self.admission = AdmissionPolicy(AdmissionConfig(setup.max_connections, setup.handshake_rate))
        self.up = True  # the process runs: its token endpoint answers
        self.accepting = True  # its WebSocket listener accepts (a graceful stop closes it first)
        self._stopping = False  # a graceful stop waits for its closes before the process is gone
        self._closing = 0  # server closes still waiting for the CPU
        self.epoch = 0  # bumped by every restart: handshakes in flight across one are lost
        self.live: dict[str, list[Sock]] = {}  # conversation -> server-open sockets
        self.active = 0
        self.peak_active = 0
        self.handshakes = 0
        self._seq: dict[str, int] = {}
        self._log: dict[str, list[tuple[int, str, float]]] = {}  # conversation -> (seq, id, t)
        self._msg = 0
        self.on_sent = on_sent
        self.on_received: Callable[[str, str, float, bool], None] = lambda *row: None
        self._answered: set[str] = set()  # user message ids answered (acks: a resend is dropped)
        self.agent_seconds = AgentHistogram()
        self.keep_log = on_sent is not None

    # ---- accept path -------------------------------------------------------------------
    def connect(self, s: Sock, token: str | None, last_seq: int | None) -> None:
        """A TCP connect has reached the server: admission, queue for a handshake slot, answer."""
        now = self.env.now
        if not self.accepting:
            self.env.call_in(self.cal.refused_after_s, s.client.handshake_failed, s, None)
            return
        if self.setup.admission:
            decision = self.admission.admit(now)
            if not decision.accepted:
                self._open_then_close(s, decision.code or 1013, decision.reason)
                return
            s.admitted = True
        self.handshake.serve(self.service, self._handshake_done, s, token, last_seq, self.epoch)

    def _handshake_done(self, s: Sock, token: str | None, last_seq: int | None, epoch: int) -> None:
        if epoch != self.epoch or s.state != "connecting":
            self._release(s)  # an admitted connect the client gave up on (open timeout) frees its place
            return  # or the server restarted underneath (the client learns from its own end)
        self.handshakes += 1
        self._answer(s, token, last_seq)

    def _answer(self, s: Sock, token: str | None, last_seq: int | None) -> None:
        expires = self.tokens.expires_at(token, s.client.index)
        now = self.env.now
        if expires is None or expires <= now:
            if self.setup.legacy_handshake:
                self._release(s)
                s.client.handshake_failed(s, 403)
            else:
                self._open(s)
                self.refuse(s, "auth_expired", "token expired")
            return
        self._open(s)
        s.expires = expires
        if self.setup.live_expiry:
            self._watch_expiry(s)
        s.client.frame(s, {"v": "1.0", "type": "welcome", "session_id": f"{s.client.index}:{s.sock}",
                           "conversation_id": s.conv, "server_time": now,
                           "last_seq": self._seq.get(s.conv, 0)})

    def _open(self, s: Sock) -> None:
        s.state = "open"
        s.server_open = s.client_open = True
        s.opened_at = self.env.now
        self.live.setdefault(s.conv, []).append(s)
        self.active += 1
        if self.active > self.peak_active:
            self.peak_active = self.active
        s.client.opened(s)

    def _open_then_close(self, s: Sock, code: int, reason: str) -> None:
        self._open(s)
        self.close(s, code, reason)

    def _release(self, s: Sock) -> None:
        if s.admitted:
            s.admitted = False
            self.admission.release(self.env.now)

    # ---- closing -----------------------------------------------------------------------
    def close(self, s: Sock, code: int, reason: str = "", *, by_proxy: bool = False) -> None:
        """The server closes its end; the client hears of it only while the path works. The close
        completes when the server has read the client's close reply: with `calibration.close_service`
        that waits for a slot of the server's CPU (behind whatever the burst queued there first, e.g.
        the refreshes a mass expiry's error frames started). A close made by the proxy (`by_proxy`,
        the ws_close toxic) costs the server nothing."""
        if not self.drop_end(s):
            return
        if not (s.client_open and s.broken_at is None):
            return
        if self.close_service is None or by_proxy:
            s.client.closed(s, code, reason, "server")
            return
        self._closing += 1
        self.handshake.serve(self.close_service, self._close_done, s, code, reason)

    def _close_done(self, s: Sock, code: int, reason: str) -> None:
        self._closing -= 1
        if s.client_open and s.broken_at is None:
            s.client.closed(s, code, reason, "server")
        self._maybe_gone()

    def refuse(self, s: Sock, error: str, message: str) -> None:
        """As the server's `_refuse`: an `error` frame, then close 4401. The frame matters to the
        herd after a mass expiry: a fixed client fetches a fresh token on the frame, so the fleet's
        refreshes queue on the server at the moment of the close, and each reconnect waits for its
        client's refresh instead of starting one after its backoff. Both frames arrive together and
        the client's WebSocket stack answers the close before its application has read the error
        frame, so the close reply reaches the server's queue before the refresh it starts (the
        emulated herd refreshes once per client, after its close; the other way round the model
        refreshed twice). The legacy server (`abrupt_errors`) sends neither: it drops the connection."""
        live = s.client_open and s.broken_at is None
        if self.setup.abrupt_errors:  # the client sees 1006
            if self.drop_end(s) and live:
                s.client.closed(s, ABNORMAL, "", "network")
            return
        frame = {"v": "1.0", "type": "error", "code": error, "message": message}
        frame_first = self.close_service is None  # the close then completes at once
        if live and frame_first:
            s.client.frame(s, frame)
        self.close(s, EXPIRED, error)
        if live and not frame_first:
            s.client.frame(s, frame)

    def drop_end(self, s: Sock) -> bool:
        """Forget the server's end of `s` (no frame sent); False when it was already gone."""
        if not s.server_open:
            return False
        s.server_open = False
        peers = self.live.get(s.conv)
        if peers is not None:
            peers.remove(s)
            if not peers:
                del self.live[s.conv]
        self.active -= 1
        self._release(s)
        return True

    def _watch_expiry(self, s: Sock) -> None:
        """One pending check per socket: a refresh moves `s.expires` and the check re-arms itself."""
        s.gen += 1
        gen = s.gen
        grace = self.setup.expiry_grace

        def check() -> None:
            if gen != s.gen or not s.server_open:
                return
            if s.expires + grace > self.env.now:
                self.env.call_in(s.expires + grace - self.env.now, check)
            else:
                self.refuse(s, "auth_expired", "access token expired; refresh and reconnect")

        self.env.call_in(s.expires + grace - self.env.now, check)

    def rest(self, s: Sock) -> None:
        """A calm client's socket (sim.client.SimClient.wake): its token is refreshed in time until
        something happens to the client, so its expiry check is off meanwhile (a firing is stale)."""
        s.gen += 1

    def wake(self, s: Sock) -> None:
        """The calm client's refreshes are played up to now: the check is due at its expiry again."""
        if self.setup.live_expiry and s.server_open:
            self._watch_expiry(s)

    def refreshed(self, s: Sock, token: str | None) -> None:
        """An in-band auth_refresh arrived: a valid token moves the socket's expiry."""
        expires = self.tokens.expires_at(token, s.client.index)
        if expires is not None and expires > self.env.now:
            s.expires = expires  # the pending expiry check sees it and re-arms

    def expire_live(self, clients: set[int] | None) -> None:
        """Tokens were revoked: with live expiry the affected sockets must refresh within the grace."""
        if not self.setup.live_expiry:
            return
        now = self.env.now
        for peers in list(self.live.values()):
            for s in list(peers):
                if clients is None or s.client.index in clients:
                    s.expires = min(s.expires, now)
                    self._watch_expiry(s)

    # ---- restarts ----------------------------------------------------------------------
    def go_down(self, crash: bool) -> None:
        """A crash (or an abrupt legacy shutdown) takes the process at once. A graceful stop closes
        the listener at once and every socket with 1012; the process, and its token endpoint with
        it, is gone only when those closes have gone through its CPU (the emulated server keeps
        answering token requests while it says goodbye to a few thousand sockets)."""
        self.accepting = False
        self.epoch += 1
        for peers in list(self.live.values()):
            for s in list(peers):
                if crash or self.setup.abrupt_shutdown:
                    self.drop_end(s)
                    if s.client_open and s.broken_at is None:
                        s.client.closed(s, ABNORMAL, "", "network")
                else:
                    self.close(s, RESTART, "service restart")
        if crash or self.setup.abrupt_shutdown:
            self.up = False
        else:
            self._stopping = True
            self._maybe_gone()

    def _maybe_gone(self) -> None:
        if self._stopping and self._closing == 0:
            self.up = False
            self._stopping = False

    def come_up(self) -> None:
        self.up = self.accepting = True
        self._stopping = False

    # ---- messages ----------------------------------------------------------------------
    def user_message(self, s: Sock, frame: dict) -> None:
        """A user message reached the server: stored and acknowledged (unless legacy), a resend of
        a stored one dropped, then the agent answers to every open socket of the chat."""
        answer = not (self.setup.acks and frame["id"] in self._answered)
        if self.keep_log:
            self.on_received(s.conv, frame["id"], self.env.now, answer)
        if self.setup.acks:
            if s.client_open and s.broken_at is None:
                s.client.frame(s, {"v": "1.1", "type": "ack", "ref": frame["id"]})
            self._answered.add(frame["id"])
        if not answer:
            return
        took = self.agent()
        self.agent_seconds.observe(took)
        self.env.call_in(took, self.publish, s.conv)

    def publish(self, conv: str) -> None:
        seq = self._seq.get(conv, 0) + 1
        self._seq[conv] = seq
        self._msg += 1
        msg_id = f"m{self._msg}"
        now = self.env.now
        if self.keep_log:
            self._log.setdefault(conv, []).append((seq, msg_id, now))
            self.on_sent(conv, msg_id, seq, now)
        frame = {"v": "1.0", "type": "assistant_message", "id": msg_id, "seq": seq,
                 "agent": "real_estate", "text": "", "conversation_id": conv}
        for s in list(self.live.get(conv, ())):
            if s.broken_at is None and s.client_open:
                s.client.frame(s, frame)

    def replay(self, s: Sock, last_seq: int) -> None:
        for seq, msg_id, _t in self._log.get(s.conv, ()):
            if seq > last_seq and s.server_open and s.broken_at is None:
                s.client.frame(s, {"v": "1.0", "type": "assistant_message", "id": msg_id, "seq": seq,
                                   "agent": "real_estate", "text": "", "conversation_id": s.conv})

    # ---- heartbeats --------------------------------------------------------------------
    def next_ping_delay(self, s: Sock) -> float:
        """The server's keepalive (as websockets') pings each socket every interval from its open, so
        a socket opened during a fault waits a whole interval (not U(0, interval), the phase of a
        socket opened long before)."""
        interval = self.setup.heartbeat_interval
        return interval - (self.env.now - s.opened_at) % interval

    def heartbeat_check_delay(self, s: Sock) -> float:
        """From a break to the moment the next ping after it times out."""
        return self.next_ping_delay(s) + self.setup.heartbeat_timeout
