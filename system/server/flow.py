"""Bounded per-connection memory: what one client can make the server hold for it.

websockets' `broadcast` writes into a socket's send buffer without waiting, and its keepalive
ping waits for that buffer to drain before its pong timeout even starts, so a client that stops
reading would make the server hold every frame meant for it, and never be closed. The bounds:

- a send buffer above `max_send_buffer` bytes sheds the client with 1013 (it fell too far
  behind; a fixed client reconnects and resumes);
- a send buffer that has not shrunk for `send_timeout` seconds sheds it too (`SendWatchdog`:
  a client that does not read is closed within `send_timeout` plus one tick, whatever the
  keepalive is doing);
- `resume` replays in pages of `replay_page` messages, each page awaited until the buffer has
  drained, and `resume` frames are rate limited per connection (`system.server.ratelimit`).

Shedding can not use `close()`: that waits for the buffer to drain before its own timeout
starts. It queues the close frame behind the backlog and aborts the socket `abort_after`
seconds later unless the peer has read it all by then.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Iterable

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from system.wire import TRY_AGAIN_LATER


def backlog(ws: ServerConnection) -> int:
    """Bytes queued for this peer and not yet taken by the kernel."""
    transport = ws.transport
    return 0 if transport is None or transport.is_closing() else transport.get_write_buffer_size()


def shed(ws: ServerConnection, reason: str, abort_after: float, code: int = TRY_AGAIN_LATER) -> None:
    """Close `ws` with `code` without waiting on its backlog: the close frame goes out behind what
    is queued, and the socket is aborted `abort_after` seconds later if it is still open."""
    if ws.protocol.state is State.OPEN:
        ws.protocol.fail(code, reason)
        try:
            ws.send_data()
        except (OSError, RuntimeError):
            pass
    if ws.transport is not None and not ws.transport.is_closing():
        asyncio.get_running_loop().call_later(abort_after, ws.transport.abort)


def keep_up(sockets: Iterable[ServerConnection], limit: int, abort_after: float) -> list[ServerConnection]:
    """The sockets whose backlog is within `limit`; the others are shed with 1013."""
    kept = []
    for ws in sockets:
        if backlog(ws) > limit:
            shed(ws, "too far behind", abort_after)
        else:
            kept.append(ws)
    return kept


async def drained(ws: ServerConnection, timeout: float | None) -> bool:
    """Wait until the send buffer is below its low-water mark (websockets' flow control);
    False when that took longer than `timeout` or the connection ended meanwhile."""
    try:
        await asyncio.wait_for(ws.drain(), timeout)
    except (TimeoutError, OSError):
        return False
    return ws.protocol.state is State.OPEN


@dataclass
class _Progress:
    backlog: int
    since: float  # when the backlog was last empty or last shrank


class SendWatchdog:
    """Sheds a connection whose send buffer has neither emptied nor shrunk for `timeout` seconds.

    `tick(now, sockets)` is the whole policy (the caller passes the time); `run` drives it every
    quarter of the timeout on the event loop's clock."""

    def __init__(self, timeout: float, abort_after: float) -> None:
        self.timeout = timeout
        self.abort_after = abort_after
        self._progress: dict[ServerConnection, _Progress] = {}
        self.shed = 0

    def tick(self, now: float, sockets: Iterable[ServerConnection]) -> list[ServerConnection]:
        progress, stalled = {}, []
        for ws in sockets:
            size, seen = backlog(ws), self._progress.get(ws)
            if seen is None or size == 0 or size < seen.backlog:
                progress[ws] = _Progress(size, now)
                continue
            progress[ws] = _Progress(size, seen.since)
            if now - seen.since >= self.timeout:
                stalled.append(ws)
        self._progress = progress
        for ws in stalled:
            shed(ws, "not reading", self.abort_after)
            self._progress.pop(ws, None)
        self.shed += len(stalled)
        return stalled

    async def run(self, sockets) -> None:
        """`sockets()` returns the live connections; runs until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.timeout / 4)
            self.tick(loop.time(), sockets())
