"""Runs a ClientPolicy over real sockets: websockets for the chat, aiohttp for auth.

Many clients share one event loop and one aiohttp session. Time is a `Clock`:
the policy, its timers and its records all live on `(loop time - origin) * scale`,
so a caller either passes a config already scaled to wall seconds with scale 1,
or a config in scenario seconds with `scale = time_scale` (records then come out
in scenario seconds). Server durations (`expires_in`) are wall seconds and are
converted. Every client stops by itself at its deadline.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Callable, Coroutine
from urllib.parse import quote

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from system.client.policy import (
    CancelTimer, ClientPolicy, CloseSocket, Display, DropDuplicate, Event, FetchToken, FrameReceived,
    GiveUp, HandshakeFailed, NetworkOffline, NetworkOnline, OpenSocket, Send, SetTimer, SocketClosed,
    SocketOpened, Start, Stop, TimerFired, TokenResult, UserMessage,
)

log = logging.getLogger(__name__)

Record = dict
OnRecord = Callable[[Record], None]


@dataclass(frozen=True)
class Endpoints:
    ws_url: str    # e.g. ws://127.0.0.1:8765 (the chat path is added per conversation)
    http_url: str  # e.g. http://127.0.0.1:8080 (auth endpoints)

    def chat(self, conversation: str, token: str | None) -> str:
        return f"{self.ws_url.rstrip('/')}/ws/chat/{quote(conversation, safe='')}?token={quote(token or '', safe='')}"


@dataclass(frozen=True)
class Clock:
    """Driver time = (loop.time() - origin) * scale."""

    origin: float
    scale: float = 1.0

    @classmethod
    def start(cls, scale: float = 1.0) -> "Clock":
        if not scale > 0:
            raise ValueError(f"clock scale must be > 0, got {scale!r}")
        return cls(asyncio.get_running_loop().time(), scale)

    def now(self) -> float:
        return (asyncio.get_running_loop().time() - self.origin) * self.scale

    def loop_time(self, at: float) -> float:
        return self.origin + at / self.scale


@dataclass(frozen=True)
class DriverOptions:
    """Socket settings in wall seconds (the transport is not compressed, only the policy's time)."""

    open_timeout: float = 10.0
    close_timeout: float = 2.0
    http_timeout: float = 10.0
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    max_size: int = 2**20


class _Socket:
    __slots__ = ("sock", "task", "ws", "closing")

    def __init__(self, sock: int) -> None:
        self.sock = sock
        self.task: asyncio.Task | None = None
        self.ws: ClientConnection | None = None
        self.closing = False  # we asked for the close (CloseSocket)


class ClientDriver:
    """One client: executes the policy's actions and feeds it what happened."""

    def __init__(self, policy: ClientPolicy, endpoints: Endpoints, http: aiohttp.ClientSession, clock: Clock,
                 *, user: str | None = None, secret: str = "", on_record: OnRecord | None = None,
                 on_display: Callable[[dict], None] | None = None, options: DriverOptions = DriverOptions()) -> None:
        self.policy = policy
        self.endpoints = endpoints
        self.http = http
        self.clock = clock
        self.user = user or policy.client_id
        self.secret = secret  # the user's credential (system.client.credentials)
        self.options = options
        self._on_record = on_record
        self._on_display = on_display
        self._sockets: dict[int, _Socket] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task] = set()
        self._refresh_token: str | None = None
        self._online = True
        self._stop = asyncio.Event()
        self.errors: list[BaseException] = []
        self.give_ups = 0

    # ---- what the harness calls ----

    async def run(self, until: float) -> None:
        """From Start until `until` on the driver clock (or `request_stop()`), then Stop and close."""
        self.handle(Start(self.clock.now()))
        wall = max(0.0, self.clock.loop_time(until) - asyncio.get_running_loop().time())
        try:
            await asyncio.wait_for(self._stop.wait(), wall)
        except TimeoutError:
            pass
        await self.shutdown()
        if self.errors:
            raise self.errors[0]

    def request_stop(self) -> None:
        self._stop.set()

    def send_user_message(self, text: str) -> None:
        self.handle(UserMessage(self.clock.now(), text))

    def set_online(self, online: bool) -> None:
        """Emulate the device losing or regaining its network: offline aborts every socket
        (the policy sees 1006 by the network) and fails connects and token requests."""
        if online == self._online:
            return
        self._online = online
        if online:
            self.handle(NetworkOnline(self.clock.now()))
            return
        self.handle(NetworkOffline(self.clock.now()))
        self.drop_connections()

    def drop_connections(self) -> int:
        """A network drop: abort every open connection without a close frame (the policy sees
        1006 by the network). Returns how many were cut."""
        cut = [s.ws for s in self._sockets.values() if s.ws is not None]
        for ws in cut:
            ws.transport.abort()
        return len(cut)

    async def shutdown(self) -> None:
        self.handle(Stop(self.clock.now()))
        pending = [s.task for s in self._sockets.values() if s.task is not None]
        if pending:
            await asyncio.wait(pending, timeout=self.options.close_timeout + 1.0)
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.options.close_timeout + 1.0)

    # ---- the policy loop ----

    def handle(self, event: Event) -> None:
        actions = self.policy.handle(event)
        if self._on_record is not None:
            for record in self.policy.drain_records():
                self._on_record(record)
        else:
            self.policy.drain_records()
        for action in actions:
            self._execute(action)

    def _execute(self, action) -> None:
        if isinstance(action, Send):
            s = self._sockets.get(action.sock)
            if s is not None and s.ws is not None:
                self._spawn(self._send(s.ws, action.frame))  # tasks start in order, so frames keep it
        elif isinstance(action, SetTimer):
            self._cancel_timer(action.name)
            loop = asyncio.get_running_loop()
            self._timers[action.name] = loop.call_at(self.clock.loop_time(action.at), self._fire, action.name)
        elif isinstance(action, CancelTimer):
            self._cancel_timer(action.name)
        elif isinstance(action, OpenSocket):
            s = self._sockets[action.sock] = _Socket(action.sock)
            s.task = self._spawn(self._run_socket(s, action.token))
        elif isinstance(action, CloseSocket):
            self._close(action)
        elif isinstance(action, FetchToken):
            self._spawn(self._fetch_token(action.refresh))
        elif isinstance(action, Display):
            if self._on_display is not None:
                self._on_display(action.message)
        elif isinstance(action, GiveUp):
            self.give_ups += 1
        elif not isinstance(action, DropDuplicate):
            raise TypeError(f"ClientDriver: unknown action {action!r}")

    def _fire(self, name: str) -> None:
        self._timers.pop(name, None)
        try:
            self.handle(TimerFired(self.clock.now(), name))
        except Exception as exc:  # a loop callback: report through run(), not the loop's handler
            log.error("client %s: %r", self.policy.client_id, exc)
            self.errors.append(exc)
            self._stop.set()

    def _cancel_timer(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _spawn(self, coro: Coroutine) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("client %s: %r", self.policy.client_id, task.exception())
            self.errors.append(task.exception())
            self._stop.set()

    # ---- sockets ----

    async def _run_socket(self, s: _Socket, token: str | None) -> None:
        o = self.options
        if not self._online:
            self._forget(s)
            self.handle(HandshakeFailed(self.clock.now(), s.sock, None))
            return
        try:
            ws = await connect(self.endpoints.chat(self.policy.conversation, token), open_timeout=o.open_timeout,
                               close_timeout=o.close_timeout, ping_interval=o.ping_interval,
                               ping_timeout=o.ping_timeout, max_size=o.max_size)
        except InvalidStatus as exc:
            self._forget(s)
            self.handle(HandshakeFailed(self.clock.now(), s.sock, exc.response.status_code))
            return
        except (OSError, TimeoutError, WebSocketException):
            self._forget(s)
            self.handle(HandshakeFailed(self.clock.now(), s.sock, None))
            return
        s.ws = ws
        if self._online:
            self.handle(SocketOpened(self.clock.now(), s.sock))
        else:  # the network went while the handshake was finishing
            ws.transport.abort()
        try:
            async for raw in ws:
                try:
                    frame = json.loads(raw)
                except ValueError:
                    continue  # not ours to judge: the policy only acts on frames it knows
                if isinstance(frame, dict):
                    self.handle(FrameReceived(self.clock.now(), s.sock, frame))
        except ConnectionClosed:
            pass
        await ws.wait_closed()
        self._forget(s)
        code, reason, by = self._close_cause(ws, s.closing)
        self.handle(SocketClosed(self.clock.now(), s.sock, code, reason, by))

    @staticmethod
    def _close_cause(ws: ClientConnection, we_closed: bool) -> tuple[int, str, str]:
        """Who ended it and with what code, as a browser would report it: no close frame from
        the server (a drop, or our keepalive giving up) is 1006 by the network."""
        p = ws.protocol
        if we_closed:
            return (p.close_sent.code, p.close_sent.reason, "client") if p.close_sent else (1006, "", "client")
        if p.close_rcvd is not None:
            return p.close_rcvd.code, p.close_rcvd.reason, "server"
        return 1006, "", "network"

    def _close(self, action: CloseSocket) -> None:
        s = self._sockets.get(action.sock)
        if s is None:
            return
        s.closing = True
        if s.ws is None:
            if s.task is not None:
                s.task.cancel()  # still connecting: abandon the handshake
            self._forget(s)
        else:
            self._spawn(s.ws.close(action.code, action.reason))

    def _forget(self, s: _Socket) -> None:
        self._sockets.pop(s.sock, None)

    @staticmethod
    async def _send(ws: ClientConnection, frame: dict) -> None:
        try:
            await ws.send(json.dumps(frame, separators=(",", ":")))
        except ConnectionClosed:
            pass  # the reader reports the close

    # ---- auth ----

    async def _fetch_token(self, refresh: bool) -> None:
        base = self.endpoints.http_url.rstrip("/")
        if refresh and self._refresh_token:
            url, body = f"{base}/auth/refresh", {"refresh_token": self._refresh_token}
        else:
            url, body = f"{base}/auth/token", {"user": self.user, "secret": self.secret}
        status, payload = None, None
        if self._online:
            try:
                async with self.http.post(url, json=body,
                                          timeout=aiohttp.ClientTimeout(total=self.options.http_timeout)) as resp:
                    status = resp.status
                    if status == 200:
                        payload = await resp.json()
            except (aiohttp.ClientError, TimeoutError, ValueError):
                payload = None
        now = self.clock.now()
        if payload is None or "access_token" not in payload:
            self.handle(TokenResult(now, False, status))
            return
        self._refresh_token = payload.get("refresh_token", self._refresh_token)
        expires_in = payload.get("expires_in")
        expires_at = now + float(expires_in) * self.clock.scale if expires_in is not None else None
        self.handle(TokenResult(now, True, status, payload["access_token"], expires_at))
