"""The fault proxy against a direct connection, measured in the same run.

Prints throughput (bulk 12 000-byte writes, as upstream's BenchmarkProxyBandwidth),
the added p50/p99 round-trip latency of a small echo with no toxic, and how many
concurrent connections the proxy holds (each checked with a round trip).
Goals (issue 5): >= 0.8x direct throughput, <= 0.2 ms added p50, >= 8000 connections.
The proxy is a separate process, so on a loaded machine its throughput ratio
says as much about scheduling as about the proxy: its CPU cost per GB, also
printed, is the load-independent figure.
"""
from __future__ import annotations

import asyncio
import os
import resource
import socket
import statistics
import threading
import time

import psutil
import requests

from harness.proxy.process import start_proxy

CHUNK = b"hello world " * 1000  # 12 000 bytes
BULK_BYTES = 200 * 1024 * 1024
ROUND_TRIPS = 3000
ROUNDS = 3
CONNECTIONS = 8000
UA = {"User-Agent": "stormbench-bench"}


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class ThreadServer:
    """Loopback server on a free port: `sink` discards, `echo` echoes; one thread per connection."""

    def __init__(self, mode: str) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.mode = mode
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = bytearray(1 << 20)
        with conn:
            while n := conn.recv_into(buf):
                if self.mode == "echo":
                    conn.sendall(buf[:n])

    def close(self) -> None:
        self.sock.close()


def _connect(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def throughput(address: str) -> float:
    """MB/s of bulk writes until the sink has read them all (closing waits for the drain)."""
    with _connect(address) as sock:
        started = time.perf_counter()
        for _ in range(BULK_BYTES // len(CHUNK)):
            sock.sendall(CHUNK)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)  # EOF once the far end has read everything and closed
        return BULK_BYTES / (time.perf_counter() - started) / 1e6


def round_trips(address: str) -> list[float]:
    with _connect(address) as sock:
        out = []
        for _ in range(ROUND_TRIPS):
            started = time.perf_counter()
            sock.sendall(b"ping\n")
            got = b""
            while len(got) < 5:
                got += sock.recv(5 - len(got))
            out.append(time.perf_counter() - started)
        return out


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1]


def create_proxy(api: str, name: str, upstream: str) -> str:
    body = {"name": name, "listen": "127.0.0.1:0", "upstream": upstream}
    return requests.post(f"{api}/proxies", json=body, headers=UA, timeout=5).json()["listen"]


def open_connections_gauge(api: str, proxy: str) -> int:
    for line in requests.get(f"{api}/metrics", headers=UA, timeout=10).text.splitlines():
        if line.startswith(f'toxiproxy_proxy_connections{{proxy="{proxy}"}}'):
            return int(float(line.split()[-1]))
    return -1


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


class _Probe(asyncio.Protocol):
    """A client connection that sends one byte and notes when it comes back."""

    def __init__(self) -> None:
        self.answered = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(b"x")  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.answered.done():
            self.answered.set_result(True)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answered.done():
            self.answered.set_result(False)


async def hold_connections(api: str, count: int) -> tuple[int, int]:
    """Open `count` connections through a new proxy to an echo server and keep them all open.

    Returns (connections that answered a round trip, the proxy's own open-connection gauge).
    """
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Echo, "127.0.0.1", 0, backlog=4096)
    upstream = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    listen = (await asyncio.to_thread(create_proxy, api, "hold", upstream))
    host, _, port = listen.rpartition(":")
    probes: list[_Probe] = []
    sem = asyncio.Semaphore(200)

    async def one() -> bool:
        async with sem:
            try:
                _, probe = await asyncio.wait_for(loop.create_connection(_Probe, host, int(port)), 10)
                probes.append(probe)
                return await asyncio.wait_for(probe.answered, 10)
            except (OSError, asyncio.TimeoutError):
                return False

    try:
        answered = sum(await asyncio.gather(*(one() for _ in range(count))))
        gauge = await asyncio.to_thread(open_connections_gauge, api, "hold")
    finally:
        for probe in probes:
            probe.transport.close()
        server.close()
    return answered, gauge


def _run(coro):  # uvloop when installed, like the proxy itself
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def main() -> None:
    limit = raise_nofile()
    sink, echo = ThreadServer("sink"), ThreadServer("echo")
    with start_proxy() as proc:
        api = proc.api_url
        sink_proxy, echo_proxy = create_proxy(api, "sink", sink.address), create_proxy(api, "echo", echo.address)

        proxy_cpu = psutil.Process(proc.process.pid)
        direct_tp, proxy_tp, cpu_s = [], [], 0.0
        for _ in range(ROUNDS):  # alternate so both see the same machine load
            direct_tp.append(throughput(sink.address))
            before = sum(proxy_cpu.cpu_times()[:2])
            proxy_tp.append(throughput(sink_proxy))
            cpu_s += sum(proxy_cpu.cpu_times()[:2]) - before
        d_tp, p_tp = max(direct_tp), max(proxy_tp)
        ceiling = ROUNDS * BULK_BYTES / cpu_s / 1e6 if cpu_s else float("inf")
        print(f"throughput  direct {d_tp:8.0f} MB/s   proxy {p_tp:8.0f} MB/s   ratio {p_tp / d_tp:.2f}x  (goal >= 0.80x)")
        print(f"            proxy CPU {cpu_s * 1e3 / (ROUNDS * BULK_BYTES / 1e9):.0f} ms per GB forwarded "
              f"= {ceiling:.0f} MB/s per core; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

        direct_rt, proxy_rt = round_trips(echo.address), round_trips(echo_proxy)
        direct_rt, proxy_rt = direct_rt + round_trips(echo.address), proxy_rt + round_trips(echo_proxy)
        d50, p50 = statistics.median(direct_rt) * 1e3, statistics.median(proxy_rt) * 1e3
        d99, p99 = quantile(direct_rt, 0.99) * 1e3, quantile(proxy_rt, 0.99) * 1e3
        print(f"round trip  direct p50 {d50:.3f} ms  proxy p50 {p50:.3f} ms  added p50 {p50 - d50:.3f} ms  (goal <= 0.200 ms)")
        print(f"            direct p99 {d99:.3f} ms  proxy p99 {p99:.3f} ms  ratio p50 {p50 / d50:.2f}x")

        count = min(CONNECTIONS, (limit - 200) // 2)
        started = time.perf_counter()
        held, gauge = _run(hold_connections(api, count))
        took = time.perf_counter() - started
        print(f"concurrent  {held} of {count} connections answered through the proxy, {gauge} open at once "
              f"per its /metrics ({took:.1f} s; goal >= 8000; RLIMIT_NOFILE {limit})")
    sink.close()
    echo.close()


if __name__ == "__main__":
    main()
