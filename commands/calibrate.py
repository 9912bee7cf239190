"""`stormbench calibrate [--out FILE]`: measure this machine's server and write the model's parameters.

Starts `stormbench serve` as a child on free loopback ports and measures, with real sockets:
- the handshake service time (sequential WebSocket handshakes, nothing queued) and its capacity
  (a burst of concurrent handshakes: throughput × mean service time = busy servers);
- the token service latency (`POST /auth/token`) and the agent's reply latency (a user message
  to its assistant_message);
- the server time a token refresh holds (a burst of concurrent `POST /auth/refresh`: 1 / throughput),
  which is what a mass expiry's herd queues for before it reconnects;
- the server time a close holds (a forced expiry of a burst of live sessions: the spread of their
  closes over their number), which spreads the same herd's closes;
- the restart downtime (spawn to ready line of a second server process);
- the emulation's load generator (`testbed`, used by `validate` only): the CPU a client and the
  proxy spend per token refresh and per connect, in bursts of --burst through a real proxy, and the
  cores they share with the server (`commands.calibrate_testbed`).
The result is a `sim.calibration.Calibration` JSON file; `stormbench run --engine simulate`
records in meta.json which file it used.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

import aiohttp
import numpy as np
import websockets

from system.client.credentials import provision
from system.errors import UsageError

HELP = "measure this machine's server for the model"
SEARCH = "any 2-bedroom flats to rent in Camden under 2000 a month?"  # routed to the real-estate agent


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="FILE", default="calibration.json",
                        help="where to write the calibration JSON (default: ./calibration.json)")
    parser.add_argument("--samples", type=int, default=200, metavar="N",
                        help="sequential handshakes, token requests and agent replies to time (default 200)")
    parser.add_argument("--burst", type=int, default=200, metavar="N",
                        help="concurrent handshakes for the capacity measurement (default 200)")
    parser.add_argument("--agent", default="supervisor", choices=("echo", "supervisor"),
                        help="agent backend of the measured server (default supervisor: the real-estate agent "
                             "answers a property search; echo measures the server alone)")


async def _token(session: aiohttp.ClientSession, http: str, user: str, secret: str) -> tuple[dict, float]:
    t0 = time.perf_counter()
    async with session.post(f"{http}/auth/token", json={"user": user, "secret": secret}) as r:
        if r.status != 200:
            raise UsageError(f"{http}/auth/token answered HTTP {r.status}; is the server healthy?")
        body = await r.json()
    return body, time.perf_counter() - t0


async def _refresh_burst(session: aiohttp.ClientSession, http: str, refresh_tokens: list[str]) -> float:
    """Seconds for the server to rotate every refresh token, all asked at once."""
    async def one(refresh: str) -> None:
        async with session.post(f"{http}/auth/refresh", json={"refresh_token": refresh}) as r:
            if r.status != 200:
                raise UsageError(f"{http}/auth/refresh answered HTTP {r.status}; is the server healthy?")

    t0 = time.perf_counter()
    await asyncio.gather(*(one(t) for t in refresh_tokens))
    return time.perf_counter() - t0


async def _close_burst(session: aiohttp.ClientSession, ready: dict, tokens: list[str], n: int) -> tuple[int, float]:
    """Seconds between the first and the last of `n` closes the server makes at once (a forced
    expiry of every live session, as a mass revocation does): the server's time per close."""
    ws, http = ready["ws_url"], ready["http_url"]
    socks = []
    try:
        for i in range(n):
            sock = await websockets.connect(f"{ws}/ws/chat/close-{i}?token={tokens[i % len(tokens)]}", open_timeout=30)
            await asyncio.wait_for(sock.recv(), timeout=10)  # welcome: the session is live
            socks.append(sock)
        loop = asyncio.get_running_loop()

        async def closed(sock) -> float:
            await asyncio.wait_for(sock.wait_closed(), timeout=30)
            return loop.time()

        waits = [asyncio.create_task(closed(sock)) for sock in socks]
        async with session.post(f"{http}/admin/expire-tokens", json={},
                                headers={"X-Admin-Key": ready["admin_key"]}) as r:
            if r.status != 200:
                raise UsageError(f"{http}/admin/expire-tokens answered HTTP {r.status}; is the server healthy?")
        ends = sorted(await asyncio.gather(*waits))
    finally:
        await asyncio.gather(*(sock.close() for sock in socks), return_exceptions=True)
    return len(ends), ends[-1] - ends[0]


async def _measure(ready: dict, samples: int, burst: int) -> dict:
    ws, http = ready["ws_url"], ready["http_url"]
    async with aiohttp.ClientSession() as session:
        token_times, tokens, refresh_tokens = [], [], []
        secrets = await provision(session, http, ready["admin_key"], [f"calib-{i}" for i in range(samples)])
        for i in range(samples):
            body, dt = await _token(session, http, f"calib-{i}", secrets[f"calib-{i}"])
            token_times.append(dt)
            tokens.append(body["access_token"])
            refresh_tokens.append(body["refresh_token"])
        refresh_burst_s = await _refresh_burst(session, http, refresh_tokens)
        handshake_times, agent_times = [], []
        for i in range(samples):
            url = f"{ws}/ws/chat/calib-{i}?token={tokens[i]}"
            t0 = time.perf_counter()
            async with websockets.connect(url, open_timeout=10) as sock:
                handshake_times.append(time.perf_counter() - t0)
                t1 = time.perf_counter()
                await sock.send(json.dumps({"v": "1.0", "type": "user_message", "id": f"u{i}", "text": SEARCH}))
                deadline = t1 + 10
                while time.perf_counter() < deadline:
                    frame = json.loads(await asyncio.wait_for(sock.recv(), timeout=10))
                    if frame.get("type") == "assistant_message":
                        agent_times.append(time.perf_counter() - t1)
                        break
        burst_tokens = [tokens[i % len(tokens)] for i in range(burst)]

        async def one(i: int) -> None:
            async with websockets.connect(f"{ws}/ws/chat/calib-{i % samples}?token={burst_tokens[i]}",
                                          open_timeout=30):
                pass

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(burst)))
        burst_s = time.perf_counter() - t0
        closes, close_burst_s = await _close_burst(session, ready, tokens, burst)
    return {"token_s": token_times, "handshake_s": handshake_times, "agent_s": agent_times,
            "burst": burst, "burst_s": burst_s, "refreshes": len(refresh_tokens), "refresh_burst_s": refresh_burst_s,
            "closes": closes, "close_burst_s": close_burst_s}


