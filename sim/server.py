"""The modelled server side: accept path, admission, live sockets, tokens, fan-out, heartbeats.

Everything happens in SimPy time through calls scheduled on `sim.schedule.ModelEnvironment`
(no generator per socket: a fleet has hundreds of thousands). The accept path is a `Slots` pool (what a
`simpy.Resource` does, without its request and release events) with
`calibration.handshake_servers` slots and a measured service-time distribution, so a herd
queues exactly as an M/M/c (or M/G/c) queue would. Admission is the server's own sans-IO
`AdmissionPolicy`, driven with simulated `now`.

The model states no rule of the server: which connection is accepted, refused (and how: an HTTP
403, an error frame and a close code, or a dropped connection), shed, expired live or closed at a
shutdown, what a refresh answers, what a `resume` replays and who gets a message are decided by
the server's own sans-IO core (`system.server.handshake`, `.tokens`, `.lifecycle`, `.delivery`,
`.admission`), driven here with simulated `now`. The model adds only what things cost (service
times from the calibration) and how the network carries them:
- a connection is decided after its handshake slot, as the real server decides after the upgrade
  (a shed connection costs a full handshake);
- a broken network path (partition, offline, blackhole) leaves a half-open socket: the server's
  heartbeat drops its end (the first ping after the break, plus the timeout, if the path is still
  broken then); the client, which does not ping, learns when the path heals (see sim.client).
The core's send-buffer bounds (`system.server.backpressure`: shedding a client that does not read,
the pages of a replay) are not driven here: a model socket holds no bytes, so they decide nothing
(that module says why).
"""
from __future__ import annotations

import itertools
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from formats.scenario.server import ServerProfile
from sim.scrapes import AgentHistogram
from system import wire
from system.server import delivery, handshake
from system.server.admission import AdmissionConfig, AdmissionPolicy
from system.server.config import ANSWER_UNANSWERED
from system.server.fdlimit import accept_backlog
from system.server.handshake import Outcome
from system.server.lifecycle import LiveExpiry, Revocation, shutdown
from system.server.tokens import AccessClaims, AuthError, Grant, MemoryBook, TokenRules

if TYPE_CHECKING:  # pragma: no cover
    from sim.calibration import Calibration, Dist
    from sim.client import SimClient
    from sim.schedule import ModelEnvironment

ABNORMAL, KEEPALIVE_TIMEOUT = wire.ABNORMAL, wire.KEEPALIVE_TIMEOUT
AGENT = "real_estate"  # the agent the model's replies come from
FLEET_DESCRIPTORS = 1 << 20  # the modelled server's open-files limit: sized for its fleet, never the bound


def draw_stream(dist: "Dist | Callable[[np.random.Generator, int], np.ndarray]", rng: np.random.Generator,
                block: int = 8192) -> Callable[[], float]:
    """A callable giving the next draw of `dist`, drawn from `rng` a block at a time (a numpy call
    per event costs more than the event). A block is drawn when the one before is used up, so
    streams sharing one generator interleave their blocks in the order they need them. The call
    is an iterator's `__next__` over the blocks chained: no Python frame per draw, and a calm
    client's batch makes one per refresh."""
    sample = dist if callable(dist) else dist.sample

    def blocks() -> Iterator[list[float]]:
        while True:
            yield sample(rng, block).tolist()

    return itertools.chain.from_iterable(blocks()).__next__


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


#: Linux sends a SYN that got no answer again 1, 3, 7, ... s after the first (initial RTO 1 s,
#: doubled each time, `tcp_syn_retries` 6): when a connect comes back to a full listen queue
SYN_AT = (1.0, 3.0, 7.0, 15.0, 31.0, 63.0)
#: aiohttp's `TCPSite` listen backlog (the server's token endpoints); the WebSocket listener's is
#: `system.server.fdlimit.accept_backlog`, 100 for a server sized for a fleet
HTTP_BACKLOG = 128


def next_syn_in(attempt: int, give_up: float) -> float | None:
    """Seconds from SYN number `attempt` (0: the first) to the next, or None if the next comes at or
    after `give_up` seconds from the first (the client's open timeout ends the connect first)."""
    if attempt >= len(SYN_AT) or SYN_AT[attempt] >= give_up:
        return None
    return SYN_AT[attempt] - (SYN_AT[attempt - 1] if attempt else 0.0)


