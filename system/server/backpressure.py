"""What a client's unread frames may cost the server, sans-IO: when it is shed, and how a `resume` pages.

A client that stops reading makes the server hold every frame meant for it. The bounds, decided
here from events (bytes queued, bytes drained or the buffer's size as measured, the clock) and
returned as decisions (`Outcome`s of `system.server.handshake`):

- a send buffer above `max_backlog` bytes when a frame is about to be pushed sheds the client
  with 1013 "too far behind" (it fell too far behind; a fixed client reconnects and resumes);
- a send buffer that has neither emptied nor shrunk for `stall_timeout` seconds sheds it with 1013
  "not reading", whatever the keepalive is doing;
- a `resume` replays in pages of `replay_page` messages, each awaited until the buffer has drained;
  a page that has not drained within `stall_timeout` ends the replay, incomplete.

The asyncio server drives it (`system.server.flow`) with what its transports report: a socket's
write-buffer size, read before each push and on each watchdog tick, on the loop's clock. The model
(`sim.server`) does not: its sockets hold no bytes. A model client reads every frame the moment it
arrives, and a bandwidth or slicer fault is a delay on the path, not a queue. So no model client
can fall behind or stall, and a replay is one page that drains at once. Driving these rules there
would decide nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Hashable, Iterable, TypeVar

from system import wire
from system.server.handshake import Outcome

K = TypeVar("K", bound=Hashable)

TOO_FAR_BEHIND = Outcome("close", code=wire.TRY_AGAIN_LATER, reason="too far behind")
NOT_READING = Outcome("close", code=wire.TRY_AGAIN_LATER, reason="not reading")


@dataclass(frozen=True)
class SendLimits:
    """The server's bounds (`ServerConfig.max_send_buffer`, `.send_timeout`, `.replay_page`)."""

    max_backlog: int = 1 << 20
    stall_timeout: float = 30.0
    replay_page: int = 100


@dataclass
class _Buffer:
    backlog: int
    since: float  # when the backlog was last empty or last shrank


class SendBuffers(Generic[K]):
    """Every connection's send buffer, as its events tell it; `K` names a connection."""

    def __init__(self, limits: SendLimits) -> None:
        self.limits = limits
        self._buffers: dict[K, _Buffer] = {}

    def _buffer(self, conn: K, now: float) -> _Buffer:
        found = self._buffers.get(conn)
        if found is None:
            found = self._buffers[conn] = _Buffer(0, now)
        return found

    def backlog(self, conn: K) -> int:
        found = self._buffers.get(conn)
        return 0 if found is None else found.backlog

    def queued(self, conn: K, nbytes: int, now: float) -> None:
        """`nbytes` more are waiting for the peer (onto an empty buffer: the stall clock starts now)."""
        b = self._buffer(conn, now)
        if b.backlog == 0:
            b.since = now
        b.backlog += nbytes

    def drained(self, conn: K, nbytes: int, now: float) -> None:
        """The peer took `nbytes`: progress."""
        self.measured(conn, max(0, self.backlog(conn) - nbytes), now)

    def measured(self, conn: K, size: int, now: float) -> None:
        """The buffer holds `size` bytes now (a transport's own count): empty or shrunk is progress."""
        b = self._buffer(conn, now)
        if size == 0 or size < b.backlog:
            b.since = now
        b.backlog = size

    def before_send(self, conn: K) -> Outcome | None:
        """Before a frame is pushed: the shed of a client too far behind, else None (send it)."""
        return TOO_FAR_BEHIND if self.backlog(conn) > self.limits.max_backlog else None

    def tick(self, now: float, live: Iterable[K] | None = None) -> list[tuple[K, Outcome]]:
        """The connections to shed for not reading, each forgotten; `live` (when given) is every
        open connection, and the others are forgotten too."""
        if live is not None:
            keep = set(live)
            self._buffers = {k: b for k, b in self._buffers.items() if k in keep}
        stalled = [k for k, b in self._buffers.items()
                   if b.backlog > 0 and now - b.since >= self.limits.stall_timeout]
        for k in stalled:
            del self._buffers[k]
        return [(k, NOT_READING) for k in stalled]

    def closed(self, conn: K) -> None:
        self._buffers.pop(conn, None)

    def replay(self, last_seq: int) -> "ReplayPages":
        """The pages of a `resume {last_seq}`."""
        return ReplayPages(last_seq, self.limits.replay_page, self.limits.stall_timeout)


@dataclass
class ReplayPages:
    """One `resume`'s replay: read `size` messages after `cursor` from the log, send them, wait up
    to `drain_timeout` for the buffer to drain, and go on (`page_done`) until the log has no more.
    Messages logged meanwhile are picked up by the next page: the replay reads the log, not a copy."""

    cursor: int
    size: int
    drain_timeout: float
    replayed: int = 0
    complete: bool = True

    def page_done(self, last_seq: int, count: int, drained: bool) -> bool:
        """A page of `count` messages up to `last_seq` was sent, and `drained` in time or not:
        whether to read the next page (not after one the client did not take in time)."""
        self.cursor, self.replayed = last_seq, self.replayed + count
        self.complete = drained
        return drained