def calibrate(samples: int = 200, burst: int = 200, agent: str = "supervisor"):
    """Measure a fresh `stormbench serve` child; returns the Calibration."""
    from harness.emulate.procs import ManagedProcess, stormbench_argv
    from harness.emulate.host import usable_cpus
    from commands import calibrate_testbed
    from sim.calibration import Calibration, Dist, Testbed

    # live expiry with a short grace: the close burst is a forced expiry of every live session
    argv = stormbench_argv("serve", "--agent", agent, "--heartbeat-interval", "20s", "--live-expiry",
                           "--expiry-grace", "0.05s")
    t0 = time.perf_counter()
    with ManagedProcess(argv, name="calibrate-server").start() as server:
        startup = time.perf_counter() - t0
        raw = asyncio.run(_measure(server.ready, samples, burst))
        token_burst, connect_burst = calibrate_testbed.measure(server.ready, burst)
    handshake = Dist.fit(raw["handshake_s"])
    throughput = raw["burst"] / raw["burst_s"]
    servers = max(1, round(throughput * handshake.mean))
    return Calibration(
        source=f"stormbench calibrate on {time.strftime('%Y-%m-%d %H:%M:%S')} ({samples} samples, burst {burst})",
        handshake_servers=servers,
        handshake_service=handshake,
        token_latency=Dist.fit(raw["token_s"]),
        token_service=Dist("exponential", raw["refresh_burst_s"] / raw["refreshes"] * servers),
        close_service=Dist("exponential", raw["close_burst_s"] / max(1, raw["closes"] - 1) * servers),
        agent_latency=Dist.fit(raw["agent_s"]) if len(raw["agent_s"]) >= 2 else Dist("fixed", 0.0, 0.0),
        restart_downtime_s=round(startup, 3),
        testbed=Testbed(usable_cpus(), Dist("exponential", token_burst.testbed_s),
                        Dist("exponential", connect_burst.testbed_s), Dist("exponential", token_burst.server_s),
                        Dist("exponential", connect_burst.server_s)),
        measured={
            "handshake_p50_s": float(np.median(raw["handshake_s"])),
            "handshake_p95_s": float(np.percentile(raw["handshake_s"], 95)),
            "burst_handshakes_per_s": throughput,
            "token_p50_s": float(np.median(raw["token_s"])),
            "burst_refreshes_per_s": raw["refreshes"] / raw["refresh_burst_s"],
            "burst_closes_per_s": (raw["closes"] - 1) / raw["close_burst_s"] if raw["close_burst_s"] > 0 else None,
            "agent_p50_s": float(np.median(raw["agent_s"])) if raw["agent_s"] else None,
            "server_startup_s": startup,
            "testbed_token_burst": token_burst.to_json(),
            "testbed_connect_burst": connect_burst.to_json(),
            "testbed_load_average_1m": os.getloadavg()[0],
        },
    )


def run(args: argparse.Namespace) -> int:
    from sim.calibration import save

    if args.samples < 2 or args.burst < 1:
        raise UsageError("--samples must be >= 2 and --burst >= 1")
    from harness.emulate.procs import ProcessStartError

    out = Path(args.out)
    if out.is_dir() or not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
        raise UsageError(f"--out {out}: cannot write a calibration file there (the measurement takes a "
                         f"minute; it is checked first)")
    try:
        cal = calibrate(args.samples, args.burst, args.agent)
    except ProcessStartError as exc:
        raise UsageError(f"could not start `stormbench serve` to measure it: {exc}") from None
    except (OSError, TimeoutError, websockets.exceptions.WebSocketException, aiohttp.ClientError) as exc:
        raise UsageError(f"the measured server stopped answering ({type(exc).__name__}: {exc}); "
                         f"try fewer --samples or a smaller --burst") from None
    save(cal, args.out)
    m = cal.measured
    print(f"handshake p50 {m['handshake_p50_s'] * 1000:.2f} ms, p95 {m['handshake_p95_s'] * 1000:.2f} ms; "
          f"burst {m['burst_handshakes_per_s']:.0f}/s → {cal.handshake_servers} server(s); "
          f"token p50 {m['token_p50_s'] * 1000:.2f} ms, burst {m['burst_refreshes_per_s']:.0f} refreshes/s, "
          f"{m['burst_closes_per_s'] or 0:.0f} closes/s; startup {m['server_startup_s']:.2f} s")
    parts = []
    for kind in ("token", "connect"):
        b = m[f"testbed_{kind}_burst"]
        parts.append(f"per {kind} client {b['client_cpu_per_request_s'] * 1000:.2f} ms + proxy "
                     f"{b['proxy_cpu_per_request_s'] * 1000:.2f} ms (server {b['server_cpu_per_request_s'] * 1000:.2f} ms)")
    print(f"testbed (validate only), CPU through the proxy: {'; '.join(parts)}; {cal.testbed.cores} cores; "
          f"load average {m['testbed_load_average_1m']:.2f}")
    print(f"calibration: {Path(args.out)}")
    return 0
