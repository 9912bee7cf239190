"""Measure the emulation's load generator for `stormbench validate` (`sim.calibration.Testbed`).

What the emulation adds to the machine besides the server: its client workers (`ClientDriver`s on
uvloop, with aiohttp and websockets) and its fault proxy (`stormbench proxy`), all on the
server's cores. Two bursts of `n` requests through a real proxy, each party's CPU read before and
after (less what it spends idle): token refreshes (`POST /auth/refresh`) and connects (handshake,
`welcome`, `resume`, as a fixed client opens). The client's and the proxy's CPU per request is the
testbed's cost of that kind of request; the server's is recorded beside it.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass

import aiohttp
import psutil
import websockets

from system.client.credentials import provision
from system.errors import UsageError

QUIET_S = 0.3  # idle CPU of each party is measured over this long before a burst


@dataclass(frozen=True)
class BurstCost:
    """CPU seconds per request of one burst, idle CPU taken out."""

    kind: str
    requests: int
    client_s: float
    proxy_s: float
    server_s: float
    wall_s: float

    @property
    def testbed_s(self) -> float:
        return self.client_s + self.proxy_s

    def to_json(self) -> dict:
        return {"requests": self.requests, "client_cpu_per_request_s": self.client_s,
                "proxy_cpu_per_request_s": self.proxy_s, "server_cpu_per_request_s": self.server_s,
                "wall_s": self.wall_s}


def _cpu(proc: psutil.Process) -> float:
    """CPU seconds of every thread of `proc`, to the nanosecond where Linux's schedstat has it (the
    clock-tick counts of cpu_times are 10 ms steps, a twentieth of a 200-request burst's CPU)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{proc.pid}/task"):
            with open(f"/proc/{proc.pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):  # not Linux, or a thread ended meanwhile
        t = proc.cpu_times()
        return t.user + t.system


def measure(ready: dict, n: int) -> tuple[BurstCost, BurstCost]:
    """Token-refresh and connect bursts of `n` against the server of `ready` (its ready line:
    ws_url, http_url, pid) through a fresh `stormbench proxy`."""
    from harness.emulate.topology import ProxyControl, endpoints_from_ready
    from harness.proxy.process import start_proxy

    import uvloop

    server = endpoints_from_ready(ready)
    with start_proxy() as proxy:
        control = ProxyControl(proxy.api_url, groups=1)
        control.create(server)
        via = control.group_endpoints(0, server)
        parties = (psutil.Process(), psutil.Process(proxy.process.pid), psutil.Process(int(ready["pid"])))
        return uvloop.run(_bursts(via, server, ready["admin_key"], n, parties))


async def _timed(kind: str, n: int, parties: tuple[psutil.Process, ...], burst) -> BurstCost:
    before = [_cpu(p) for p in parties]
    await asyncio.sleep(QUIET_S)
    idle = [(_cpu(p) - b) / QUIET_S for p, b in zip(parties, before)]
    start = [_cpu(p) for p in parties]
    t0 = time.perf_counter()
    await burst()
    wall = time.perf_counter() - t0
    client, proxy, server = (max(0.0, _cpu(p) - s - i * wall) / n for p, s, i in zip(parties, start, idle))
    return BurstCost(kind, n, client, proxy, server, wall)


async def _bursts(via, server, admin_key: str, n: int, parties: tuple[psutil.Process, ...]) -> tuple[BurstCost, BurstCost]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        logins = []
        users = [f"testbed-{i}" for i in range(n)]
        secrets = await provision(http, server.http_url, admin_key, users)
        for user in users:  # not measured: the refreshes need refresh tokens, the connects access tokens
            async with http.post(f"{server.http_url}/auth/token", json={"user": user, "secret": secrets[user]}) as r:
                if r.status != 200:
                    raise UsageError(f"{server.http_url}/auth/token answered HTTP {r.status}; is the server healthy?")
                logins.append(await r.json())
        fresh: list[str] = []

        async def refresh(body: dict) -> None:
            async with http.post(f"{via.http_url}/auth/refresh", json={"refresh_token": body["refresh_token"]}) as r:
                if r.status != 200:
                    raise UsageError(f"{via.http_url}/auth/refresh (through the proxy) answered HTTP {r.status}")
                fresh.append((await r.json())["access_token"])

        tokens = await _timed("token", n, parties, lambda: asyncio.gather(*(refresh(b) for b in logins)))
        socks = []

        async def connect(i: int) -> None:
            sock = await websockets.connect(f"{via.ws_url}/ws/chat/testbed-{i}?token={fresh[i]}", open_timeout=30,
                                            ping_interval=None)
            socks.append(sock)
            json.loads(await asyncio.wait_for(sock.recv(), timeout=30))  # welcome
            await sock.send(json.dumps({"v": "1.0", "type": "resume", "id": f"r{i}", "last_seq": 0}))

        try:
            connects = await _timed("connect", n, parties, lambda: asyncio.gather(*(connect(i) for i in range(n))))
        finally:
            await asyncio.gather(*(s.close() for s in socks), return_exceptions=True)
    return tokens, connects

