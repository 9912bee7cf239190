"""The WebSocket-aware toxics against a real `websockets` server and client through the proxy."""
from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.proxy.conftest import Api, connect as tcp_connect, recv_exactly


class WsServer:
    """Streams numbered messages on demand and records the close code it received."""

    def __init__(self) -> None:
        self.closes: asyncio.Queue[int | None] = asyncio.Queue()
        self.connections: list[ServerConnection] = []

    async def handler(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        try:
            async for message in ws:
                if message.startswith("stream "):
                    for i in range(int(message.split()[1])):
                        await ws.send(f"m{i:05d}" + "x" * 200)
                        if i % 50 == 49:
                            await asyncio.sleep(0.001)  # a steady stream, not one burst
                else:
                    await ws.send(message)
        except ConnectionClosed:
            pass
        await self.closes.put(ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else None)


@pytest.fixture
async def ws_server() -> AsyncIterator[tuple[WsServer, str]]:
    app = WsServer()
    async with serve(app.handler, "127.0.0.1", 0, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        yield app, f"127.0.0.1:{port}"


async def call(api: Api, method: str, path: str, body: Any = None) -> Any:
    r = await asyncio.to_thread(api.request, method, path, body)
    assert r.status_code < 300, r.text
    return r.json() if r.content else None


def ws_url(proxy: dict[str, Any]) -> str:
    return f"ws://{proxy['listen']}/chat"


async def open_client(proxy: dict[str, Any], **kw: Any) -> ClientConnection:
    return await connect(ws_url(proxy), proxy=None, ping_interval=None, open_timeout=5, **kw)


async def test_ws_close_on_a_live_connection(api: Api, ws_server) -> None:
    _, address = ws_server
    proxy = await call(api, "POST", "/proxies", {"name": "ws", "listen": "127.0.0.1:0", "upstream": address})
    async with await open_client(proxy) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await call(api, "POST", "/proxies/ws/toxics", {"type": "ws_close", "attributes": {"code": 4401, "reason": "token expired"}})
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 2)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "token expired")


async def test_ws_close_cuts_at_a_frame_boundary_under_traffic(api: Api, ws_server) -> None:
    _, address = ws_server
    proxy = await call(api, "POST", "/proxies", {"name": "ws", "listen": "127.0.0.1:0", "upstream": address})
    async with await open_client(proxy) as ws:
        await ws.send("stream 20000")
        received = [await ws.recv()]
        await call(api, "POST", "/proxies/ws/toxics", {"type": "ws_close", "attributes": {"code": 1012, "reason": "restart"}})
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                received.append(await asyncio.wait_for(ws.recv(), 2))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012  # not 1002: no torn frame
    assert received == [f"m{i:05d}" + "x" * 200 for i in range(len(received))]
    assert len(received) < 20000


async def test_ws_close_waits_for_the_upgrade_and_its_delay(api: Api, ws_server) -> None:
    _, address = ws_server
    proxy = await call(api, "POST", "/proxies", {"name": "ws", "listen": "127.0.0.1:0", "upstream": address})
    await call(api, "POST", "/proxies/ws/toxics", {"type": "ws_close", "attributes": {"code": 4401, "delay": 150}})
    started = time.perf_counter()
    async with await open_client(proxy) as ws:  # the handshake itself is untouched
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 2)
    assert closed.value.rcvd.code == 4401
    assert 0.145 <= time.perf_counter() - started < 1.0


async def test_ws_close_upstream_reaches_the_server_masked(api: Api, ws_server) -> None:
    app, address = ws_server
    proxy = await call(api, "POST", "/proxies", {"name": "ws", "listen": "127.0.0.1:0", "upstream": address})
    async with await open_client(proxy) as ws:
        await ws.send("hi")
        assert await ws.recv() == "hi"
        await call(api, "POST", "/proxies/ws/toxics", {"type": "ws_close", "stream": "upstream", "attributes": {"code": 4000}})
        assert await asyncio.wait_for(app.closes.get(), 2) == 4000  # a server rejects unmasked client frames


async def test_ws_toxics_leave_plain_tcp_alone(api: Api, echo) -> None:
    proxy = await call(api, "POST", "/proxies", {"name": "tcp", "listen": "127.0.0.1:0", "upstream": echo.address})
    for kind in ("ws_close", "ws_drop_pings", "ws_hold"):
        await call(api, "POST", "/proxies/tcp/toxics", {"type": kind, "name": kind})
    with tcp_connect(proxy) as sock:
        for i in range(5):
            line = b"not a websocket %d\n" % i
            sock.sendall(line)
            assert recv_exactly(sock, len(line)) == line


async def test_ws_drop_pings(api: Api, ws_server) -> None:
    _, address = ws_server
    proxy = await call(api, "POST", "/proxies", {"name": "ws", "listen": "127.0.0.1:0", "upstream": address})
    async with await open_client(proxy) as ws:
        await asyncio.wait_for(await ws.ping(), 2)  # pongs come back without the toxic
        await call(api, "POST", "/proxies/ws/toxics", {"type": "ws_drop_pings", "stream": "upstream"})
        waiter = await ws.ping()
        await ws.send("still flowing")
        assert await asyncio.wait_for(ws.recv(), 2) == "still flowing"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(waiter, 0.3)


async def test_ws_drop_pings_leaves_only_the_heartbeat_to_notice(api: Api) -> None:
    closed_by_server: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()
        closed_by_server.set_result(ws.protocol.close_sent.code if ws.protocol.close_sent else 1006)

    async with serve(handler, "127.0.0.1", 0, ping_interval=0.2, ping_timeout=0.2) as server:
        address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        proxy = await call(api, "POST", "/proxies", {"name": "ws", "listen": "127.0.0.1:0", "upstream": address})
        await call(api, "POST", "/proxies/ws/toxics", {"type": "ws_drop_pings", "stream": "downstream"})
        started = time.perf_counter()
        async with await open_client(proxy):
            code = await asyncio.wait_for(closed_by_server, 3)
    assert code == 1011  # keepalive ping timeout
    assert time.perf_counter() - started >= 0.35


async def test_ws_hold_holds_frames_until_removed(api: Api, ws_server) -> None:
    _, address = ws_server
    proxy = await call(api, "POST", "/proxies", {"name": "ws", "listen": "127.0.0.1:0", "upstream": address})
    async with await open_client(proxy) as ws:
        await call(api, "POST", "/proxies/ws/toxics", {"type": "ws_hold"})
        await ws.send("stream 50")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
        await call(api, "DELETE", "/proxies/ws/toxics/ws_hold_downstream")
        received = [await asyncio.wait_for(ws.recv(), 2) for _ in range(50)]
    assert received == [f"m{i:05d}" + "x" * 200 for i in range(50)]


async def test_ws_close_1006_drops_without_a_close_frame(api: Api, ws_server) -> None:
    _, address = ws_server
    proxy = await call(api, "POST", "/proxies", {"name": "ws", "listen": "127.0.0.1:0", "upstream": address})
    async with await open_client(proxy) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await call(api, "POST", "/proxies/ws/toxics", {"type": "ws_close", "attributes": {"code": 1006}})
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 2)
    assert closed.value.rcvd is None  # no close frame arrived: an abnormal closure
    assert ws.close_code == 1006