class Listener:
    """A listening socket in front of the server's CPU: it holds at most `limit` requests that wait
    for (or hold) the CPU. That is the kernel's listen queue plus what asyncio has accepted and not
    yet served, at most two accept rounds of the backlog each (`system.server.fdlimit`), so
    `limit` is three backlogs. A connect that finds it full is not taken: the kernel drops its SYN
    and the client's kernel sends it again (`SYN_AT`) until the client's open timeout gives up. A
    request the server never took costs it nothing, and a request it took waits at most `limit`
    service times, well within the timeout: so a herd larger than the queue is served at the CPU's
    pace, instead of the CPU spending itself on connects whose clients have already given up
    (with no bound, a herd that outgrows the timeout's worth of queue is never served again)."""

    __slots__ = ("limit", "held")

    def __init__(self, backlog: int, weight: int = 1, servers: int = 1) -> None:
        # an agent standing for `weight` clients queues `weight` requests at once: the queue holds as
        # many requests' worth of service as the real one, not `weight` times more (which a herd would
        # wait through past its open timeout); but never fewer agents than the CPU has `servers`: an
        # agent in service holds one for all its clients, so fewer would leave servers idle that the
        # real queue keeps busy, and cut the throughput by the weight
        self.limit = max(servers, -(-3 * backlog // weight))
        self.held = 0

    def take(self, cpu: "Slots", service: Callable[[], float], fn: Callable[..., None], *args: Any) -> bool:
        """Queue `fn(*args)` on `cpu` for a `service()` if there is room; False if the SYN is dropped."""
        if self.held >= self.limit:
            return False
        self.held += 1
        cpu.serve(service, self._served, fn, args)
        return True

    def _served(self, fn: Callable[..., None], args: tuple) -> None:
        self.held -= 1
        fn(*args)


class Pending:
    """A token request the server has taken: its client hears the answer, or the failure at its
    request timeout (the driver's HTTP timeout), whichever comes first. A request that waited too
    long in the server's queue is still served when its turn comes (the server does not know the
    client left): a refresh it answers is rotated all the same, so the client presents the spent
    token next time, as a real client whose request timed out does."""

    __slots__ = ("done",)

    def __init__(self, done: Callable[..., None]) -> None:
        self.done: Callable[..., None] | None = done

    def answer(self, *result: Any) -> None:
        done, self.done = self.done, None
        if done is not None:
            done(*result)

    def time_out(self) -> None:
        self.answer(False, None, None, None)


class Sock:
    """One WebSocket as both ends see it; `client_open` and `server_open` part when it half-opens."""

    __slots__ = ("client", "sock", "conv", "state", "server_open", "client_open", "expires", "family",
                 "broken_at", "gen", "admitted", "opened_at")

    def __init__(self, client: "SimClient", sock: Any) -> None:
        self.client, self.sock, self.conv = client, sock, client.conversation
        self.state = "connecting"
        self.server_open = self.client_open = False
        self.expires = float("inf")
        self.family = ""  # the refresh family of the socket's current token (revoked with it)
        self.broken_at: float | None = None
        self.gen = 0  # bumped whenever a scheduled check about this socket becomes stale
        self.admitted = False
        self.opened_at = 0.0  # the server's keepalive pings this socket every interval from here


class TokenService:
    """The server's token endpoints: `system.server.tokens.TokenRules` over a `MemoryBook`, with the
    model's costs (a latency, or a slot of the server's CPU) and its availability. A model token is
    the `AccessClaims` themselves (the signature is the only part the model leaves out)."""

    def __init__(self, env: "ModelEnvironment", profile: ServerProfile, latency: Callable[[], float],
                 weight: int = 1, servers: int = 1) -> None:
        self.env, self.latency = env, latency
        self.cpu: Slots | None = None
        self.listener = Listener(HTTP_BACKLOG, weight, servers)  # `servers`: those of the CPU of `serve_on`
        self.give_up = float("inf")  # the client's request timeout, from `serve_on`
        self.service: Callable[[], float] = latency
        self.server_up: Callable[[], bool] = lambda: True
        self.refused_after = 0.0
        # the server's live sockets: a revoked family and the one client whose sockets can carry it
        self.on_revoked: Callable[[Revocation, "SimClient"], None] = lambda revocation, holder: None
        serial = itertools.count(1).__next__  # ids and refresh tokens need only be unique here
        self.rules = TokenRules(MemoryBook(), access_ttl=profile.token_ttl, refresh_ttl=profile.refresh_ttl,
                                new_secret=serial, new_id=serial, digest=None)  # in memory: no digest

    @property
    def issued(self) -> int:
        return self.rules.issued

    @property
    def outage(self) -> bool:
        return self.rules.outage

    @outage.setter
    def outage(self, on: bool) -> None:
        self.rules.outage = on

    def fetch(self, client: "SimClient", done: Callable[..., None], refresh: bool = False, syn: int = 0) -> None:
        """A login (`refresh` False) or a refresh presenting the client's refresh token; `done(ok,
        status, token, expires, refresh_token)` gets the answer. On the server's CPU its connect
        may find the listen queue full (`Listener`): sent again as TCP does (`syn`: the attempt), it
        fails when the client's request timeout comes first, in the listen queue or in the
        server's (`Pending`)."""
        if not self.server_up():  # the token endpoint is down with the server: refused at once
            self.env.call_in(self.refused_after, done, False, None, None, None)
            return
        if self.cpu is None:
            self.env.call_in(self.latency(), self._answer, client, done, refresh)
            return
        pending = Pending(done)
        left = self.give_up - (SYN_AT[syn - 1] if syn else 0.0)  # of the client's timeout, from the first SYN
        if self.listener.take(self.cpu, self.service, self._answer, client, pending.answer, refresh):
            self.env.call_in(left, pending.time_out)
            return
        wait = next_syn_in(syn, self.give_up)
        if wait is None:
            self.env.call_in(left, done, False, None, None, None)
        else:
            self.env.call_in(wait, self.fetch, client, done, refresh, syn + 1)

    def _answer(self, client: "SimClient", done: Callable[..., None], refresh: bool) -> None:
        try:
            grant = self.issue(client, self.env.now, refresh)
        except AuthError as exc:
            if exc.family is not None:  # a spent refresh token presented again: its family is revoked
                self.on_revoked(Revocation(family=exc.family), client)
            done(False, exc.status, None, None)
            return
        done(True, 200, grant.claims, grant.claims.expires_at, grant.refresh_token)

    def issue(self, client: "SimClient", now: float, refresh: bool = True) -> Grant:
        """The rules' answer at `now` to `client`'s refresh (presenting its refresh handle) or login;
        an `AuthError` is a refusal."""
        if refresh:
            return self.rules.refresh(client.refresh_handle, now)
        return self.rules.issue(client.client_id, now)

    def refresh_chain(self, client: "SimClient", times: list[float]) -> Grant:
        """`issue` of a refresh at each of `times`, each presenting the last one's refresh token (a
        calm client's batch, `SimClient.wake`): the last grant."""
        return self.rules.refresh_chain(client.refresh_handle, times)

    def answer_time(self) -> float:
        """How long a refresh takes when nothing queues with it: a service draw on the server's CPU
        (or the token latency of an external service). The calm path (`SimClient.wake`) uses it."""
        return self.latency() if self.cpu is None else self.service()

    def served_by(self, server_up: Callable[[], bool], refused_after: float) -> None:
        """The endpoints are the server's own: refused while it is down (a restart takes them with
        it), whatever their cost."""
        self.server_up, self.refused_after = server_up, refused_after

    def serve_on(self, cpu: Slots, service: Callable[[], float], give_up: float) -> None:
        """Requests queue for the server's `cpu` slots and hold one for `service` (not pure latency),
        behind the HTTP listener (`Listener`); a client gives a request up after `give_up` s."""
        self.cpu, self.service, self.give_up = cpu, service, give_up

    def verify(self, token: AccessClaims | None, user: str) -> AccessClaims | AuthError:
        """As the server's `verify`: the token's claims if they hold now, else why not. The refusal
        goes without its traceback: its frames would hold the caller's, which holds the refusal, a
        cycle per refused handshake (a legacy fleet's expired tokens: millions a day) that only the
        cyclic collector frees, and it is off while the model runs (`sim.world.no_cyclic_collection`)."""
        if token is None:
            return AuthError("auth_invalid", "no access token")
        if token.user != user:
            return AuthError("auth_invalid", "token belongs to another user")
        try:
            return self.rules.check(token, self.env.now)
        except AuthError as exc:
            return exc.with_traceback(None)

    def expire(self, users: list[str] | None) -> None:
        if users is None:
            self.rules.expire(None)
        else:
            for user in users:
                self.rules.expire(user)


class ModelServer:
    def __init__(self, env: "ModelEnvironment", profile: ServerProfile, calibration: "Calibration",
                 rng: np.random.Generator, tokens: TokenService, on_sent: Callable[[str, str, int, float], None] | None,
                 weight: int = 1) -> None:
        self.env, self.profile, self.cal, self.tokens = env, profile, calibration, tokens
        self.traits = profile.traits
        self.expiry = LiveExpiry(profile.expiry_grace)
        self.handshake = Slots(env, calibration.handshake_servers)
        self.listener = Listener(accept_backlog(FLEET_DESCRIPTORS), weight, calibration.handshake_servers)
        self.service = draw_stream(calibration.handshake_service, rng)
        self.close_service = None if calibration.close_service is None else draw_stream(calibration.close_service, rng)
        self.agent = draw_stream(calibration.agent_latency, rng)
        self.admission = AdmissionPolicy(AdmissionConfig(profile.max_connections, profile.handshake_rate))
        self.up = True  # the process runs: its token endpoint answers
        self.accepting = True  # its WebSocket listener accepts (a graceful stop closes it first)
        self._stopping = False  # a graceful stop waits for its closes before the process is gone
        # conversations whose acked message a restart left unanswered, oldest first (`_turn_done`)
        self._owed: deque[str] = deque()
        self._owed_budget = 0  # of them, how many this start still answers
        self._answering_owed = False
        self._closing = 0  # server closes still waiting for the CPU
        self.epoch = 0  # bumped by every restart: handshakes in flight across one are lost
        self.live: dict[str, list[Sock]] = {}  # conversation -> server-open sockets
        self.active = 0
        self.peak_active = 0
        self.handshakes = 0
        self.log = delivery.MemoryLog(keep=on_sent is not None)
        self._msg = 0
        self.on_sent = on_sent
        self.on_received: Callable[[str, str, float, bool], None] = lambda *row: None
        self._answered: set[str] = set()  # user message ids answered (acks: a resend is dropped)
        self.agent_seconds = AgentHistogram()
        tokens.on_revoked = self.expire_live

    # ---- accept path -------------------------------------------------------------------
    def connect(self, s: Sock, token: AccessClaims | None, last_seq: int | None, syn: int = 0) -> None:
        """A TCP connect has reached the server: queue for a handshake slot, then the server's
        decision; when the listen queue is full (`Listener`) its SYN comes again later (`syn`: the
        attempt), until the client's open timeout fails it."""
        if not self.accepting:
            self.env.call_in(self.cal.refused_after_s, s.client.handshake_failed, s, None)
            return
        if self.listener.take(self.handshake, self.service, self._handshake_done, s, token, last_seq, self.epoch):
            return
        wait = next_syn_in(syn, self.cal.connect_timeout_s)
        if wait is not None:
            self.env.call_in(wait, self._syn_again, s, token, last_seq, syn + 1)

    def _syn_again(self, s: Sock, token: AccessClaims | None, last_seq: int | None, syn: int) -> None:
        if s.state == "connecting":  # not yet given up by its client
            self.connect(s, token, last_seq, syn)

    def _handshake_done(self, s: Sock, token: AccessClaims | None, last_seq: int | None, epoch: int) -> None:
        if epoch != self.epoch or s.state != "connecting":
            # the client gave up on it (open timeout) or the server restarted underneath (the client learns
            # from its own end); admission comes after this slot, so it holds no place (an admitted
            # connect the client gave up on frees its place in `drop_end`, when `opened` finds it closed)
            return
        self.handshakes += 1
        self._answer(s, token)

    def _answer(self, s: Sock, token: AccessClaims | None) -> None:
        """The server core decides, with the facts of the model: every Origin is allowed and every
        client opens its own conversation."""
        checked = self.tokens.verify(token, s.client.client_id)
        auth = checked if isinstance(checked, AuthError) else None
        early = handshake.before_upgrade(self.traits, path_ok=True, origin_ok=True, auth=auth, owner_ok=True)
        if early is not None:
            s.client.handshake_failed(s, early.status)
            return
        admission = None
        if handshake.sheds(self.traits):
            admission = self.admission.admit(self.env.now)
            s.admitted = admission.accepted
        outcome = handshake.after_upgrade(self.traits, admission=admission, origin_ok=True, auth=auth, owner_ok=True)
        self._open(s)
        if outcome.kind != "accept":
            self.act(s, outcome)
            return
        s.expires, s.family = checked.expires_at, checked.family
        if self.profile.live_expiry:
            self._watch_expiry(s)
        s.client.frame(s, {"v": wire.FRAME_VERSION, "type": "welcome", "session_id": f"{s.client.index}:{s.sock}",
                           "conversation_id": s.conv, "server_time": self.env.now,
                           "last_seq": self.log.last_seq(s.conv)})

    def _open(self, s: Sock) -> None:
        s.state = "open"
        s.server_open = s.client_open = True
        s.opened_at = self.env.now
        self.live.setdefault(s.conv, []).append(s)
        self.active += 1
        if self.active > self.peak_active:
            self.peak_active = self.active
        s.client.opened(s)

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

    def act(self, s: Sock, outcome: Outcome) -> None:
        """Carry out a decision of the server core on an open socket, as the server's `_act`: its
        `error` frame, then its close; or a dropped connection (the client sees 1006).
        The error frame matters to the herd after a mass expiry: a fixed client fetches a fresh token
        on the frame, so the fleet's refreshes queue on the server at the moment of the close, and each
        reconnect waits for its client's refresh instead of starting one after its backoff. Both frames
        arrive together and the client's WebSocket stack answers the close before its application has
        read the error frame, so the close reply reaches the server's queue before the refresh it starts
        (the emulated herd refreshes once per client, after its close; the other way round the model
        refreshed twice)."""
        live = s.client_open and s.broken_at is None
        if outcome.kind == "abort":
            if self.drop_end(s) and live:
                s.client.closed(s, ABNORMAL, "", "network")
            return
        if outcome.error is None:
            self.close(s, outcome.code, outcome.reason)
            return
        frame = {"v": wire.FRAME_VERSION, "type": "error", "code": outcome.error, "message": outcome.reason}
        frame_first = self.close_service is None  # the close then completes at once
        if live and frame_first:
            s.client.frame(s, frame)
        self.close(s, outcome.code, outcome.error)
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
        self.env.call_in(self.expiry.deadline(s.expires) - self.env.now, self._check_expiry, s, s.gen)

    def _check_expiry(self, s: Sock, gen: int) -> None:
        if gen != s.gen or not s.server_open:
            return
        expiry = self.expiry
        if expiry.due(self.env.now, s.expires):
            self.act(s, expiry.refuse(self.traits))
        else:
            self.env.call_in(expiry.deadline(s.expires) - self.env.now, self._check_expiry, s, gen)

    def rest(self, s: Sock) -> None:
        """A calm client's socket (sim.client.SimClient.wake): its token is refreshed in time until
        something happens to the client, so its expiry check is off meanwhile (a firing is stale)."""
        s.gen += 1

    def wake(self, s: Sock) -> None:
        """The calm client's refreshes are played up to now: the check is due at its expiry again."""
        if self.profile.live_expiry and s.server_open:
            self._watch_expiry(s)

    def refreshed(self, s: Sock, token: AccessClaims | None) -> None:
        """An in-band auth_refresh arrived: a valid token moves the socket's expiry."""
        checked = self.tokens.verify(token, s.client.client_id)
        if not isinstance(checked, AuthError):
            s.expires, s.family = checked.expires_at, checked.family  # the pending expiry check sees it and re-arms

    def expire_live(self, revocation: Revocation, holder: "SimClient | None" = None) -> None:
        """Tokens were revoked: the core says which live sockets must refresh within the grace.
        `holder`: the one client whose sockets can hold the revoked family (a family is one login's,
        and a model user has one client and one conversation), so a reuse looks at its sockets, not
        at the fleet's: in a herd of timed-out refreshes that scan was most of the run."""
        fleet = self.live.values() if holder is None else (self.live.get(holder.conversation, ()),)
        hit = revocation.expire(self.profile.live_expiry, ((s, s.client.client_id, s.family, s.expires)
                                                           for peers in fleet for s in peers), self.env.now)
        for s, expires in hit:
            s.expires = expires
            self._watch_expiry(s)

    # ---- restarts ----------------------------------------------------------------------
    def go_down(self, crash: bool) -> None:
        """A crash (or an abrupt legacy shutdown) takes the process at once. A graceful stop closes
        the listener at once and every socket with 1012; the process, and its token endpoint with
        it, is gone only when those closes have gone through its CPU (the emulated server keeps
        answering token requests while it says goodbye to a few thousand sockets)."""
        self.accepting = False
        self.epoch += 1
        outcome = shutdown(self.traits, crash=crash)
        for peers in list(self.live.values()):
            for s in list(peers):
                self.act(s, outcome)
        if outcome.kind == "abort":
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
        self._owed_budget = ANSWER_UNANSWERED
        self._answer_owed()

    # ---- messages ----------------------------------------------------------------------
    def user_message(self, s: Sock, frame: dict) -> None:
        """A user message reached the server: stored and acknowledged (unless legacy), a resend of
        a stored one dropped, then the agent answers to every open socket of the chat."""
        acks = delivery.acks(self.traits)
        answer = not (acks and frame["id"] in self._answered)
        if self.log.keep:
            self.on_received(s.conv, frame["id"], self.env.now, answer)
        if acks:
            if s.client_open and s.broken_at is None:
                s.client.frame(s, {"v": wire.ACK_VERSION, "type": "ack", "ref": frame["id"]})
            self._answered.add(frame["id"])
        if not answer:
            return
        took = self.agent()
        self.agent_seconds.observe(took)
        self.env.call_in(took, self._turn_done, s.conv, self.epoch)

    def _turn_done(self, conv: str, epoch: int) -> None:
        """The agent's answer, unless the server restarted meanwhile: the turn died with its
        process. An acked message is then owed (fixed; a legacy server acked nothing and its
        message is lost), and a start answers what is owed, as the server's `answer_unanswered`
        does: oldest first, one at a time, up to `ANSWER_UNANSWERED` per start."""
        if epoch == self.epoch:
            self.publish(conv)
        elif delivery.acks(self.traits):
            self._owed.append(conv)
            self._answer_owed()

    def _answer_owed(self) -> None:
        if self._answering_owed or not (self.accepting and self._owed and self._owed_budget > 0):
            return
        self._answering_owed = True
        self._owed_budget -= 1
        took = self.agent()
        self.agent_seconds.observe(took)
        self.env.call_in(took, self._owed_done, self._owed.popleft(), self.epoch)

    def _owed_done(self, conv: str, epoch: int) -> None:
        self._answering_owed = False
        if epoch == self.epoch:
            self.publish(conv)
        else:  # restarted again: still owed, first in line
            self._owed.appendleft(conv)
        self._answer_owed()

    def publish(self, conv: str) -> None:
        self._msg += 1
        msg_id = f"m{self._msg}"
        now = self.env.now
        m = self.log.append(conv, msg_id, now, delivery.assistant_message(msg_id, {"agent": AGENT, "text": ""}))
        if self.on_sent is not None:
            self.on_sent(conv, msg_id, m.seq, now)
        for s in delivery.fan_out(self.live.get(conv, ())):
            if s.broken_at is None and s.client_open:
                s.client.frame(s, m.frame)

    def replay(self, s: Sock, last_seq: int) -> None:
        for m in self.log.messages_after(s.conv, last_seq):
            if s.server_open and s.broken_at is None:
                s.client.frame(s, m.frame)

    # ---- heartbeats --------------------------------------------------------------------
    def next_ping_delay(self, s: Sock) -> float:
        """The server's keepalive (as websockets') pings each socket every interval from its open, so
        a socket opened during a fault waits a whole interval (not U(0, interval), the phase of a
        socket opened long before)."""
        interval = self.profile.heartbeat_interval
        return interval - (self.env.now - s.opened_at) % interval

    def heartbeat_check_delay(self, s: Sock) -> float:
        """From a break to the moment the next ping after it times out."""
        return self.next_ping_delay(s) + self.profile.heartbeat_timeout
