"""Bytes through `stormbench proxy`: upstream's proxy, link and toxic tests (§3.2-§3.5) on raw sockets.

Timing bounds are loose on the slow side (a shared 2-core machine) and tight on
the fast side, where a missing toxic would show.
"""
from __future__ import annotations

import array
import re
import socket
import struct
import threading
import time

import pytest

from harness.proxy.process import start_proxy
from tests.proxy.conftest import Api, Upstream, connect, free_port, listening, recv_all, recv_exactly, wait_until

MESSAGE = b"hello world"


def send_and_close(proxy: dict, payload: bytes, parts: int = 1) -> None:
    with connect(proxy) as sock:
        step = -(-len(payload) // parts)
        for i in range(0, len(payload), step):
            sock.sendall(payload[i : i + step])


@pytest.mark.parametrize("payload, parts", [(MESSAGE, 1), (MESSAGE * 2, 2), (bytes(32768).hex().encode(), 1)])
def test_bytes_reach_upstream_intact(api: Api, upstream, payload: bytes, parts: int) -> None:  # 35, 37, 38
    proxy = api.create("p", upstream.address)
    send_and_close(proxy, payload, parts)
    with upstream.accept() as server:
        assert recv_all(server) == payload


def test_upstream_down_closes_client(api: Api) -> None:  # 36
    proxy = api.create("p", f"127.0.0.1:{free_port()}")
    with connect(proxy) as sock:
        started = time.perf_counter()
        assert sock.recv(1) == b""
        assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("upstream_text", ["http://devimages.apple.com", "nohost", "127.0.0.1:99999"])
def test_unusable_upstream_closes_each_client(api: Api, upstream_text: str) -> None:  # issue #217
    proxy = api.create("p", upstream_text)
    for _ in range(2):
        with connect(proxy) as sock:
            assert sock.recv(1) == b""


def test_echo_round_trip_both_ways(api: Api, echo) -> None:
    proxy = api.create("p", echo.address)
    with connect(proxy) as sock:
        for i in range(50):
            line = b"line %d\n" % i
            sock.sendall(line)
            assert recv_exactly(sock, len(line)) == line


def test_disable_and_delete_drop_live_connections(api: Api, echo) -> None:  # §1.3
    for drop in (lambda: api.post("/proxies/p", {"enabled": False}), lambda: api.delete("/proxies/p")):
        proxy = api.create("p", echo.address)
        with connect(proxy) as sock:
            sock.sendall(b"x")
            assert recv_exactly(sock, 1) == b"x"
            drop()
            assert sock.recv(1) == b""
        api.delete("/proxies/p")


def test_equivalent_listen_keeps_connections(api: Api, echo) -> None:  # 43
    proxy = api.create("p", echo.address)
    port = proxy["listen"].rsplit(":", 1)[1]
    with connect(proxy) as sock:
        sock.sendall(b"a")
        assert recv_exactly(sock, 1) == b"a"
        assert api.post("/proxies/p", {"listen": f"localhost:{port}"}).status_code == 200
        sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            sock.recv(1)
        sock.sendall(b"b")
        assert recv_exactly(sock, 1) == b"b"
    assert listening(proxy["listen"])


def test_moving_a_proxy_drops_connections(api: Api, echo) -> None:
    proxy = api.create("p", echo.address)
    with connect(proxy) as sock:
        sock.sendall(b"a")
        assert recv_exactly(sock, 1) == b"a"
        api.post("/proxies/p", {"listen": "127.0.0.1:0"})
        assert sock.recv(1) == b""


def test_reset_keeps_connections(api: Api, echo) -> None:  # 52
    proxy = api.create("p", echo.address)
    api.add_toxic("p", type="noop", stream="upstream")
    api.add_toxic("p", type="noop", stream="downstream")
    with connect(proxy) as sock:
        for _ in range(3):
            sock.sendall(MESSAGE)
            assert recv_exactly(sock, len(MESSAGE)) == MESSAGE
            assert api.post("/reset").status_code == 204


def test_toxics_toggled_while_echoing(api: Api, echo) -> None:  # 53
    proxy = api.create("p", echo.address)
    stop = threading.Event()

    def toggle() -> None:
        while not stop.is_set():
            for stream in ("upstream", "downstream"):
                api.post("/proxies/p/toxics", {"name": f"noop_{stream[:2]}", "type": "noop", "stream": stream})
            for stream in ("upstream", "downstream"):
                api.delete(f"/proxies/p/toxics/noop_{stream[:2]}")

    toggler = threading.Thread(target=toggle)
    toggler.start()
    try:
        with connect(proxy) as sock:
            for _ in range(100):
                sock.sendall(b"hello world\n")
                assert recv_exactly(sock, 12) == b"hello world\n"
    finally:
        stop.set()
        toggler.join()


def test_no_data_dropped_while_editing_the_chain(api: Api, upstream) -> None:  # 47
    proxy = api.create("p", upstream.address)
    payload = b"".join(struct.pack(">H", i) for i in range(65535))
    with connect(proxy) as client, upstream.accept() as server:
        received: list[bytes] = []
        reader = threading.Thread(target=lambda: received.append(recv_all(server)))
        reader.start()

        edited = threading.Semaphore(0)

        def write() -> None:
            for n, i in enumerate(range(0, len(payload), 1000)):
                client.sendall(payload[i : i + 1000])
                if n % 20 == 0:  # let an edit of the chain land mid-stream, however busy the machine
                    edited.acquire(timeout=10)

        writer = threading.Thread(target=write)
        writer.start()
        edits = 0
        while writer.is_alive():
            api.add_toxic("p", name="lat", type="latency", stream="upstream", attributes={"latency": 1000})
            api.add_toxic("p", name="slice", type="slicer", stream="upstream", attributes={"average_size": 7, "delay": 1})
            assert api.delete("/proxies/p/toxics/lat").status_code == 204
            assert api.delete("/proxies/p/toxics/slice").status_code == 204
            edits += 1
            edited.release()
        writer.join()
        client.shutdown(socket.SHUT_WR)
        reader.join(10)
    assert edits >= 3
    assert received == [payload]


WORDS = 1 << 18  # counters per 1 MiB write: a lost, repeated or swapped chunk shows
EDITS = [  # (name, type, stream, attributes): every kind of stage the fast path hands over to
    ("lat", "latency", "downstream", {"latency": 1}),
    ("slice", "slicer", "upstream", {"average_size": 4096, "size_variation": 1000, "delay": 0}),
    ("nop", "noop", "upstream", {}),
]


def counters(k: int) -> bytes:
    return array.array("I", range(k * WORDS, (k + 1) * WORDS)).tobytes()


def test_fast_path_switch_under_load_keeps_every_byte_in_order(api: Api, echo) -> None:
    """Toxics added to and removed from links streaming at full speed, both ways.

    With no toxic a link forwards each read straight to the other socket; adding
    one must route the very next chunk through the chain, and removing the last
    must flush the chain before direct writes resume. The writer streams until
    the edits are done, so every edit lands on a busy link.
    """
    proxy = api.create("p", echo.address)
    edited, written = threading.Event(), []
    with connect(proxy, timeout=10) as sock:
        received, expected = bytearray(), [float("inf")]  # known once the writer stops

        def read() -> None:  # no half-close through the proxy (as upstream): count bytes instead of EOF
            while len(received) < expected[0] and (data := sock.recv(1 << 20)):
                received.extend(data)

        def write() -> None:
            while True:
                last = edited.is_set() or len(written) == 1023
                if last:  # announced before the bytes go, so the reader never waits past them
                    expected[0] = (len(written) + 1) * WORDS * 4
                sock.sendall(counters(len(written)))
                written.append(True)
                if last:
                    return

        reader, writer = threading.Thread(target=read), threading.Thread(target=write)
        reader.start()
        writer.start()
        try:
            for _ in range(5):
                for name, kind, stream, attributes in EDITS:
                    api.add_toxic("p", name=name, type=kind, stream=stream, attributes=attributes)
                for name, *_ in EDITS:
                    assert api.delete(f"/proxies/p/toxics/{name}").status_code == 204
        finally:
            edited.set()
            writer.join(30)
            reader.join(30)
    assert 0 < len(written) < 1024, "the writer stopped before the edits were done"
    assert len(received) == len(written) * WORDS * 4
    assert received == b"".join(counters(k) for k in range(len(written)))


def test_toxicity_applies_and_updates_live(api: Api, upstream) -> None:  # 48
    proxy = api.create("p", upstream.address)
    api.add_toxic("p", type="timeout", toxicity=0, attributes={"timeout": 0})
    with connect(proxy) as client, upstream.accept() as server:
        server.sendall(b"x")
        assert recv_exactly(client, 1) == b"x"
        api.patch("/proxies/p/toxics/timeout_downstream", {"toxicity": 1, "attributes": {"timeout": 100}})
        started = time.perf_counter()
        assert client.recv(1) == b""
        assert 0.09 <= time.perf_counter() - started < 1.0


@pytest.mark.parametrize("up, down", [(100, 0), (0, 100), (100, 100), (0, 0)])
def test_latency_per_direction(api: Api, upstream, up: int, down: int) -> None:  # 55
    proxy = api.create("p", upstream.address)
    if up:
        api.add_toxic("p", type="latency", stream="upstream", attributes={"latency": up})
    if down:
        api.add_toxic("p", type="latency", stream="downstream", attributes={"latency": down})
    message = b"hello world " + b"a" * 32768 + b"\n"
    with connect(proxy) as client, upstream.accept() as server:
        client.sendall(b"!")  # the connection is established before timing starts
        assert recv_exactly(server, 1) == b"!"
        started = time.perf_counter()
        client.sendall(message)
        assert recv_exactly(server, len(message)) == message
        upstream_s = time.perf_counter() - started
        server.sendall(message)
        assert recv_exactly(client, len(message)) == message
        round_trip = time.perf_counter() - started
    assert up / 1000 - 0.002 <= upstream_s < up / 1000 + 0.15
    assert (up + down) / 1000 - 0.002 <= round_trip < (up + down) / 1000 + 0.3


def test_two_latency_toxics_stack(api: Api, upstream) -> None:  # 57
    proxy = api.create("p", upstream.address)
    for name in ("a", "b"):
        api.add_toxic("p", name=name, type="latency", stream="upstream", attributes={"latency": 150})
    with connect(proxy) as client, upstream.accept() as server:
        started = time.perf_counter()
        client.sendall(MESSAGE)
        assert recv_exactly(server, len(MESSAGE)) == MESSAGE
        assert 0.298 <= time.perf_counter() - started < 0.6


def test_latency_jitter_stays_in_range_and_in_order(api: Api, upstream) -> None:
    proxy = api.create("p", upstream.address)
    api.add_toxic("p", type="latency", stream="upstream", attributes={"latency": 50, "jitter": 40})
    with connect(proxy) as client, upstream.accept() as server:
        for i in range(20):
            started = time.perf_counter()
            client.sendall(b"%02d" % i)
            assert recv_exactly(server, 2) == b"%02d" % i
            assert 0.009 <= time.perf_counter() - started < 0.3


def test_bandwidth(api: Api, upstream) -> None:  # 59
    proxy = api.create("p", upstream.address)
    api.add_toxic("p", type="bandwidth", stream="upstream", attributes={"rate": 1000})
    payload = bytes(range(256)) * 1875  # 480 000 bytes
    with connect(proxy, timeout=5) as client, upstream.accept(timeout=5) as server:
        started = time.perf_counter()
        threading.Thread(target=lambda: (client.sendall(payload), client.shutdown(socket.SHUT_WR))).start()
        assert recv_all(server) == payload
        elapsed = time.perf_counter() - started
    assert 0.47 <= elapsed < 0.8, elapsed


def test_slicer_delivers_identical_data(api: Api, upstream) -> None:  # 65
    proxy = api.create("p", upstream.address)
    api.add_toxic("p", type="slicer", stream="upstream", attributes={"average_size": 1024, "size_variation": 512, "delay": 10})
    payload = bytes(range(256)) * 1875
    with connect(proxy, timeout=5) as client, upstream.accept(timeout=5) as server:
        threading.Thread(target=lambda: (client.sendall(payload), client.shutdown(socket.SHUT_WR))).start()
        assert recv_all(server) == payload


@pytest.mark.parametrize(
    "limit, writes, expected",
    [(100, [50], 50), (100, [100], 100), (100, [150], 100), (100, [25] * 4, 100), (100, [90, 20], 100), (0, [100], 0)],
)
def test_limit_data(api: Api, upstream, limit: int, writes: list[int], expected: int) -> None:  # 66
    proxy = api.create("p", upstream.address)
    api.add_toxic("p", type="limit_data", stream="upstream", attributes={"bytes": limit})
    payload = bytes(range(sum(writes) % 256 + 1)) * 2
    payload = (payload * (sum(writes) // len(payload) + 1))[: sum(writes)]
    with connect(proxy) as client, upstream.accept() as server:
        pos = 0
        for n in writes:
            client.sendall(payload[pos : pos + n])
            pos += n
            time.sleep(0.02)
        if expected < sum(writes) or limit == expected:
            got = recv_all(server)  # the proxy closes once the limit is reached
        else:
            client.shutdown(socket.SHUT_WR)
            got = recv_all(server)
        assert got == payload[:expected]
        if expected >= limit:
            assert client.recv(1) == b""


def test_slow_close_delays_the_close(api: Api, upstream) -> None:  # 2.4.4
    proxy = api.create("p", upstream.address)
    api.add_toxic("p", type="slow_close", stream="upstream", attributes={"delay": 200})
    with connect(proxy) as client, upstream.accept() as server:
        client.sendall(MESSAGE)
        assert recv_exactly(server, len(MESSAGE)) == MESSAGE
        started = time.perf_counter()
        client.close()
        assert server.recv(1) == b""
        assert 0.195 <= time.perf_counter() - started < 0.7


def test_timeout_closes_after_silence(api: Api, upstream) -> None:  # 2.4.5
    proxy = api.create("p", upstream.address)
    api.add_toxic("p", type="timeout", stream="upstream", attributes={"timeout": 150})
    with connect(proxy) as client, upstream.accept() as server:
        started = time.perf_counter()
        client.sendall(b"dropped")
        assert server.recv(1) == b""  # nothing was forwarded, then the link closed
        assert 0.14 <= time.perf_counter() - started < 0.8
        assert client.recv(1) == b""


def test_timeout_removal_does_not_hang_and_closes(api: Api, upstream) -> None:  # 60, 61
    proxy = api.create("p", upstream.address)
    with connect(proxy) as client, upstream.accept() as server:
        client.sendall(b"ping")
        assert recv_exactly(server, 4) == b"ping"
        server.sendall(b"pong")
        assert recv_exactly(client, 4) == b"pong"
        api.add_toxic("p", name="might_block", type="latency", stream="upstream", attributes={"latency": 10})
        api.add_toxic("p", name="to_delete", type="timeout", stream="upstream", attributes={"timeout": 0})
        for _ in range(3):
            client.sendall(b"hello")
            time.sleep(0.05)
        started = time.perf_counter()
        assert api.delete("/proxies/p/toxics/might_block").status_code == 204
        assert time.perf_counter() - started < 1.0
        assert api.delete("/proxies/p/toxics/to_delete").status_code == 204
        assert client.recv(1) == b""
        assert server.recv(1) == b""
        assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("stream, timeout", [("upstream", 0), ("upstream", 100), ("downstream", 100)])
def test_reset_peer(api: Api, echo, stream: str, timeout: int) -> None:  # 62, 63, 64
    proxy = api.create("p", echo.address)
    api.add_toxic("p", type="reset_peer", stream=stream, attributes={"timeout": timeout})
    with connect(proxy) as client:
        started = time.perf_counter()
        client.sendall(b"reset toxic payload\n")
        with pytest.raises(ConnectionResetError):
            while client.recv(100):
                pass
        elapsed = time.perf_counter() - started
        assert client.recv(1) == b""
    assert timeout / 1000 - 0.005 <= elapsed < timeout / 1000 + 0.4


def test_metrics_count_bytes_per_direction(api: Api, echo) -> None:  # 68
    proxy = api.create("p", echo.address)
    with connect(proxy) as sock:
        sock.sendall(b"hello")
        assert recv_exactly(sock, 5) == b"hello"
    labels = f'listener="{proxy["listen"]}",proxy="p",upstream="{echo.address}"'

    def counted() -> bool:
        text = api.get("/metrics").text
        return all(
            re.search(rf'toxiproxy_proxy_{kind}_bytes_total\{{direction="{d}",{re.escape(labels)}\}} 5\.0', text)
            for kind in ("received", "sent")
            for d in ("upstream", "downstream")
        )

    wait_until(counted, what="byte counters of 5 in both directions")


def _hit(sock: socket.socket) -> str:
    sock.sendall(b"x")
    return "1" if sock.recv(1) == b"" else "0"


def _toxic_patterns(seed: int, connections: int = 24) -> tuple[str, str, str]:
    """Which connections a toxicity-0.5 toxic hit, as bit strings: connections made while it
    existed, then live connections when it is added, and again when it is added anew."""
    toxic = {"type": "limit_data", "stream": "upstream", "toxicity": 0.5, "attributes": {"bytes": 0}}
    with start_proxy(seed=seed) as proc:
        api = Api(proc.api_url)
        server = Upstream(echo=True)
        try:
            proxy = api.create("seeded", server.address)
            api.add_toxic("seeded", **toxic)
            made = ""
            for _ in range(connections):
                with connect(proxy) as sock:
                    made += _hit(sock)
            api.delete("/proxies/seeded/toxics/limit_data_upstream")
            live = []
            for _ in range(2):
                socks = [connect(proxy) for _ in range(connections)]
                api.add_toxic("seeded", **toxic)
                live.append("".join(_hit(sock) for sock in socks))
                api.delete("/proxies/seeded/toxics/limit_data_upstream")
                for sock in socks:
                    sock.close()
            return made, live[0], live[1]
        finally:
            server.close()


def test_seed_makes_toxicity_draws_reproducible(proxy_process) -> None:
    first, again, other = _toxic_patterns(11), _toxic_patterns(11), _toxic_patterns(12)
    assert first == again
    assert other != first
    for pattern in first:
        assert "0" in pattern and "1" in pattern  # the draw really is a draw
    assert first[1] != first[2]  # a toxic added again hits a fresh subset of connections


@pytest.mark.parametrize("toxic", [None, {"type": "latency", "stream": "upstream", "attributes": {"latency": 60000}}])
def test_back_pressure_bounds_what_the_proxy_takes(api: Api, upstream, toxic) -> None:
    """An upstream that never reads must stall the client, not grow the proxy's memory."""
    proxy = api.create("p", upstream.address)
    if toxic:
        api.add_toxic("p", **toxic)
    chunk = b"z" * 65536
    with connect(proxy) as client, upstream.accept():
        client.setblocking(False)
        sent, stalled_since = 0, None
        while sent < 400 << 20:
            try:
                sent += client.send(chunk)
                stalled_since = None
            except BlockingIOError:
                stalled_since = stalled_since or time.perf_counter()
                if time.perf_counter() - stalled_since > 0.5:
                    break
                time.sleep(0.01)
    limit = (32 + 48) << 20 if toxic else 48 << 20  # chain bound + kernel socket buffers
    assert stalled_since is not None and sent < limit, sent


def test_latency_close_race(api: Api, echo) -> None:  # 56
    proxy = api.create("p", echo.address)
    for _ in range(50):
        api.post("/proxies/p/toxics", {"type": "latency", "stream": "upstream", "attributes": {"latency": 10}})
        with connect(proxy) as sock:
            sock.sendall(b"hello")
        api.delete("/proxies/p/toxics/latency_upstream")
    with connect(proxy) as sock:  # still serving, nothing leaked into the chain
        sock.sendall(b"after")
        assert recv_exactly(sock, 5) == b"after"
    assert api.get("/proxies/p/toxics").json() == []
    wait_until(lambda: 'toxiproxy_proxy_connections{proxy="p"} 0.0' in api.get("/metrics").text, what="all connections closed")


def test_retarget_upstream_keeps_the_listen_port(api: Api, upstream) -> None:
    """What the harness does after a server restart: POST a new upstream, same port."""
    old = Upstream(echo=True)
    try:
        proxy = api.create("p", old.address)
        with connect(proxy) as sock:
            sock.sendall(b"a")
            assert recv_exactly(sock, 1) == b"a"
            shown = api.post("/proxies/p", {"upstream": upstream.address}).json()
            assert (shown["listen"], shown["upstream"], shown["enabled"]) == (proxy["listen"], upstream.address, True)
            assert sock.recv(1) == b""  # connections to the old upstream were dropped
        with connect(proxy) as sock, upstream.accept() as server:
            sock.sendall(b"new")
            assert recv_exactly(server, 3) == b"new"
    finally:
        old.close()
