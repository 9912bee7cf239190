"""The reference client's behaviour as a sans-IO state machine.

No sockets, no asyncio, no clock reads, no global random state: a driver feeds
`handle()` events stamped with its clock and executes the actions it gets back.
The asyncio driver (`system.client.driver`) runs it over real sockets, the SimPy
model over simulated time, so both are about this very code. Each of the ten
fixes (`Fixes`) is a switch on this one implementation; with all of them off it
reproduces the seed system's browser client and its symptoms:

- a new socket per token change (`stable_socket` off), the old one left open
  (`single_writer` off): connection lifetimes bounded by the refresh period, and
  every message fanned out to both sockets, displayed twice (`dedup_resume` off);
- reconnects with the cached token (`refresh_before_reconnect` off): after a
  revocation an HTTP 403 loop at `legacy_delay` (`exp_backoff`, `jitter` off) that
  ends in `GiveUp("max_retries")` after `max_retries` failures, i.e. the user
  hard-refreshes; the policy starts a new session after `think_time`; and one
  proactive refresh `refresh_lead` before expiry, not retried when it fails, so a
  token-service outage near expiry ends in a 4401 (see `_refresh_time`);
- every close treated alike (`close_code_hygiene` off), attempts while offline
  (`network_awareness` off), per-connection handlers that pile up
  (`listener_cleanup` off, see `listener_count`).

Two duties of the fixed client are easy to get subtly wrong, so they are spelled out:
- the server must always know the socket's current token (`stable_socket`): a token that
  changes while the socket is still opening is sent in-band (`auth_refresh`) as soon as it
  opens, else a live-expiry server closes it with 4401 when the token it was opened with
  expires; an `auth_expired`/`auth_invalid` error frame fetches a fresh token at once;
- a user message is kept until the server acknowledges it (`dedup_resume`, contract v1.1's
  `ack`) and resent with its id on the next socket that opens, so a message sent into a
  connection that died is not lost (the server drops the resend of one it already stored);
- messages are displayed in per-conversation `seq` order (`dedup_resume`): a live message
  can overtake the `resume` replay of earlier ones, so one beyond the next expected seq is
  held until the replay fills the gap, for at most `reorder_hold` (then what is held is shown
  in order and the gap recorded).
"""
from __future__ import annotations

import random
from collections import Counter, OrderedDict
from typing import Callable

from system.client.backoff import Backoff
from system.client.config import FIX_NAMES, JITTER_MODES, PROFILES, ClientConfig, Fixes
from system.client.events import (
    Action, CancelTimer, CloseSocket, Display, DropDuplicate, Event, FetchToken, FrameReceived,
    GiveUp, HandshakeFailed, NetworkOffline, NetworkOnline, OpenSocket, Send, SetTimer,
    SocketClosed, SocketOpened, Start, Stop, TimerFired, TokenResult, UserMessage,
)

__all__ = [
    "ClientPolicy", "ClientConfig", "Fixes", "FIX_NAMES", "PROFILES", "JITTER_MODES", "PROTOCOL_VERSION",
    "Start", "Stop", "TokenResult", "SocketOpened", "HandshakeFailed", "SocketClosed", "FrameReceived",
    "TimerFired", "NetworkOffline", "NetworkOnline", "UserMessage", "Event",
    "FetchToken", "OpenSocket", "CloseSocket", "Send", "SetTimer", "CancelTimer", "Display",
    "DropDuplicate", "GiveUp", "Action",
]

PROTOCOL_VERSION = "1.0"
SEEN_IDS_LIMIT = 100_000   # message ids remembered for dedup (oldest forgotten first)
OUTBOX_LIMIT = 100         # user messages held while no socket is open
AUTH_ERRORS = ("auth_expired", "auth_invalid")  # error frames that mean: this socket's token is no good

# timer names
RECONNECT, REFRESH, RESTART, HOLD = "reconnect", "refresh", "restart", "hold"


