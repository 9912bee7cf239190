"""Open-file limits: each WebSocket costs the server one descriptor, and running out stalls
every listener at once (`accept()` fails with EMFILE, `/healthz` included). So the server:

- raises its soft RLIMIT_NOFILE to the hard limit at start (`raise_soft_limit`);
- unless told otherwise, admits at most `default_max_connections(limit)` sessions and sheds the
  rest with 1013 after their handshake (that costs a round trip, and a descriptor meanwhile);
- stops accepting while `ceiling(limit)` WebSocket connections are open and starts again as soon
  as one closes (`guarded_connection` + `AcceptGate`): a connect beyond waits in the kernel's
  listen queue (or its SYN is retried), and when it is taken it gets its handshake and, past
  `max_connections`, a 1013, never a TCP reset. asyncio takes at most `accept_backlog(limit)`
  connections per round and counts one when its protocol is connected, up to two rounds later,
  so at most `ceiling + 2 * backlog` are ever open: `FIXED_HEADROOM` descriptors stay for the HTTP
  side, SQLite and the agent, and a flood never reaches EMFILE.
"""
from __future__ import annotations

import asyncio
import resource

from websockets.asyncio.server import ServerConnection

FIXED_HEADROOM = 64      # listeners, SQLite (db, WAL, shm), logs, the agent's files, stdio, HTTP clients
HEADROOM_SHARE = 0.25    # of the rest: handshakes in flight and shed connections closing at a flood's peak


def raise_soft_limit() -> int:
    """Raise the soft open-files limit to the hard one; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def open_files_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def default_max_connections(limit: int) -> int:
    """Sessions a server with `limit` descriptors admits before shedding with 1013."""
    return max(1, int((limit - FIXED_HEADROOM) * (1 - HEADROOM_SHARE)))


def accept_backlog(limit: int) -> int:
    """The listen backlog, which is also how many connections one accept round takes before any
    of them is counted: asyncio's default of 100, less when descriptors are few."""
    return max(8, min(100, (limit - FIXED_HEADROOM) // 16))


def ceiling(limit: int) -> int:
    """Open WebSocket connections (sessions, handshakes, sheds) at which accepting pauses."""
    return max(1, limit - FIXED_HEADROOM - 2 * accept_backlog(limit))


class AcceptGate:
    """Pauses and resumes accepting on an asyncio server's listening sockets.

    asyncio has no public pause: pausing removes the listening sockets' readers (which also
    cancels an accept round already queued), resuming re-arms asyncio's own accept loop through
    `Server._start_serving`, the very call asyncio schedules itself when accept() hits EMFILE."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None  # set once listening
        self.paused = False
        self.pauses = 0

    def pause(self) -> None:
        if self.paused or self.server is None or not self.server.is_serving():
            return
        self.paused = True
        self.pauses += 1
        loop = self.server.get_loop()
        for sock in self.server.sockets:
            loop.remove_reader(sock.fileno())

    def resume(self) -> None:
        if not self.paused:
            return
        self.paused = False
        if self.server is not None and self.server.is_serving():  # not closed meanwhile
            self.server._serving = False
            self.server._start_serving()


def guarded_connection(most: int, gate: AcceptGate,
                       base: type[ServerConnection] = ServerConnection) -> type[ServerConnection]:
    """A `base` subclass that pauses `gate` while `most` connections are open."""

    class Guarded(base):  # type: ignore[valid-type,misc]
        open = 0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            Guarded.open += 1
            if Guarded.open >= most:
                gate.pause()
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            Guarded.open -= 1
            if Guarded.open < most:
                gate.resume()
            super().connection_lost(exc)

    return Guarded
