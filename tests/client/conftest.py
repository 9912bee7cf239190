"""A real `stormbench serve` subprocess per test, and a small bench to run real clients against it."""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import aiohttp
import pytest

from harness.emulate.procs import ManagedProcess, stormbench_argv
from system.client.credentials import provision
from system.client.driver import ClientDriver, Clock, DriverOptions, Endpoints
from system.client.policy import ClientConfig, ClientPolicy

ADMIN_KEY = "client-tests"


@dataclass
class Server:
    proc: ManagedProcess
    http: aiohttp.ClientSession
    secrets: dict[str, str] = field(default_factory=dict)

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(self.proc.ready["ws_url"], self.proc.ready["http_url"])

    async def admin(self, path: str, body: dict | None = None) -> dict:
        url = self.proc.ready["http_url"] + path
        headers = {"X-Admin-Key": ADMIN_KEY}
        method = self.http.post if body is not None else self.http.get
        async with method(url, json=body, headers=headers) as resp:
            assert resp.status == 200, f"{path}: HTTP {resp.status} {await resp.text()}"
            return await resp.json()

    async def secret(self, user: str) -> str:
        """The user's secret (created through the admin API on first use)."""
        if user not in self.secrets:
            self.secrets.update(await provision(self.http, self.proc.ready["http_url"], ADMIN_KEY, [user]))
        return self.secrets[user]

    async def token(self, user: str) -> str:
        async with self.http.post(self.proc.ready["http_url"] + "/auth/token",
                                  json={"user": user, "secret": await self.secret(user)}) as resp:
            assert resp.status == 200
            return (await resp.json())["access_token"]


@pytest.fixture
async def serve(tmp_path):
    """serve(*flags) -> Server; every server process is stopped in teardown."""
    procs: list[ManagedProcess] = []
    async with aiohttp.ClientSession() as http:
        def start(*flags: str) -> Server:
            argv = stormbench_argv("serve", "--admin-key", ADMIN_KEY, "--db", str(tmp_path / f"s{len(procs)}.db"),
                                   "--heartbeat-interval", "off", *flags)
            proc = ManagedProcess(argv, name="serve", log_path=tmp_path / f"serve{len(procs)}.log")
            procs.append(proc)
            proc.start()
            return Server(proc, http)

        yield start
    for proc in procs:
        proc.stop(grace=3.0)


@dataclass
class Bench:
    """Real clients (ClientDriver) in this test's event loop; their records in `records`."""

    server: Server
    records: list[dict] = field(default_factory=list)
    drivers: list[ClientDriver] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)

    def start(self, config: ClientConfig, n: int = 1, *, conversation: str | None = None,
              prefix: str = "c", seed: int = 1, until: float = 60.0,
              endpoints: Endpoints | None = None) -> list[ClientDriver]:
        """`endpoints`: the server's own unless given (e.g. the WebSocket through a proxy)."""
        clock = Clock.start()
        endpoints = endpoints or self.server.endpoints
        new = []
        for i in range(n):
            policy = ClientPolicy(config, random.Random(seed * 1000 + i), f"{prefix}{i}", conversation=conversation)
            driver = ClientDriver(policy, endpoints, self.server.http, clock,
                                  on_record=self.records.append,
                                  options=DriverOptions(ping_interval=None, close_timeout=1.0))
            new.append(driver)
            self.tasks.append(asyncio.get_running_loop().create_task(self._run(driver, until)))
        self.drivers += new
        return new

    async def _run(self, driver: ClientDriver, until: float) -> None:
        driver.secret = await self.server.secret(driver.user)
        await driver.run(until=until)

    def of(self, kind: str, client: str | None = None, **match) -> list[dict]:
        return [r for r in self.records if r["kind"] == kind and (client is None or r["client"] == client)
                and all(r.get(k) == v for k, v in match.items())]

    async def until(self, predicate, timeout: float = 10.0, what: str = "condition") -> None:
        """Poll the records (bounded) until `predicate()` holds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                kinds = [(r["client"], r["kind"], r.get("code") or r.get("status")) for r in self.records[-15:]]
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; last records: {kinds}")
            for task in self.tasks:
                if task.done() and task.exception() is not None:
                    raise task.exception()
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        for driver in self.drivers:
            driver.request_stop()
        await asyncio.wait_for(asyncio.gather(*self.tasks), timeout=10.0)


@pytest.fixture
async def bench_on():
    benches: list[Bench] = []

    def make(server: Server) -> Bench:
        benches.append(Bench(server))
        return benches[-1]

    yield make
    for b in benches:
        for task in b.tasks:
            task.cancel()
        await asyncio.gather(*b.tasks, return_exceptions=True)
