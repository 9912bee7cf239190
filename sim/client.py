"""The SimPy driver of one client: runs the real `ClientPolicy` and plays its actions in model time.

The asyncio driver (`system/client/driver.py`) executes the same actions over sockets and
HTTP; this one executes them against `sim.server.ModelServer` and the client's modelled network
path. The policy cannot tell the difference: it only sees events and `now`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from system.client import events as ev
from system.client.policy import REFRESH
from sim.server import ABNORMAL, KEEPALIVE_TIMEOUT, Sock

if TYPE_CHECKING:  # pragma: no cover
    from sim.world import World


class SimClient:
    """One user's browser tab: a policy, its sockets, its timers and its network path."""

    __slots__ = ("world", "env", "index", "client_id", "conversation", "policy", "socks", "_timers",
                 "_armed", "online", "blocked", "sealed", "refresh_handle", "refused", "extra_latency", "reset_after",
                 "close_code", "pings_dropped", "stopped", "_stuck", "calm", "_rests")

    def __init__(self, world: "World", index: int, client_id: str, policy: Any) -> None:
        self.world = world
        self.env = world.env
        self.index = index
        self.client_id = client_id
        self.conversation = client_id  # every user has their own conversation, as in the emulated fleet
        self.policy = policy
        self.socks: dict[int, Sock] = {}
        self._timers: dict[str, int] = {}  # timer name -> the serial of its pending firing
        self._armed = 0  # timers armed so far: each firing carries its own serial, so a stale one never matches
        self.online = True
        self.blocked = 0  # blackhole faults in force on this client's path (nothing reaches the client)
        self.sealed = 0  # those of them that also stop what the client sends (a partition)
        self.refresh_handle: str | None = None  # the refresh token this client holds (its last token answer)
        self.refused = 0  # proxy_down faults in force: connects are refused
        self.extra_latency = 0.0  # one-way, from latency/bandwidth/slicer faults
        self.reset_after: float | None = None  # reset_peer/timeout toxics: sockets die this long after open
        self.close_code: int | None = None  # ws_close toxic: every new socket is closed with this code
        self.pings_dropped = 0  # ws_drop_pings in force
        self.stopped = False
        self._stuck: list[Callable[[], None]] = []  # requests and connects stuck in a blackhole
        self.calm: Sock | None = None  # the open socket while the client is calm (see `wake`)
        # whether it can ever rest (`_may_rest`, `settle`): not legacy, not in a plain model (a test's
        # observer of the server has no policy)
        self._rests = policy is not None and world.options.calm_batches and policy.can_be_calm

    # ---- the policy loop ---------------------------------------------------------------
    def feed(self, event: Any) -> None:
        woke = None
        if self.calm is not None:  # its refreshes up to now first; what follows is settled after the event
            woke = self.calm
            self._ride()
        if not self.stopped or isinstance(event, ev.Stop):
            self.world.policy_events += 1
            self._tally_and_do(self.policy.handle(event))
        self.settle(woke)

    def settle(self, woke: Sock | None = None) -> None:
        """After an event (or when the last fault lifts, `World.rest_all`): a client calm again rests with its refresh still pending (after a
        reconnect, a frame, a message); otherwise its refresh timer is armed, unless the event
        already did that, and the socket it woke from gets its server's expiry check back.
        Settling after the event, not at the wake, arms no timer and no check that resting again
        would make stale at once. A client that can never rest has nothing to settle: its policy's
        own actions arm its refresh timer (and nothing woke it)."""
        if not self._rests:
            return
        if self.calm is None and self.policy.refresh_due is not None:
            if self._may_rest():
                self._rest()
            else:
                self._arm_refresh()
        if woke is not None and self.calm is not woke:
            self.world.server.wake(woke)

    def start(self) -> None:
        self.feed(ev.Start(self.env.now))

    def stop(self) -> None:
        self.feed(ev.Stop(self.env.now))
        self.stopped = True

    def path_ok(self) -> bool:
        return self.online and not self.blocked

    # ---- actions -----------------------------------------------------------------------
    def _fetch_token(self, a: ev.FetchToken) -> None:
        if not self.online or self.refused:  # fails at once, as a browser offline or a refused connect
            self.env.call_in(self.world.cal.refused_after_s, lambda: self.feed(ev.TokenResult(self.env.now, False, None)))
            return
        if self.blocked:  # stuck in the blackhole: fails at its timeout or when the toxic goes
            self.stuck(lambda: self.feed(ev.TokenResult(self.env.now, False, None)))
            if not self.sealed:  # a one-way blackhole: the request still reaches the server, the answer is lost
                self.world.tokens.fetch(self, lambda *_answer: None, refresh=a.refresh)
            return
        if self.world.testbed is None:
            self.world.tokens.fetch(self, self._token_answer, refresh=a.refresh)
        else:  # validate: the emulation's client worker and proxy handle the request first
            tb = self.world.testbed
            tb.request(tb.token, self.world.tokens.fetch, self, self._token_answer, a.refresh)

    def _token_answer(self, ok: bool, status: int, token: Any, expires: float | None,
                      refresh_token: str | None = None) -> None:
        if ok:
            self.refresh_handle = refresh_token
        if self.extra_latency:
            self.env.call_in(self.extra_latency * 2, self._token_result, ok, status, token, expires)
        else:
            self._token_result(ok, status, token, expires)

    def _token_result(self, ok: bool, status: int, token: str | None, expires: float | None) -> None:
        self.feed(ev.TokenResult(self.env.now, ok, status, token, expires))

    def _open(self, a: ev.OpenSocket) -> None:
        s = Sock(self, a.sock)
        self.socks[a.sock] = s
        if not self.online or self.refused:
            self.env.call_in(self.world.cal.refused_after_s, self.handshake_failed, s, None)
        else:
            self.env.call_in(self.extra_latency * 2, self._reach_server, s, a.token, a.last_seq)
            # the driver's open timeout: a handshake still queued on the server then fails (the
            # server still spends its handshake on it: the request is in its buffer)
            self.env.call_in(self.world.cal.connect_timeout_s, self.handshake_failed, s, None)

    def _reach_server(self, s: Sock, token: str | None, last_seq: int | None) -> None:
        if s.state != "connecting":
            return
        if not self.online or self.refused:
            self.handshake_failed(s, None)
        elif self.blocked and self.sealed:
            self.stuck(lambda: self.handshake_failed(s, None))
        elif self.world.testbed is None:
            # (a one-way blackhole lets the upgrade reach the server; `opened` loses its answer)
            self.world.server.connect(s, token, last_seq)
        else:  # validate: the emulation's client worker and proxy handle the connect first
            tb = self.world.testbed
            tb.request(tb.connect, self.world.server.connect, s, token, last_seq)

    def stuck(self, fail: Callable[[], None]) -> None:
        """A request in the blackhole fails at its timeout, or at once when the toxic is removed
        (removing Toxiproxy's timeout toxic closes the connections through it)."""
        settled = [False]

        def once() -> None:
            if not settled[0]:
                settled[0] = True
                fail()

        self._stuck.append(once)
        self.env.call_in(self.world.cal.connect_timeout_s, once)

    def _close(self, a: ev.CloseSocket) -> None:
        s = self.socks.get(a.sock)
        if s is None:
            return
        if s.state == "connecting":
            s.state = "closed"  # an abandoned connect: the server forgets it when it answers
            self.socks.pop(a.sock, None)
            return
        if not s.client_open:
            return
        s.client_open = False
        s.state = "closed"
        self.socks.pop(a.sock, None)
        if self.path_ok() and s.broken_at is None:
            self.world.server.drop_end(s)
        self.feed(ev.SocketClosed(self.env.now, a.sock, a.code, a.reason, "client"))

    def _send(self, a: ev.Send) -> None:
        s = self.socks.get(a.sock)
        if s is None or not s.client_open or s.broken_at is not None:
            return  # into the void: a half-open socket swallows what is written to it
        handler = _FRAMES.get(a.frame.get("type"))
        if handler is None:
            return
        if self.extra_latency:
            self.env.call_in(self.extra_latency, handler, self.world.server, s, a.frame)
        else:
            handler(self.world.server, s, a.frame)

    def _set_timer(self, a: ev.SetTimer) -> None:
        if a.name == REFRESH and self._may_rest():
            self._rest()
            return  # no timer: `wake` plays the refreshes when something happens to this client
        self._arm(a.name, a.at)

    def _rest(self) -> None:
        self._timers.pop(REFRESH, None)  # any pending firing is stale
        self.calm = self.socks[self.policy.live_sockets[0]]
        self.world.server.rest(self.calm)

    # ---- calm periods ------------------------------------------------------------------
    def _may_rest(self) -> bool:
        """Calm (`ClientPolicy.calm`) on a path and a server with nothing going on: every later
        event that concerns this client reaches it through `feed`, which wakes it first (a fault
        wakes every client before it starts or ends)."""
        w = self.world
        if not (self._rests and w.faults_holding == 0 and w.testbed is None and w.server.accepting and not w.tokens.outage
                and self.online and not self.blocked and not self.refused and not self.extra_latency
                and self.reset_after is None and self.close_code is None and not self.pings_dropped
                and not self._stuck and self.policy.calm()):
            return False
        s = self.socks.get(self.policy.live_sockets[0])
        return s is not None and s.client_open and s.server_open and s.broken_at is None

    def wake(self) -> None:
        """Something happens to a calm client: its refreshes up to now first, then its timer and the
        server's expiry check of its socket again."""
        s = self.calm
        if s is None:
            return
        self._ride()
        self.world.server.wake(s)
        self._arm_refresh()

    def _arm_refresh(self) -> None:
        """The refresh timer, for a refresh pending since a batch (`_ride`) and not yet armed."""
        due = self.policy.refresh_due
        if due is not None and REFRESH not in self._timers:
            self._arm(REFRESH, due)

    def _ride(self) -> None:
        """Play the refreshes a calm client made since it went calm, up to now, through its policy
        (`ClientPolicy.refresh_in_band`): each refresh's timer and its answer, issued by the token
        service at its due time plus a service time (`TokenService.answer_time`), as the plain model
        would without the queue (a refresh then waits for no handshake: the price of the batch,
        checked against the plain model in tests/sim/test_calm.py). What the policy asks for is
        what the plain model would do: the in-band auth_refresh moves the socket's expiry on the
        server. A refresh due before now whose answer would come after now is sent now, the normal
        way; otherwise the next one stays pending in the policy (`refresh_due`) for the caller to arm
        or to rest with. The token service answers the batch in one call (`TokenRules.refresh_chain`: the same tokens,
        ids and book) and the policy is told the last token (`ClientPolicy.settle_token`)."""
        s, self.calm = self.calm, None
        policy, world = self.policy, self.world
        tokens = world.tokens
        answers, in_flight = policy.refresh_in_band(self.env.now, tokens.answer_time, tokens.rules.access_ttl)
        if answers:
            # never refused: no outage while calm, and the model's refresh TTL outlives the run
            grant = tokens.refresh_chain(self, answers)
            self.refresh_handle = grant.refresh_token  # the next refresh presents it
            token = grant.claims
            policy.settle_token(token, token.expires_at)
            if s.server_open:  # its auth_refresh moves the socket's expiry (the last one counts)
                world.server.refreshed(s, token)
        world.policy_events += 2 * len(answers)  # a timer and a token answer each, as the plain model counts
        if in_flight is not None:
            world.policy_events += 1
            self._tally_and_do(policy.handle(ev.TimerFired(in_flight, REFRESH)))
            return
        records = policy.drain_records()
        if records:
            world.tally(records)

    def _arm(self, name: str, at: float) -> None:
        self._armed += 1
        gen = self._timers[name] = self._armed
        self.env.call_in(at - self.env.now, self._fire, name, gen)

    def _tally_and_do(self, actions: list) -> None:
        records = self.policy.drain_records()
        if records:
            self.world.tally(records)
        for action in actions:
            _DO[type(action)](self, action)

    def _fire(self, name: str, gen: int) -> None:
        if self._timers.get(name) == gen:
            del self._timers[name]
            self.feed(ev.TimerFired(self.env.now, name))

    def _cancel_timer(self, a: ev.CancelTimer) -> None:
        self._timers.pop(a.name, None)  # any pending firing is now stale

    def _nothing(self, a: Any) -> None:
        """Display, DropDuplicate and GiveUp change nothing outside the policy (it restarts itself)."""

    # ---- what the server and the network tell this client ----------------------------
    def handshake_failed(self, s: Sock, status: int | None) -> None:
        if s.state != "connecting":
            return
        s.state = "closed"
        self.socks.pop(s.sock, None)
        self.feed(ev.HandshakeFailed(self.env.now, s.sock, status))

    def opened(self, s: Sock) -> None:
        """The server completed the handshake; the client hears it unless the path broke meanwhile."""
        if s.state == "closed" or not self.online:  # given up on, or the device went offline: aborted
            s.client_open = False
            self.world.server.drop_end(s)
            if s.state != "closed":
                self.handshake_failed(s, None)
            return
        if self.blocked:  # the answer is stuck in the blackhole; the server's end half-opens
            s.client_open = False
            self.break_socket(s)
            self.stuck(lambda: self.handshake_failed(s, None))
            return
        self.feed(ev.SocketOpened(self.env.now, s.sock))
        if self.reset_after is not None:
            self.env.call_in(self.reset_after, self.abort, s)
        if self.close_code is not None and s.client_open:
            self.world.server.close(s, self.close_code, "closed by proxy", by_proxy=True)
        if self.pings_dropped and s.server_open:
            self.watch_pings(s)

    def closed(self, s: Sock, code: int, reason: str, by: str) -> None:
        if not s.client_open:
            return
        s.client_open = False
        s.state = "closed"
        self.socks.pop(s.sock, None)
        self.feed(ev.SocketClosed(self.env.now, s.sock, code, reason, by))

    def frame(self, s: Sock, frame: dict) -> None:
        if self.extra_latency:
            self.env.call_in(self.extra_latency, self._deliver, s, frame)
        else:
            self._deliver(s, frame)

    def _deliver(self, s: Sock, frame: dict) -> None:
        if s.client_open and s.broken_at is None:
            self.feed(ev.FrameReceived(self.env.now, s.sock, frame))

    # ---- network weather ---------------------------------------------------------------
    def abort(self, s: Sock) -> None:
        """A reset on the path: both ends learn at once (code 1006 on the client's side)."""
        self.world.server.drop_end(s)
        self.closed(s, ABNORMAL, "", "network")

    def drop(self) -> None:
        for s in list(self.socks.values()):
            if s.client_open:
                self.abort(s)

    def break_path(self) -> None:
        """Bytes stop flowing (blackhole): every socket half-opens until a heartbeat notices."""
        for s in list(self.socks.values()):
            if s.client_open:
                self.break_socket(s)

    def break_socket(self, s: Sock) -> None:
        """Bytes stop in the blackhole (the proxy's timeout toxic). The server's heartbeat notices
        and drops its end; the proxy then closes the client's leg, so the client (which does not
        ping, as browsers and the emulated fleet do not) sees 1006 at that moment."""
        if s.broken_at is not None:
            return
        t0 = s.broken_at = self.env.now
        server = self.world.server

        def server_check() -> None:
            if s.broken_at == t0 and s.server_open:
                server.drop_end(s)
                self.closed(s, ABNORMAL, "", "network")

        self.env.call_in(server.heartbeat_check_delay(s), server_check)

    def heal_path(self) -> None:
        """The blackhole goes: as Toxiproxy removing a timeout toxic, it closes every connection
        through it (both ends see 1006) and every request stuck in it fails."""
        if not self.path_ok():
            return
        for s in list(self.socks.values()):
            if s.broken_at is not None:
                s.broken_at = None
                self.abort(s)
        stuck, self._stuck = self._stuck, []
        for fail in stuck:
            fail()

    def watch_pings(self, s: Sock) -> None:
        """Pings are dropped but data flows: the server's keepalive fails and it closes with 1001.
        A ping dropped before the fault ends still times out after it (its pong never comes)."""
        server = self.world.server

        def timed_out() -> None:
            if s.server_open:
                server.close(s, KEEPALIVE_TIMEOUT, "keepalive ping timeout")

        def ping() -> None:
            if self.pings_dropped and s.server_open:
                self.env.call_in(server.profile.heartbeat_timeout, timed_out)

        self.env.call_in(server.next_ping_delay(s), ping)

    def go_offline(self) -> None:
        """As the real driver: the policy hears NetworkOffline, then every socket is aborted."""
        self.online = False
        self.feed(ev.NetworkOffline(self.env.now))
        self.drop()

    def go_online(self) -> None:
        self.online = True
        self.heal_path()
        self.feed(ev.NetworkOnline(self.env.now))


def _user_message(server, s: Sock, frame: dict) -> None:
    if s.server_open:
        server.user_message(s, frame)


def _auth_refresh(server, s: Sock, frame: dict) -> None:
    if s.server_open:
        server.refreshed(s, frame.get("token"))


def _resume(server, s: Sock, frame: dict) -> None:
    if s.server_open:
        last = frame.get("last_seq")
        server.replay(s, int(last) if last is not None else 0)


_FRAMES = {"user_message": _user_message, "auth_refresh": _auth_refresh, "resume": _resume}

_DO: dict[type, Callable[[SimClient, Any], None]] = {
    ev.FetchToken: SimClient._fetch_token,
    ev.OpenSocket: SimClient._open,
    ev.CloseSocket: SimClient._close,
    ev.Send: SimClient._send,
    ev.SetTimer: SimClient._set_timer,
    ev.CancelTimer: SimClient._cancel_timer,
    ev.Display: SimClient._nothing,
    ev.DropDuplicate: SimClient._nothing,
    ev.GiveUp: SimClient._nothing,
}
