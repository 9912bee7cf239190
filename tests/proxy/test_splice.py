"""Bulk streams forwarded by kernel splice threads, and handed back to the event loop losing nothing.

The splicer itself is driven on real loopback sockets in this process; the proxy
as a black box (`stormbench proxy` subprocess) shows which links it splices
through its `toxiproxy_proxy_spliced_links` gauge.
"""
from __future__ import annotations

import array
import asyncio
import random
import re
import socket
import threading
import time
from typing import Any, Iterator

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from harness.proxy import splice
from tests.proxy.conftest import Api, Upstream, connect, wait_until

pytestmark = pytest.mark.skipif(not splice.AVAILABLE, reason="os.splice needs Linux")

BLOCK_WORDS = 1 << 16  # counters per 256 KiB block: a lost, repeated or swapped piece shows


def block(k: int) -> bytes:
    return array.array("I", range(k * BLOCK_WORDS, (k + 1) * BLOCK_WORDS)).tobytes()


def stream(blocks: int) -> bytes:
    return b"".join(block(k) for k in range(blocks))


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    return a, b


def read_until_eof(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    out = bytearray()
    while data := sock.recv(1 << 20):
        out += data
    return bytes(out)


# -- the splicer on its own -----------------------------------------------------------------------


@pytest.fixture
def pairs() -> Iterator[tuple[socket.socket, socket.socket, socket.socket, socket.socket]]:
    """(feeder, src, dst, drain): feeder -> src is what the splicer reads, dst -> drain what it writes."""
    feeder, src = tcp_pair()
    dst, drain = tcp_pair()
    src.setblocking(False)
    dst.setblocking(False)
    yield feeder, src, dst, drain
    for sock in (feeder, src, dst, drain):
        sock.close()


async def test_stop_hands_back_what_the_pipe_held(pairs) -> None:
    """Stopped while the destination does not read: written + handed back + still unread = sent, in order."""
    feeder, src, dst, drain = pairs
    payload = stream(64)  # 16 MiB: more than the socket buffers and the pipe hold, so the splicer stalls
    sender = threading.Thread(target=lambda: (feeder.sendall(payload), feeder.shutdown(socket.SHUT_WR)))
    sender.start()
    splicer = splice.Splicer(src.fileno(), dst.fileno(), asyncio.get_running_loop(), lambda reason: None)
    deadline, last = time.monotonic() + 10, -1
    while splicer.received != last or splicer.received == 0:  # until it stalls on the full destination
        assert time.monotonic() < deadline, "the splicer never stalled"
        last = splicer.received
        await asyncio.sleep(0.05)
    live = splice.Splicer.live
    left = splicer.stop()
    assert splice.Splicer.live == live - 1
    assert len(left) == splicer.received - splicer.sent > 0
    dst.close()
    written = await asyncio.to_thread(read_until_eof, drain)
    src.setblocking(True)
    unread = await asyncio.to_thread(read_until_eof, src)
    sender.join(10)
    assert len(written) == splicer.sent
    assert written + left + unread == payload


async def test_source_eof_is_reported_after_every_byte(pairs) -> None:
    feeder, src, dst, drain = pairs
    ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    splicer = splice.Splicer(src.fileno(), dst.fileno(), asyncio.get_running_loop(), ended.set_result)
    payload = stream(8)
    feeder.sendall(payload)
    feeder.close()
    assert await asyncio.wait_for(ended, 10) == splice.SOURCE_EOF
    assert splicer.stop() == b""
    dst.close()
    assert await asyncio.to_thread(read_until_eof, drain) == payload
    assert splicer.received == splicer.sent == len(payload)


async def test_a_dead_destination_is_reported(pairs) -> None:
    feeder, src, dst, drain = pairs
    ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    splicer = splice.Splicer(src.fileno(), dst.fileno(), asyncio.get_running_loop(), ended.set_result)
    drain.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    drain.close()  # RST: the next writes fail
    stop = threading.Event()

    def feed() -> None:
        try:
            while not stop.is_set():
                feeder.sendall(block(0))
        except OSError:
            pass

    sender = threading.Thread(target=feed)
    sender.start()
    try:
        assert await asyncio.wait_for(ended, 10) == splice.DESTINATION_ERROR
    finally:
        stop.set()
        splicer.stop()
        feeder.shutdown(socket.SHUT_RDWR)
        sender.join(10)


# -- through the proxy ----------------------------------------------------------------------------


def spliced_links(api: Api, proxy: str) -> int:
    match = re.search(rf'^toxiproxy_proxy_spliced_links\{{proxy="{proxy}"\}} (\S+)$', api.get("/metrics").text, re.M)
    assert match, "no spliced-links gauge"
    return int(float(match.group(1)))


def byte_counts(api: Api, proxy: str, direction: str) -> tuple[int, int]:
    text = api.get("/metrics").text
    found = [re.search(rf'^toxiproxy_proxy_{kind}_bytes_total\{{direction="{direction}",[^}}]*proxy="{proxy}"[^}}]*\}} (\S+)$',
                       text, re.M) for kind in ("received", "sent")]
    assert all(found), "no byte counters"
    return int(float(found[0].group(1))), int(float(found[1].group(1)))  # type: ignore[union-attr]


class Stream:
    """Writes numbered blocks into `out` until told to stop (at most `limit`); reads them off `inp`."""

    def __init__(self, out: socket.socket, inp: socket.socket, limit: int = 4096) -> None:
        self.out, self.inp, self.limit = out, inp, limit
        self.sent, self.received = 0, bytearray()
        self.stop = threading.Event()
        self.eof = threading.Event()
        self.threads = [threading.Thread(target=self._write), threading.Thread(target=self._read)]
        for t in self.threads:
            t.start()

    def _write(self) -> None:
        try:
            while not self.stop.is_set() and self.sent < self.limit:
                self.out.sendall(block(self.sent))
                self.sent += 1
        except OSError:
            pass
        finally:
            try:
                self.out.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _read(self) -> None:
        self.inp.settimeout(30)
        try:
            while data := self.inp.recv(1 << 20):
                self.received += data
        except OSError:
            pass
        self.eof.set()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


@pytest.mark.parametrize("direction", ["upstream", "downstream"])
def test_toxics_added_to_a_spliced_link_lose_and_reorder_nothing(api: Api, upstream: Upstream, direction: str) -> None:
    proxy = api.create("p", upstream.address)
    with connect(proxy, timeout=10) as client, upstream.accept(timeout=5) as server:
        writer, reader = (client, server) if direction == "upstream" else (server, client)
        flow = Stream(writer, reader)
        try:
            for attributes in ({"latency": 5}, {"latency": 0, "jitter": 3}):
                wait_until(lambda: spliced_links(api, "p") == 1, timeout=10, what="the bulk link to be spliced")
                counted = byte_counts(api, "p", direction)
                wait_until(lambda: min(byte_counts(api, "p", direction)) > max(counted) + (4 << 20), timeout=10,
                           what="byte counters moving while the link is spliced")
                api.add_toxic("p", name="lag", type="latency", stream=direction, attributes=attributes)
                assert spliced_links(api, "p") == 0  # handed back before the API answered
                mark = len(flow.received)
                wait_until(lambda: len(flow.received) > mark + (4 << 20), timeout=10, what="bytes through the toxic")
                assert api.delete("/proxies/p/toxics/lag").status_code == 204
            wait_until(lambda: spliced_links(api, "p") == 1, timeout=10, what="splicing to resume")
        finally:
            flow.join()
        assert flow.eof.is_set() and 0 < flow.sent < flow.limit
        assert len(flow.received) == flow.sent * BLOCK_WORDS * 4
        assert flow.received == stream(flow.sent)
    total = flow.sent * BLOCK_WORDS * 4
    wait_until(lambda: byte_counts(api, "p", direction) == (total, total), timeout=5, what=f"byte counters of {total}")
    assert spliced_links(api, "p") == 0  # the thread ended with the stream


def test_a_toxic_added_to_a_spliced_link_takes_effect(api: Api, upstream: Upstream) -> None:
    """limit_data closes the connection: without it the writer would stream on until its limit."""
    proxy = api.create("p", upstream.address)
    with connect(proxy, timeout=10) as client, upstream.accept(timeout=5) as server:
        flow = Stream(client, server)
        try:
            wait_until(lambda: spliced_links(api, "p") == 1, timeout=10, what="the bulk link to be spliced")
            api.add_toxic("p", name="cap", type="limit_data", stream="upstream", attributes={"bytes": 1 << 20})
            assert flow.eof.wait(10), "the upstream never saw the connection close"
        finally:
            flow.join()
        assert flow.sent < flow.limit
        assert flow.received == stream(flow.sent)[: len(flow.received)]


@pytest.mark.parametrize("how", ["reset_peer", "delete"])
def test_a_spliced_connection_is_dropped_promptly(api: Api, upstream: Upstream, how: str) -> None:
    proxy = api.create("p", upstream.address)
    with connect(proxy, timeout=10) as client, upstream.accept(timeout=5) as server:
        flow = Stream(client, server)
        try:
            wait_until(lambda: spliced_links(api, "p") == 1, timeout=10, what="the bulk link to be spliced")
            started = time.monotonic()
            if how == "reset_peer":
                api.add_toxic("p", name="rst", type="reset_peer", stream="upstream", attributes={"timeout": 0})
            else:
                assert api.delete("/proxies/p").status_code == 204
            assert flow.eof.wait(5), "the upstream side was not closed"
            assert time.monotonic() - started < 5
        finally:
            flow.join()
        assert flow.received == stream(flow.sent)[: len(flow.received)]


# -- WebSocket streams stay on the event loop ------------------------------------------------------


async def test_big_websocket_frames_stay_framed(api: Api) -> None:
    """1 MiB frames read in bulk are not spliced: a ws_close added mid-stream still cuts at a frame boundary.

    Uncompressed and incompressible, so the 400 MiB cannot all sit in buffers before the toxic is added.
    """
    frame = random.Random(5).randbytes(1 << 20)

    async def handler(ws: ServerConnection) -> None:
        try:
            for _ in range(400):
                await ws.send(frame)
        except ConnectionClosed:
            pass

    async with serve(handler, "127.0.0.1", 0, ping_interval=None, max_size=None, compression=None) as server:
        address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        proxy = await asyncio.to_thread(api.create, "ws", address)
        async with ws_connect(f"ws://{proxy['listen']}/", proxy=None, ping_interval=None, max_size=None,
                              compression=None) as ws:
            received = 0
            for _ in range(32):
                assert await asyncio.wait_for(ws.recv(), 10) == frame
                received += 1
            assert await asyncio.to_thread(spliced_links, api, "ws") == 0
            body: dict[str, Any] = {"type": "ws_close", "attributes": {"code": 4401, "reason": "expired"}}
            r = await asyncio.to_thread(api.post, "/proxies/ws/toxics", body)
            assert r.status_code == 200, r.text
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    assert await asyncio.wait_for(ws.recv(), 10) == frame
                    received += 1
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401  # not 1002: no torn frame
    assert received < 400
