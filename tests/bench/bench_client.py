"""The reference client's costs, each next to a baseline measured in the same run.

1. Policy: events per second through `ClientPolicy.handle` (replaying recorded random
   histories), against the same loop calling a policy that does nothing. The SimPy model
   runs this code for every simulated client, so this ratio bounds its fleet size.
2. Driver: wall time for N clients to log in and open a socket through `ClientDriver`,
   against the same N logins and connects done with bare aiohttp + websockets calls.
"""
from __future__ import annotations

import asyncio
import random
import time

import aiohttp
from websockets.asyncio.client import connect

from harness.emulate.procs import ManagedProcess, stormbench_argv
from system.client.credentials import provision
from system.client.driver import ClientDriver, Clock, DriverOptions, Endpoints
from system.client.policy import ClientConfig, ClientPolicy, Fixes
from tests.client.world import World

WORLDS, STEPS, REPEATS, CLIENTS = 40, 1500, 3, 100


class _NullPolicy:
    def handle(self, event):
        return []


def _traces(profile: str) -> list[tuple[ClientConfig, int, list]]:
    config = ClientConfig(fixes=Fixes.profile(profile))
    traces = []
    for seed in range(WORLDS):
        world = World(ClientPolicy(config, random.Random(seed), "c"), seed).run(STEPS)
        traces.append((config, seed, [event for event, _ in world.trace]))
    return traces


def _replay(traces, make) -> tuple[float, int]:
    best, events = float("inf"), sum(len(t[2]) for t in traces)
    for _ in range(REPEATS):
        policies = [make(config, seed) for config, seed, _ in traces]
        started = time.perf_counter()
        for policy, (_, _, trace) in zip(policies, traces):
            for event in trace:
                policy.handle(event)
        best = min(best, time.perf_counter() - started)
    return best, events


def bench_policy() -> None:
    for profile in ("fixed", "legacy"):
        traces = _traces(profile)
        real, events = _replay(traces, lambda c, s: ClientPolicy(c, random.Random(s), "c"))
        null, _ = _replay(traces, lambda c, s: _NullPolicy())
        print(f"policy[{profile}]: {events / real:,.0f} events/s; "
              f"{real / null:.1f}x the cost of a do-nothing policy ({events / null:,.0f} events/s)")


async def _driver_opens(endpoints: Endpoints, http: aiohttp.ClientSession, secrets: dict[str, str]) -> float:
    clock = Clock.start()
    opened = asyncio.Event()
    count = 0

    def on_record(record: dict) -> None:
        nonlocal count
        if record["kind"] == "open":
            count += 1
            if count == CLIENTS:
                opened.set()

    config = ClientConfig(fixes=Fixes.profile("fixed"))
    drivers = [ClientDriver(ClientPolicy(config, random.Random(i), f"d{i}"), endpoints, http, clock,
                            secret=secrets[f"d{i}"], on_record=on_record, options=DriverOptions(ping_interval=None))
               for i in range(CLIENTS)]
    started = time.perf_counter()
    tasks = [asyncio.create_task(d.run(until=60.0)) for d in drivers]
    await asyncio.wait_for(opened.wait(), 60)
    elapsed = time.perf_counter() - started
    for d in drivers:
        d.request_stop()
    await asyncio.gather(*tasks)
    return elapsed


async def _bare_opens(endpoints: Endpoints, http: aiohttp.ClientSession, secrets: dict[str, str]) -> float:
    async def one(i: int):
        async with http.post(endpoints.http_url + "/auth/token", json={"user": f"b{i}", "secret": secrets[f"b{i}"]}) as resp:
            token = (await resp.json())["access_token"]
        return await connect(endpoints.chat(f"b{i}", token), ping_interval=None)

    started = time.perf_counter()
    sockets = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(CLIENTS))), 60)
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(ws.close() for ws in sockets))
    return elapsed


async def _bench_driver(endpoints: Endpoints, admin_key: str) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        secrets = await provision(http, endpoints.http_url, admin_key,
                                  [f"{p}{i}" for p in "bd" for i in range(CLIENTS)])
        bare = min([await _bare_opens(endpoints, http, secrets) for _ in range(REPEATS)])
        driven = min([await _driver_opens(endpoints, http, secrets) for _ in range(REPEATS)])
    print(f"driver: {CLIENTS} clients logged in and open in {driven * 1000:.0f} ms; "
          f"bare aiohttp + websockets {bare * 1000:.0f} ms; ratio {driven / bare:.2f}x")


def bench_driver() -> None:
    with ManagedProcess(stormbench_argv("serve", "--heartbeat-interval", "off"), name="serve") as server:
        asyncio.run(_bench_driver(Endpoints(server.ready["ws_url"], server.ready["http_url"]),
                                  server.ready["admin_key"]))


def main() -> None:
    bench_policy()
    bench_driver()


if __name__ == "__main__":
    main()
