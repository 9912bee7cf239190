"""The fault proxy against a direct connection, measured in the same run.

Prints throughput (bulk 12 000-byte writes, as upstream's BenchmarkProxyBandwidth),
the added p50/p99 round-trip latency of a small echo with no toxic, and how many
concurrent connections the proxy holds (each checked with a round trip).
Goals (issue 5): >= 0.8x direct throughput, <= 0.2 ms added p50, >= 8000 connections.

Fairness: the direct and proxied transfers use the same sender and sink (threads
of this process, same write and read sizes, default socket buffers, TCP_NODELAY
everywhere as the proxy's own sockets have it), each path gets one unmeasured
warm-up transfer, and the rounds rotate which path goes first. The proxy is a
process of its own, so with it in the path three CPU-bound parties share the
machine's cores; on 2 cores shared with other work the raw ratio says as much
about scheduling as about the proxy. Hence the load-independent figures: CPU per
GB of each party (sender, sink, forwarder), and two reference forwarders, each
its own process, measured in the same run: a bare uvloop forwarder (a few lines,
no API, no toxics: the floor for an asyncio forwarder, so `proxy / bare` is the
proxy's own overhead) and a kernel zero-copy forwarder (`os.splice` through a
1 MiB pipe, one blocking thread per direction: no byte enters user space), the
floor for any user-space forwarder. The proxy itself hands a bulk stream that
is not WebSocket to splice threads (harness/proxy/splice.py), so on the bytes
load it should sit near the splice reference; WebSocket frames are tracked in
user space, so there it pays the frame walk on top of the bare forwarder. The
`bound` line turns the CPU figures into the cores a path needs for 0.8x direct.
"""
from __future__ import annotations

import asyncio
import fcntl
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from harness.proxy.process import start_proxy

CHUNK = b"hello world " * 1000  # 12 000 bytes
BULK_BYTES = 1024 * 1024 * 1024  # long enough (~0.3-1 s) that start-up and scheduling hiccups average out
# chat-sized WebSocket traffic: masked 125-byte text frames after an upgrade request, which the proxy
# tracks frame by frame on its no-toxic path (so a WebSocket toxic can be added at a frame boundary)
WS_UPGRADE = b"GET /ws/chat/bench HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
WS_CHUNK = (bytes([0x81, 0x80 | 125]) + b"\x01\x02\x03\x04" + b"x" * 125) * 92  # 12 052 bytes
WS_BYTES = 256 * 1024 * 1024
ROUND_TRIPS = 3000
ROUNDS = 3
WARM_UP = 64 * 1024 * 1024  # bytes sent once per path before the measured rounds
SPLICE_PIPE = 1 << 20  # the splice forwarder's pipe size (F_SETPIPE_SZ; /proc/sys/fs/pipe-max-size allows 1 MiB)
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


@dataclass(frozen=True)
class Load:
    """What a bulk transfer sends: `total` bytes in writes of `chunk`, after `preamble`."""

    title: str
    chunk: bytes
    total: int
    preamble: bytes = b""


BYTES = Load("bytes", CHUNK, BULK_BYTES)
WEBSOCKET = Load("ws frames", WS_CHUNK, WS_BYTES, WS_UPGRADE)


def throughput(address: str, load: Load) -> tuple[float, float]:
    """MB/s of bulk writes until the sink has read them all (closing waits for the drain), and the
    CPU seconds the sending thread (the caller) spent."""
    with _connect(address) as sock:
        sock.settimeout(60)
        cpu, started = time.thread_time(), time.perf_counter()
        sock.sendall(load.preamble)
        for _ in range(load.total // len(load.chunk)):
            sock.sendall(load.chunk)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)  # EOF once the far end has read everything and closed
        return load.total / (time.perf_counter() - started) / 1e6, time.thread_time() - cpu


@dataclass
class Transfer:
    """One bulk transfer: its throughput and the CPU each party spent per GB (ms)."""

    mb_s: float
    sender_ms_gb: float
    sink_ms_gb: float  # the rest of this process: the sink's thread
    user_ms_gb: float = 0.0  # the forwarder's process, if any
    sys_ms_gb: float = 0.0
    others_cores: float = 0.0  # CPUs busy with work outside these parties (other processes) meanwhile

    @property
    def forwarder_ms_gb(self) -> float:
        return self.user_ms_gb + self.sys_ms_gb

    @property
    def total_ms_gb(self) -> float:
        return self.sender_ms_gb + self.sink_ms_gb + self.forwarder_ms_gb


