"""Bounded per-connection memory, the asyncio side: the rules are `system.server.backpressure`'s.

websockets' `broadcast` writes into a socket's send buffer without waiting, and its keepalive
ping waits for that buffer to drain before its pong timeout even starts, so a client that stops
reading would make the server hold every frame meant for it, and never be closed. This module
feeds the sans-IO `SendBuffers` what the transports report (each socket's write-buffer size,
before every push and on every watchdog tick, on the loop's clock) and carries out its decisions.

Shedding can not use `close()`: that waits for the buffer to drain before its own timeout
starts. It queues the close frame behind the backlog and aborts the socket `abort_after`
seconds later unless the peer has read it all by then.
"""
from __future__ import annotations

import asyncio
from typing import Callable, Iterable

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from system.server.backpressure import SendBuffers
from system.server.handshake import Outcome
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


def keep_up(buffers: SendBuffers[ServerConnection], sockets: Iterable[ServerConnection], now: float,
            abort_after: float) -> list[ServerConnection]:
    """The sockets the core lets a frame be pushed to; the others are shed as it decides (1013)."""
    kept = []
    for ws in sockets:
        buffers.measured(ws, backlog(ws), now)
        outcome = buffers.before_send(ws)
        if outcome is None:
            kept.append(ws)
        else:
            _shed_as(ws, outcome, abort_after)
    return kept


def _shed_as(ws: ServerConnection, outcome: Outcome, abort_after: float) -> None:
    shed(ws, outcome.reason, abort_after, code=outcome.code or TRY_AGAIN_LATER)


async def drained(ws: ServerConnection, timeout: float | None) -> bool:
    """Wait until the send buffer is below its low-water mark (websockets' flow control);
    False when that took longer than `timeout` or the connection ended meanwhile."""
    try:
        await asyncio.wait_for(ws.drain(), timeout)
    except (TimeoutError, OSError):
        return False
    return ws.protocol.state is State.OPEN


class SendWatchdog:
    """Sheds the connections the core finds not reading (`SendBuffers.tick`): every quarter of
    its stall timeout, each live socket's buffer is measured and the core's decisions carried out,
    so a client that does not read is closed within the timeout plus one tick."""

    def __init__(self, buffers: SendBuffers[ServerConnection], abort_after: float) -> None:
        self.buffers = buffers
        self.abort_after = abort_after
        self.shed = 0

    def tick(self, now: float, sockets: Iterable[ServerConnection]) -> list[ServerConnection]:
        live = list(sockets)
        for ws in live:
            self.buffers.measured(ws, backlog(ws), now)
        decided = self.buffers.tick(now, live)
        for ws, outcome in decided:
            _shed_as(ws, outcome, self.abort_after)
        self.shed += len(decided)
        return [ws for ws, _ in decided]

    async def run(self, sockets: Callable[[], Iterable[ServerConnection]]) -> None:
        """`sockets()` returns the live connections; runs until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.buffers.limits.stall_timeout / 4)
            self.tick(loop.time(), sockets())
