"""Open-file limits: each WebSocket costs the server one descriptor, and running out stalls
every listener at once (`accept()` fails with EMFILE, `/healthz` included). So the server:

- raises its soft RLIMIT_NOFILE to the hard limit at start (`raise_soft_limit`);
- unless told otherwise, admits at most `default_max_connections(limit)` sessions and sheds the
  rest with 1013 after their handshake (that costs a round trip, and a descriptor meanwhile);
- refuses TCP connections outright beyond `ceiling(limit)` open ones (`guarded_connection`: the
  socket is reset before any handshake), and accepts at most `accept_backlog(limit)` at a time,
  so a flood never takes the descriptors the HTTP side, SQLite and the agent need.
"""
from __future__ import annotations

import asyncio
import resource
from typing import Callable

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
    of them can be refused: asyncio's default of 100, less when descriptors are few."""
    return max(8, min(100, (limit - FIXED_HEADROOM) // 8))


def ceiling(limit: int) -> int:
    """Open WebSocket connections (sessions and handshakes) beyond which new ones are reset."""
    return max(1, limit - FIXED_HEADROOM - accept_backlog(limit))


def guarded_connection(most: int, on_refused: Callable[[], None],
                       base: type[ServerConnection] = ServerConnection) -> type[ServerConnection]:
    """A `base` subclass that resets a new TCP connection when `most` are already open."""

    class Guarded(base):  # type: ignore[valid-type,misc]
        open = 0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.refused = Guarded.open >= most
            if self.refused:
                on_refused()
                transport.abort()
                return
            Guarded.open += 1
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.refused:
                return
            Guarded.open -= 1
            super().connection_lost(exc)

    return Guarded