def measure(address: str, forwarder: psutil.Process | None, load: Load) -> Transfer:
    me = psutil.Process()
    machine, ends, fwd = psutil.cpu_times(), me.cpu_times(), forwarder.cpu_times() if forwarder else None
    started = time.perf_counter()
    mb_s, sender = throughput(address, load)
    gb, wall = load.total / 1e9, time.perf_counter() - started
    ends_after, machine_after = me.cpu_times(), psutil.cpu_times()
    both = ends_after.user + ends_after.system - ends.user - ends.system
    out = Transfer(mb_s, sender * 1e3 / gb, (both - sender) * 1e3 / gb)
    if forwarder and fwd:
        after = forwarder.cpu_times()
        out.user_ms_gb, out.sys_ms_gb = (after.user - fwd.user) * 1e3 / gb, (after.system - fwd.system) * 1e3 / gb
    busy = sum(machine_after) - machine_after.idle - machine_after.iowait - (sum(machine) - machine.idle - machine.iowait)
    out.others_cores = max(0.0, busy - out.total_ms_gb * gb / 1e3) / wall
    return out


def compare(paths: list[tuple[str, psutil.Process | None]], load: Load) -> list[list[Transfer]]:
    """ROUNDS transfers per path, interleaved in rotated order: all see the same load, none always goes
    first; each path is warmed up once (connection set-up, autotuned buffers, caches) beforehand."""
    for address, _ in paths:
        throughput(address, Load(load.title, load.chunk, WARM_UP, load.preamble))
    runs: list[list[Transfer]] = [[] for _ in paths]
    order = list(range(len(paths)))
    for r in range(ROUNDS):
        for i in order[r % len(order) :] + order[: r % len(order)]:
            runs[i].append(measure(*paths[i], load))
    return runs


class _Forward(asyncio.Protocol):
    """The bare forwarder's socket: write what is read to the peer, pause reading while it is full."""

    def __init__(self, upstream: tuple[str, int] | None, peer: "_Forward | None" = None) -> None:
        self.upstream, self.peer, self.early = upstream, peer, bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=1 << 20)  # type: ignore[attr-defined]
        if self.peer is None:
            transport.pause_reading()  # type: ignore[attr-defined]
            asyncio.get_running_loop().create_task(self._dial())

    async def _dial(self) -> None:
        _, self.peer = await asyncio.get_running_loop().create_connection(lambda: _Forward(None, self), *self.upstream)
        self.peer.transport.write(bytes(self.early))
        self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.peer is None or not hasattr(self.peer, "transport"):
            self.early += data
        else:
            self.peer.transport.write(data)

    def pause_writing(self) -> None:
        self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and hasattr(self.peer, "transport"):
            self.peer.transport.close()


def bare_forwarder(upstream: str) -> None:
    """`python -c` entry: forward 127.0.0.1:<free port> to `upstream`; prints the port, runs until killed."""

    async def serve() -> None:
        host, _, port = upstream.rpartition(":")
        server = await asyncio.get_running_loop().create_server(lambda: _Forward((host, int(port))), "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

    _run(serve())


def _splice_pump(src: socket.socket, dst: socket.socket) -> None:
    """Move src's bytes to dst through a pipe, never into user space (the GIL is released in splice)."""
    out, into = os.pipe()
    fcntl.fcntl(into, fcntl.F_SETPIPE_SZ, SPLICE_PIPE)
    flags = os.SPLICE_F_MOVE | os.SPLICE_F_MORE
    try:
        while n := os.splice(src.fileno(), into, SPLICE_PIPE, flags=flags):
            while n:
                n -= os.splice(out, dst.fileno(), n, flags=flags)
    except OSError:
        pass
    finally:
        os.close(out)
        os.close(into)
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def splice_forwarder(upstream: str) -> None:
    """`python -c` entry: the zero-copy reference forwarder, one blocking thread per direction."""
    host, _, port = upstream.rpartition(":")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(listener.getsockname()[1], flush=True)
    while True:
        client, _ = listener.accept()
        server = socket.create_connection((host, int(port)))
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_splice_pump, args=(client, server), daemon=True).start()
        threading.Thread(target=_splice_pump, args=(server, client), daemon=True).start()


FORWARDERS = {"bare uvloop": bare_forwarder, "splice": splice_forwarder}