class ClientPolicy:
    # slots: the model holds a policy per client of a fleet, and an instance dict of more attributes
    # than CPython shares keys for (30) would cost each of them over a kilobyte
    __slots__ = ("config", "fixes", "client_id", "conversation", "_rng", "_backoff", "_refresh_backoff", "_records",
                 "_record_kinds", "_metrics", "_active", "_online", "_next_sock", "_frame_ids", "_live", "_sock_tokens",
                 "_current", "_timers", "_token", "_expires_at", "_fetching", "_fetch_refresh", "_refresh_broken",
                 "_need_refresh", "_refresh_failures", "_auth_rejections", "_attempt", "_failures",
                 "_reconnect_pending", "_listeners", "_leaked_listeners", "_outbox", "_unacked", "_seen", "_last_seq",
                 "_held")

    def __init__(self, config: ClientConfig, rng: random.Random, client_id: str,
                 *, conversation: str | None = None, record_kinds: frozenset[str] | None = None) -> None:
        """`record_kinds`: the record kinds its driver keeps (None: all). The model at fleet scale
        keeps only what the derived tables read, and a token refresh every few minutes per client
        would otherwise build a record it throws away; the client's own metrics count every kind."""
        self.config = config
        self.fixes = config.fixes
        self.client_id = client_id
        self.conversation = conversation or client_id
        self._rng = rng
        self._backoff = Backoff(config, rng)
        self._refresh_backoff = Backoff(config, rng)  # its own memory: refresh retries are not reconnects
        self._records: list[dict] = []
        self._record_kinds = record_kinds
        self._metrics: Counter[str] = Counter()
        self._frame_ids = 0
        self._next_sock = 1
        self._online = True
        self._active = False                     # between Start and Stop or a give-up
        self._timers: dict[str, float] = {}
        self._live: dict[int, float | None] = {}  # sock -> opened_at (None while connecting)
        self._current: int | None = None         # the socket the client reads and writes
        self._sock_tokens: dict[int, str | None] = {}  # live sock -> the token the server knows for it
        self._fetching: str | None = None        # "connect" or "refresh" while a FetchToken is out
        self._fetch_refresh = False
        self._token: str | None = None
        self._expires_at: float | None = None    # the current token's expiry
        self._refresh_broken = False             # the refresh token was refused: log in anew
        self._need_refresh = False               # 4401 under close-code hygiene
        self._refresh_failures = 0
        self._auth_rejections = 0                # auth error frames since the last stable connection
        self._attempt = 0                        # attempt number since the last stable connection
        self._failures = 0                       # consecutive failures since then
        self._reconnect_pending = False          # deferred while offline (network awareness)
        # the sockets whose handlers are held: removed when cleaned up (`listener_cleanup`); without the
        # fix a handler is never removed, so only their number is kept (a day's connections of a fleet)
        self._listeners: list[int] = []
        self._leaked_listeners = 0
        # typed while no socket is open, the latest OUTBOX_LIMIT: a list, as an empty deque takes a block
        # of 64 slots, and the model holds a policy per client of a fleet, whose outboxes are nearly all empty
        self._outbox: list[dict] = []
        self._unacked: OrderedDict[str, dict] = OrderedDict()  # sent, not yet acknowledged (dedup_resume)
        # dedup state outlives sessions: a hard refresh reloads history, it does not re-display it
        self._seen: OrderedDict[object, None] = OrderedDict()
        self._last_seq: int | None = None        # with dedup_resume: the last seq displayed in order
        self._held: dict[int, tuple[float, dict]] = {}  # seq -> (held since, frame), waiting for a gap

    # ---- public surface ----

    def handle(self, event: Event) -> list[Action]:
        handler = self._HANDLERS.get(type(event))
        if handler is None:
            raise TypeError(f"ClientPolicy.handle: not a client event: {event!r}")
        return handler(self, event)

    def drain_records(self) -> list[dict]:
        records, self._records = self._records, []
        return records

    @property
    def listener_count(self) -> int:
        """Per-connection handlers held; grows with every connection when listener_cleanup is off."""
        return len(self._listeners) + self._leaked_listeners

    @property
    def metrics(self) -> dict[str, int]:
        """The client's own counters by record kind (empty without the client_metrics fix)."""
        return dict(self._metrics)

    @property
    def live_sockets(self) -> tuple[int, ...]:
        """Sockets opened or opening that the policy has not closed nor seen close."""
        return tuple(self._live)

    @property
    def active(self) -> bool:
        return self._active

    @property
    def last_seq(self) -> int | None:
        return self._last_seq

    @property
    def refresh_due(self) -> float | None:
        """When the pending proactive refresh is due (None: none is pending)."""
        return self._timers.get(REFRESH)

    @property
    def can_be_calm(self) -> bool:
        """Whether `calm` can ever hold: only for a client that keeps one socket across token changes
        and refreshes before it reconnects."""
        return self.fixes.stable_socket and self.fixes.refresh_before_reconnect

    def calm(self) -> bool:
        """Whether, until something happens to it, all this client will do is refresh its token
        in-band on its one open socket: a driver that hears of every such thing (a close, a frame,
        the network) may then play its refreshes later, in a batch, without a timer each (the SimPy
        model does, `sim.client.SimClient.wake`). The legacy client is never calm: each token
        change opens a socket."""
        current = self._current
        return (self._active and self.can_be_calm and self._fetching is None
                and self._token is not None and not self._refresh_broken and not self._need_refresh
                and len(self._timers) == 1 and REFRESH in self._timers and len(self._live) == 1
                and current is not None and self._live.get(current) is not None
                and self._sock_tokens.get(current) == self._token and not self._held and not self._outbox)

    def refresh_in_band(self, now: float, answer_time: Callable[[], float],
                        ttl: float) -> tuple[list[float], float | None]:
        """A calm client's refreshes due before `now`, played in one call: exactly the state, records
        and random draws of handling, for each, `TimerFired(refresh)` and then a successful
        `TokenResult` `answer_time()` later with a token of `ttl` seconds, while `calm()`
        (tests/client/test_policy_calm.py compares the two), without the events and actions. The
        driver that batches calm periods does what those actions ask: it fetches the tokens (the
        policy holds None until `settle_token`) and tells the server in-band (the auth_refresh
        frames, whose ids are taken here). Returns the answer times, and the due time of a refresh
        whose answer would come at or after `now` (None if none): that one is in flight now, still
        pending here, for the driver to fire the normal way.

        One loop with the draws and the arithmetic of `_refresh_time` inline, because a fleet's
        day is tens of millions of these: the same float operations in the same order, so the
        times are bit for bit those of the events."""
        timers, rnd = self._timers, self._rng.random
        due = timers.get(REFRESH)
        answers: list[float] = []
        if due is None or due >= now:
            return answers, None
        c = self.config
        lo, hi = c.refresh_at - c.refresh_jitter, c.refresh_at
        jittered = self.fixes.jitter and c.refresh_jitter != 0
        in_flight = None
        while due < now:
            answered = due + answer_time()
            if answered >= now:
                in_flight = due
                break
            answers.append(answered)
            expires_at = answered + ttl
            life = max(0.0, expires_at - answered)
            # `_refresh_time` of the fixed client (calm() implies refresh_before_reconnect), with
            # random.uniform(lo, hi) spelt out as the library computes it
            due = answered + life * (lo + (hi - lo) * rnd()) if jittered else answered + life * c.refresh_at
        n = len(answers)
        if n:
            timers[REFRESH] = due
            self._fetch_refresh = True
            self._token, self._expires_at = None, answers[-1] + ttl
            self._refresh_failures = 0
            self._refresh_backoff.reset()
            self._sock_tokens[self._current] = None
            self._frame_ids += n
            if self.fixes.client_metrics:
                self._metrics["token"] += n
            if self._record_kinds is None or "token" in self._record_kinds:
                cid = self.client_id
                self._records.extend({"t": t, "client": cid, "kind": "token", "refresh": True, "ok": True,
                                      "status": 200} for t in answers)
        return answers, in_flight

    def settle_token(self, token: str, expires_at: float) -> None:
        """The token of the last refresh `refresh_in_band` played: a driver that plays a batch asks
        the token service once, for the whole batch, afterwards (the SimPy model:
        `sim.client.SimClient.wake`); the policy is then as if it had been given each."""
        self._token, self._expires_at = token, expires_at
        self._sock_tokens[self._current] = token

    # ---- event handlers ----

    def _on_start(self, e: Start) -> list[Action]:
        if self._active:
            return []
        actions = [self._cancel(RESTART)] if RESTART in self._timers else []
        return actions + self._start_session()

    def _on_stop(self, e: Stop) -> list[Action]:
        self._active = False
        return self._shut_down(e.now, "stop")

    def _on_token(self, e: TokenResult) -> list[Action]:
        if self._fetching is None:
            return []
        purpose, refresh = self._fetching, self._fetch_refresh
        self._fetching = None
        self._record(e.now, "token", refresh=refresh, ok=e.ok, status=e.status)
        if not self._active:
            return []
        if e.ok:
            self._token = e.access_token
            self._refresh_broken = self._need_refresh = False
            self._refresh_failures = 0
            self._refresh_backoff.reset()
            expires_at = e.expires_at if e.expires_at is not None else e.now + self.config.token_ttl
            self._expires_at = expires_at
            actions: list[Action] = [self._set_timer(REFRESH, self._refresh_time(e.now, expires_at))]
            if purpose != "connect":
                return actions + self._token_changed(e.now)
            if self._current is not None:  # opening (synced once open) or open: the server must learn it
                if self._live.get(self._current) is not None:
                    actions += self._sync_token(self._current)
                return actions
            if self.fixes.network_awareness and not self._online:  # went offline while fetching
                self._reconnect_pending = True
                return actions
            return actions + self._connect(e.now)
        if refresh and e.status in (401, 403):
            self._refresh_broken = True
        if purpose == "connect":
            self._failures += 1
            return self._retry(e.now, "token_failed")
        if self.fixes.refresh_before_reconnect:  # keep the token fresh; legacy carries on with the old one
            self._refresh_failures += 1
            return [self._set_timer(REFRESH, e.now + self._refresh_retry_delay(e.now))]
        return []

    def _on_opened(self, e: SocketOpened) -> list[Action]:
        if e.sock not in self._live:
            return []  # closed by us while it was connecting
        self._live[e.sock] = e.now
        self._record(e.now, "open", sock=e.sock, conversation=self.conversation)
        actions: list[Action] = []
        if self.fixes.dedup_resume:
            actions.append(Send(e.sock, self._frame("resume", last_seq=self._last_seq or 0)))
        if e.sock == self._current:
            actions += self._sync_token(e.sock)  # the token changed while the handshake was under way
            for frame in list(self._unacked.values()):  # sent into a socket that died: again, same id
                actions.append(self._send_user(e.now, e.sock, frame, resend=True))
            outbox, self._outbox = self._outbox, []
            actions += [self._send_user(e.now, e.sock, frame) for frame in outbox]
        return actions

    def _on_handshake_failed(self, e: HandshakeFailed) -> list[Action]:
        self._record(e.now, "handshake_failed", sock=e.sock, status=e.status)
        if self._forget(e.sock) is _GONE or e.sock != self._current:
            return []
        self._current = None
        if not self._active:
            return []
        self._failures += 1
        return self._retry(e.now, f"http_{e.status}" if e.status is not None else "unreachable")

    def _on_closed(self, e: SocketClosed) -> list[Action]:
        self._record(e.now, "close", sock=e.sock, code=e.code, reason=e.reason, by=e.by)
        opened_at = self._forget(e.sock)
        if opened_at is _GONE or e.sock != self._current:
            return []  # one we closed ourselves, or a stale socket left open by legacy churn
        self._current = None
        if not self._active:
            return []
        if opened_at is not None and e.now - opened_at >= self.config.stable_after:
            self._reset_attempts()
        else:
            self._failures += 1
        code, hygiene = e.code, self.fixes.close_code_hygiene
        if hygiene and code == 1000:
            return []  # the server ended the conversation on purpose
        if hygiene and code == 4403:
            return self._give_up(e.now, "forbidden")
        if hygiene and code == 1012:
            window = self.config.restart_window
            return self._retry(e.now, "close_1012", self._rng.uniform(0, window), (0.0, window, window))
        if hygiene and code == 1013:
            base, delay = self.config.overload_base, self._backoff.delay(self._failures)
            drawn = self._backoff.drawn
            return self._retry(e.now, "close_1013", base + delay,
                               None if drawn is None else tuple(base + x for x in drawn))
        if hygiene and code == 4401:
            self._need_refresh = True
        return self._retry(e.now, f"close_{code}")

    def _on_frame(self, e: FrameReceived) -> list[Action]:
        if e.sock not in self._live:
            return []
        frame = e.frame
        kind = frame.get("type")
        if kind == "welcome":
            conversation = frame.get("conversation_id") or self.conversation
            actions = self._flush_held(e.now) if conversation != self.conversation else []
            self.conversation = conversation
            return actions
        if kind == "error":
            return self._on_auth_error(e.now, e.sock, frame.get("code"))
        if kind == "ack":
            self._unacked.pop(frame.get("ref"), None)
            return []
        if kind != "assistant_message":
            return []
        msg_id, seq = frame.get("id"), frame.get("seq")
        self._record(e.now, "received", sock=e.sock, msg_id=msg_id, seq=seq, conversation=self.conversation)
        if not self.fixes.dedup_resume:  # legacy: shown as it comes
            if isinstance(seq, int) and (self._last_seq is None or seq > self._last_seq):
                self._last_seq = seq
            return self._display(e.now, frame)
        if msg_id in self._seen:
            self._record(e.now, "duplicate_dropped", msg_id=msg_id, seq=seq)
            return [DropDuplicate(msg_id)]
        self._seen[msg_id] = None
        if len(self._seen) > SEEN_IDS_LIMIT:
            self._seen.popitem(last=False)
        if isinstance(seq, int) and seq > (self._last_seq or 0) + 1:
            self._held[seq] = (e.now, frame)  # ahead of a gap the replay is about to fill
            return self._arm_hold(e.now)
        return self._display_in_order(e.now, frame)

    def _on_auth_error(self, now: float, sock: int, code: object) -> list[Action]:
        """The server refused this socket's token (live expiry: a 4401 close follows). With
        stable_socket a fresh token is fetched at once and sent in-band; repeated refusals
        back off, so a server that keeps refusing can not make a tight loop of it."""
        if code not in AUTH_ERRORS or not self.fixes.stable_socket or sock != self._current or not self._active:
            return []
        self._need_refresh = True
        self._sock_tokens[sock] = None  # whatever token comes next must be sent
        rejections, self._auth_rejections = self._auth_rejections, self._auth_rejections + 1
        if self._fetching is not None:
            return []
        if rejections == 0:
            return self._fetch("refresh")
        return [self._set_timer(REFRESH, now + self._refresh_backoff.delay(rejections - 1))]

    def _on_timer(self, e: TimerFired) -> list[Action]:
        if self._timers.pop(e.name, None) is None:
            return []  # cancelled or replaced since
        if e.name == RESTART:
            return self._start_session()
        if e.name == HOLD:
            return self._flush_held(e.now)
        if not self._active:
            return []
        if e.name == RECONNECT:
            return self._reconnect(e.now)
        if e.name == REFRESH:
            return self._fetch("refresh")
        return []

    def _on_offline(self, e: NetworkOffline) -> list[Action]:
        self._online = False
        self._record(e.now, "offline")
        if self.fixes.network_awareness and RECONNECT in self._timers:
            self._reconnect_pending = True
            return [self._cancel(RECONNECT)]
        return []

    def _on_online(self, e: NetworkOnline) -> list[Action]:
        self._online = True
        self._record(e.now, "online")
        if not (self.fixes.network_awareness and self._reconnect_pending and self._active):
            return []
        self._reconnect_pending = False
        self._reset_attempts()
        if not self.fixes.jitter:
            return self._retry(e.now, "online", 0.0, None)
        ceiling = self._backoff.ceiling(0)
        return self._retry(e.now, "online", self._rng.uniform(0, ceiling), (0.0, ceiling, ceiling))

    def _on_user_message(self, e: UserMessage) -> list[Action]:
        if not self._active:
            return []  # the page is reloading: nothing to type into
        frame = self._frame("user_message", text=e.text)
        if self._current is not None and self._live.get(self._current) is not None:
            return [self._send_user(e.now, self._current, frame)]
        self._outbox.append(frame)
        if len(self._outbox) > OUTBOX_LIMIT:
            del self._outbox[0]
        return []

    _HANDLERS: dict[type, Callable[["ClientPolicy", Event], list[Action]]] = {
        Start: _on_start, Stop: _on_stop, TokenResult: _on_token, SocketOpened: _on_opened,
        HandshakeFailed: _on_handshake_failed, SocketClosed: _on_closed, FrameReceived: _on_frame,
        TimerFired: _on_timer, NetworkOffline: _on_offline, NetworkOnline: _on_online,
        UserMessage: _on_user_message,
    }

    # ---- decisions ----

    def _start_session(self) -> list[Action]:
        self._active = True
        self._token = self._expires_at = None
        self._refresh_broken = self._need_refresh = self._reconnect_pending = False
        self._attempt = self._failures = self._refresh_failures = self._auth_rejections = 0
        self._backoff.reset()
        self._refresh_backoff.reset()
        self._listeners = list(self._live)  # a page load starts with no handlers but its live sockets'
        self._leaked_listeners = 0
        return self._fetch("connect")

    def _fetch(self, purpose: str) -> list[Action]:
        if self._fetching is not None:  # one request at a time; a connect waits on a refresh in flight
            if purpose == "connect":
                self._fetching = "connect"
            return []
        self._fetching = purpose
        self._fetch_refresh = self._token is not None and not self._refresh_broken
        return [FetchToken(refresh=self._fetch_refresh)]

    def _retry(self, now: float, reason: str, delay: float | None = None,
               drawn: tuple[float, ...] | None = None) -> list[Action]:
        """Schedule the next attempt after a failure or a close, or give up (legacy). `drawn`: the
        law the given `delay` was drawn from, min(cap, U(low, high)) (None: a fixed delay); the
        record carries it as `jitter: [low, high, cap]`, so a model whose agent stands for several
        clients can draw theirs from the same law (`formats.record.derive`)."""
        if not self.fixes.exp_backoff and self._failures >= self.config.max_retries:
            return self._give_up(now, "max_retries")
        if self.fixes.network_awareness and not self._online:
            self._reconnect_pending = True
            return []
        if delay is None:
            delay = self._backoff.delay(self._failures)
            drawn = self._backoff.drawn
        if drawn is None:
            self._record(now, "backoff", delay=delay, reason=reason)
        else:
            self._record(now, "backoff", delay=delay, reason=reason, jitter=list(drawn))
        return [self._set_timer(RECONNECT, now + delay)]

    def _reconnect(self, now: float) -> list[Action]:
        if self._current is not None:
            return []
        if self.fixes.network_awareness and not self._online:
            self._reconnect_pending = True
            return []
        if self._token is None or self._need_refresh or self.fixes.refresh_before_reconnect:
            return self._fetch("connect")
        return self._connect(now)  # legacy: the cached token, however stale

    def _connect(self, now: float) -> list[Action]:
        actions: list[Action] = []
        if self.fixes.single_writer:
            for sock in list(self._live):
                actions.append(self._close(sock, 1000, "single writer"))
        sock, self._next_sock = self._next_sock, self._next_sock + 1
        self._live[sock] = None
        self._sock_tokens[sock] = self._token
        self._current = sock
        if self.fixes.listener_cleanup:
            self._listeners.append(sock)
        else:
            self._leaked_listeners += 1
        self._record(now, "attempt", sock=sock, n=self._attempt)
        self._attempt += 1
        last_seq = (self._last_seq or 0) if self.fixes.dedup_resume else None
        actions.append(OpenSocket(sock, self._token, last_seq))
        return actions

    def _refresh_time(self, now: float, expires_at: float) -> float:
        """When to refresh a token received at `now`.

        The fixed client (`refresh_before_reconnect`) refreshes at `refresh_at` (half) of the
        token's lifetime, drawn uniformly up to `refresh_jitter` of it earlier (`jitter` fix), and
        retries a failed refresh with capped, jittered backoff (`_on_token`). The time left when the
        first attempt fails is the longest token-service outage it rides out: half a 15-min token is
        7.5 min, longer than staging-day's 5-min auth outage, where a fixed lead of 225 s was not
        (15,780 of 100k simulated clients closed with 4401 in it). The jitter is one draw per token,
        so a fleet that logged in together (or came back from an outage together) drifts apart
        instead of refreshing in one herd every half-life. Real clients refresh early and tolerate
        failed attempts the same way: MSAL Python (1.10) refreshes long-lived access tokens half-way
        to expiry and retries on the next call when that fails, MSAL.NET derives `refresh_in` as
        half of `expires_in`; kubelet rotates projected service-account tokens past 80% of their
        TTL (client-go re-reads the file every 5 min, half the shortest validity); botocore tries an
        advisory refresh 15 min before expiry and insists only at 10 min (75% and 83% of a 1-h STS
        credential), so a failed refresh costs nothing while the old credential lasts. The price is
        refresh traffic: about 1/0.45 = 2.2 refreshes per token lifetime instead of 1.33.

        Legacy (`refresh_before_reconnect` off) refreshes once, `refresh_lead` before expiry and
        never before half-life (a server TTL shorter than the lead must not make a tight loop), and
        carries on with the old token when that fails: the seed's browser client.
        """
        life = max(0.0, expires_at - now)
        c = self.config
        if not self.fixes.refresh_before_reconnect:
            return max(now + life / 2, expires_at - c.refresh_lead)
        if not self.fixes.jitter or c.refresh_jitter == 0:
            return now + life * c.refresh_at
        return now + life * self._rng.uniform(c.refresh_at - c.refresh_jitter, c.refresh_at)

    def _refresh_retry_delay(self, now: float) -> float:
        """The wait before retrying a failed proactive refresh: capped, jittered backoff whose cap
        is the larger of `max_delay` and a quarter of the token's remaining life.

        A refresh that fails at half-life is not urgent: the token has minutes left, and every
        client whose refresh fell into a token-service outage is retrying at once, so retrying at
        `max_delay` would multiply the dead service's load (Google SRE's "Handling Overload":
        retries amplify an outage; botocore likewise only tries again within an advisory window
        and insists in the last minutes). A quarter of the remaining life keeps each retry at most
        a quarter of the way to expiry, so the first retry after the service returns still lands
        before expiry (only the last `4·max_delay` before expiry use `max_delay`). A 5-min outage
        of 15-min tokens costs 7.2 failed attempts per client (averaged over the outage's phase in
        the refresh cycle) instead of 10.8 with a `max_delay` cap, and 9.8 with the previous
        quarter-life lead (which also let 11 of 60 phases expire)."""
        left = (self._expires_at - now) if self._expires_at is not None else 0.0
        cap = max(self.config.max_delay, left / 4)
        return self._refresh_backoff.delay(self._refresh_failures - 1, cap)

    def _token_changed(self, now: float) -> list[Action]:
        current = self._current
        opened_at = self._live.get(current) if current is not None else None
        if opened_at is None:
            return []  # not open: the next connect uses the new token
        if self.fixes.stable_socket:
            return self._sync_token(current)
        # legacy: the token is a dependency of the socket, so a token change opens a new socket
        if now - opened_at >= self.config.stable_after:
            self._reset_attempts()
        return self._connect(now)

    def _give_up(self, now: float, reason: str) -> list[Action]:
        self._record(now, "give_up", reason=reason)
        self._active = False
        return self._shut_down(now, "give up") + [self._set_timer(RESTART, now + self.config.think_time),
                                             GiveUp(reason)]

    def _shut_down(self, now: float, reason: str) -> list[Action]:
        actions = self._flush_held(now)  # received is shown: a reload must not swallow it
        actions += [self._close(sock, 1000, reason) for sock in list(self._live)]
        actions += [self._cancel(name) for name in list(self._timers)]
        self._outbox.clear()
        self._unacked.clear()  # a reload forgets what was typed, as a page does
        return actions

    # ---- helpers ----

    def _sync_token(self, sock: int) -> list[Action]:
        """stable_socket: tell the server the current token when it knows another for `sock`."""
        if not self.fixes.stable_socket or self._token is None or sock not in self._sock_tokens:
            return []
        if self._sock_tokens[sock] == self._token:
            return []
        self._sock_tokens[sock] = self._token
        return [Send(sock, self._frame("auth_refresh", token=self._token))]

    def _display(self, now: float, frame: dict) -> list[Action]:
        self._record(now, "displayed", msg_id=frame.get("id"), seq=frame.get("seq"), conversation=self.conversation)
        return [Display(frame)]

    def _display_in_order(self, now: float, frame: dict) -> list[Action]:
        """Show `frame` (the next in order, or a late one), then whatever held it completes."""
        actions = self._display(now, frame)
        seq = frame.get("seq")
        if isinstance(seq, int) and seq > (self._last_seq or 0):
            self._last_seq = seq
        while (self._last_seq or 0) + 1 in self._held:
            _, held = self._held.pop((self._last_seq or 0) + 1)
            actions += self._display(now, held)
            self._last_seq = held["seq"]
        return actions + self._arm_hold(now)

    def _arm_hold(self, now: float) -> list[Action]:
        """One `hold` timer, due when the longest-held message has waited `reorder_hold`."""
        if not self._held:
            return [self._cancel(HOLD)] if HOLD in self._timers else []
        at = max(now, min(t for t, _ in self._held.values()) + self.config.reorder_hold)
        return [] if self._timers.get(HOLD) == at else [self._set_timer(HOLD, at)]

    def _flush_held(self, now: float) -> list[Action]:
        """The gap did not fill in time (or the session ends): show what is held, in order, and
        record each missing range."""
        actions: list[Action] = []
        for seq in sorted(self._held):
            _, frame = self._held.pop(seq)
            expected = (self._last_seq or 0) + 1
            if seq > expected:
                self._record(now, "gap", conversation=self.conversation, from_seq=expected, to_seq=seq - 1)
            actions += self._display(now, frame)
            self._last_seq = seq
        if HOLD in self._timers:
            actions.append(self._cancel(HOLD))
        return actions

    def _reset_attempts(self) -> None:
        """After a stable connection (or coming back online) the count starts over; a session's
        first attempt stays number 0."""
        self._attempt, self._failures, self._auth_rejections = min(self._attempt, 1), 0, 0
        self._backoff.reset()

    def _close(self, sock: int, code: int, reason: str) -> CloseSocket:
        self._forget(sock)
        if self._current == sock:
            self._current = None
        return CloseSocket(sock, code, reason)

    def _forget(self, sock: int):
        """Drop a socket from the live set (and its handler, when cleaned up); its opened_at or _GONE."""
        opened_at = self._live.pop(sock, _GONE)
        self._sock_tokens.pop(sock, None)
        if opened_at is not _GONE and self.fixes.listener_cleanup and sock in self._listeners:
            self._listeners.remove(sock)
        return opened_at

    def _set_timer(self, name: str, at: float) -> SetTimer:
        self._timers[name] = at
        return SetTimer(name, at)

    def _cancel(self, name: str) -> CancelTimer:
        self._timers.pop(name, None)
        return CancelTimer(name)

    def _frame(self, kind: str, **fields) -> dict:
        self._frame_ids += 1
        return {"v": PROTOCOL_VERSION, "type": kind, "id": f"{self.client_id}-{self._frame_ids}", **fields}

    def _send_user(self, now: float, sock: int, frame: dict, resend: bool = False) -> Send:
        if self.fixes.dedup_resume:
            self._unacked[frame["id"]] = frame
            if len(self._unacked) > OUTBOX_LIMIT:
                self._unacked.popitem(last=False)
        self._record(now, "resent" if resend else "sent", msg_id=frame["id"])
        return Send(sock, frame)

    def _record(self, now: float, kind: str, **fields) -> None:
        if self.fixes.client_metrics:
            self._metrics[kind] += 1
        if self._record_kinds is None or kind in self._record_kinds:
            self._records.append({"t": now, "client": self.client_id, "kind": kind, **fields})


_GONE = object()
