"""The server's WebSocket heartbeat: a ping every `ping_interval`, and a peer whose pong is
`ping_timeout` late is closed with `wire.KEEPALIVE_TIMEOUT` (1001 going away).

websockets' own keepalive closes such a peer with 1011 (internal error), which says the server
failed; a client that stops answering is the client's or its network's doing. The close goes out
as a shed (`system.server.flow.shed`): the close frame is queued and the socket aborted
`abort_after` seconds later if the peer does not answer it, so a silent peer is gone within
`ping_interval + ping_timeout + abort_after`. Every ping sent is counted
(`ws_messages_total{direction="out", type="keepalive_ping"}`), so a run shows the heartbeat's rate.
"""
from __future__ import annotations

import asyncio

from prometheus_client import Counter
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from system.server.flow import shed
from system.wire import KEEPALIVE_TIMEOUT


def keepalive_connection(pings: Counter, abort_after: float,
                         base: type[ServerConnection] = ServerConnection) -> type[ServerConnection]:
    """A `base` subclass whose keepalive counts its pings into `pings` and closes a silent peer
    with 1001."""

    class Keepalive(base):  # type: ignore[valid-type,misc]
        async def keepalive(self) -> None:
            latency = 0.0
            try:
                while True:
                    await asyncio.sleep(self.ping_interval - latency)
                    pong = await self.ping()
                    pings.inc()
                    if self.ping_timeout is None:
                        continue
                    try:
                        async with asyncio.timeout(self.ping_timeout):
                            latency = await pong
                    except TimeoutError:
                        shed(self, "keepalive ping timeout", abort_after, code=KEEPALIVE_TIMEOUT)
                        return
            except ConnectionClosed:
                return  # closed meanwhile: whoever closed it reports it

    return Keepalive