def start_forwarder(kind: str, upstream: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start a reference forwarder of FORWARDERS in a process of its own; returns it and its address."""
    code = f"from tests.bench.bench_proxy import {FORWARDERS[kind].__name__} as f; f({upstream!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=Path(__file__).parents[2])
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()
    if not port.isdigit():
        proc.kill()
        raise RuntimeError(f"{kind} forwarder did not start (exit {proc.wait()})")
    return proc, f"127.0.0.1:{int(port)}"


def span(values: list[float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(min(values))}-{fmt.format(max(values))} (median {fmt.format(statistics.median(values))})"


def report_throughput(load: Load, names: list[str], runs: list[list[Transfer]]) -> None:
    """One line per path (the first is direct, the second the proxy), then the proxy's overhead and the bound."""
    direct = runs[0]

    def med(values) -> float:
        return statistics.median(list(values))

    print(f"{load.title:<11} {ROUNDS} rounds of {load.total >> 20} MiB in {len(load.chunk)}-byte writes; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"            {'path':<12} {'MB/s':<24} {'ratio to direct':<26} CPU ms/GB: sender  sink  forwarder (user+kernel)  total")
    for name, path in zip(names, runs):
        ratios = [r.mb_s / d.mb_s for r, d in zip(path, direct)]  # each against the direct run of the same round
        fwd = "-" if path is direct else (f"{med(r.forwarder_ms_gb for r in path):.0f} "
                                          f"({med(r.user_ms_gb for r in path):.0f}+{med(r.sys_ms_gb for r in path):.0f})")
        goal = "  (goal >= 0.80x)" if path is runs[1] else ""
        print(f"            {name:<12} {span([r.mb_s for r in path]):<24} {'1' if path is direct else span(ratios, '{:.2f}'):<26} "
              f"{med(r.sender_ms_gb for r in path):16.0f} {med(r.sink_ms_gb for r in path):5.0f}  {fwd:<24} "
              f"{med(r.total_ms_gb for r in path):5.0f}{goal}")
    proxied, bare = runs[1], runs[2]
    d_gb_s = med(r.mb_s for r in direct) / 1e3
    p_cpu, b_cpu = med(r.forwarder_ms_gb for r in proxied), med(r.forwarder_ms_gb for r in bare)
    own_core = 1e6 / p_cpu  # MB/s the proxy could forward with one core to itself (ms per GB -> MB/s)
    print(f"  overhead  proxy / bare forwarder CPU per GB {p_cpu / b_cpu:.2f}x; with a core of its own the proxy forwards "
          f"{own_core:.0f} MB/s = {own_core / (d_gb_s * 1e3):.2f}x direct (>= 1: its own code is not the bottleneck)")
    d_cpu = med(r.total_ms_gb for r in direct)
    cores = os.cpu_count() or 1
    left = cores - med(r.others_cores for r in direct + proxied)
    equal = ", ".join(f"{name} {d_cpu / med(r.total_ms_gb for r in path):.2f}x" for name, path in zip(names[1:], runs[1:]))
    needs = ", ".join(f"{name} {0.8 * d_gb_s * med(r.total_ms_gb for r in path) / 1e3:.2f}" for name, path in zip(names[1:], runs[1:]))
    print(f"  bound     at equal CPU a path moves (direct CPU/GB / its CPU/GB): {equal}; direct used "
          f"{d_gb_s * d_cpu / 1e3:.2f} cores, 0.8x direct needs (0.8 x direct GB/s x CPU s/GB): {needs} cores; "
          f"other processes left {left:.2f} of {cores} cores")


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

        print("fairness    the same sender and sink threads of this process serve every path; the proxy and the reference\n"
              "            forwarders each run in a process of their own, so with one in the path three CPU-bound processes\n"
              "            share the cores: on 2 CPUs shared with other work the raw ratio is bounded by scheduling; CPU per GB\n"
              "            is the load-independent figure")
        names, paths = ["direct", "proxy"], [(sink.address, None), (sink_proxy, psutil.Process(proc.process.pid))]
        forwarders = []
        try:
            for kind in FORWARDERS:
                fwd, address = start_forwarder(kind, sink.address)
                forwarders.append(fwd)
                names.append(kind)
                paths.append((address, psutil.Process(fwd.pid)))
            for load in (BYTES, WEBSOCKET):
                report_throughput(load, names, compare(paths, load))
        finally:
            for fwd in forwarders:
                fwd.kill()
                fwd.wait()

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
