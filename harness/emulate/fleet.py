"""The client fleet in worker processes: many `ClientDriver`s per asyncio loop, one loop per core.

Workers are spawned (not forked: the parent holds threads, sockets and a rich
console) and import the client stack before the run's clock starts, so start-up
cost never lands inside the scenario. Each worker runs its share of the plan on
uvloop when available: arrivals, user messages, drops and offline periods at their
planned scenario times, every client stopping by itself at its planned end. The
policy's clock is scenario seconds (`Clock(origin, scale=time_scale)`), so records
come out in scenario seconds, on one origin shared by all workers.

A worker sends a `Tally` snapshot a few times a second (the live view) and, at the
end, its self-check numbers; its records go to its own JSON-lines file, sorted by
time, which the engine merges.
"""
from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import signal
import queue as queue_mod
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, ClassVar

from harness.emulate.live import Tally
from harness.emulate.plan import ClientPlan

#: descriptors a connection costs in the proxy (client side + upstream side)
PROXY_FDS_PER_CONNECTION = 2
#: descriptors kept back for listeners, logs, pipes and the HTTP pool
FD_RESERVE = 512


def fleet_bound(fd_limit: int, sockets_per_client: int) -> int:
    """The most clients the proxy process can carry: each connection a client holds costs
    two descriptors there — its WebSocket(s) (a legacy client without single_writer may
    hold two) and, in the worst case, one HTTP connection for a token request in flight."""
    per_client = PROXY_FDS_PER_CONNECTION * (max(1, sockets_per_client) + 1)
    return max(1, (fd_limit - FD_RESERVE) // per_client)


@dataclass
class WorkerSpec:
    """What one worker runs. Durations in scenario seconds unless named `_wall`."""

    index: int
    clients: list[ClientPlan]
    urls: dict[int, tuple[str, str]]          # group -> (ws_url, http_url) through its proxies
    config: Any                               # system.client.config.ClientConfig, scenario seconds
    time_scale: float
    duration: float
    events_path: Path
    open_timeout_wall: float = 10.0
    http_timeout_wall: float = 10.0
    report_every: float = 0.25                # seconds on the loop's clock between tallies
    messages: tuple[str, ...] = ()
    lag_monitor: bool = True                  # measure loop lag (meaningless on a virtual clock)
    secrets: dict[str, str] = field(default_factory=dict)  # client id -> its user's secret
    conversations: dict[str, str] = field(default_factory=dict)  # client id -> its (unguessable) conversation


def worker_main(spec: WorkerSpec, commands: Connection, reports: Any) -> None:
    """Process entry point: announce readiness, wait for the run's origin, run, report."""
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    from harness.emulate.host import fd_limit
    fd_limit()
    # pay the imports before the clock starts: after "go" they delayed every client of the worker
    # by seconds of wall time on a busy machine (the self-check's imports pull in the record format)
    import aiohttp  # noqa: F401
    import harness.emulate.selfcheck  # noqa: F401
    import system.client.fleet  # noqa: F401
    reports.put(("ready", spec.index, None))
    msg = commands.recv()
    if msg[0] != "go":
        return
    origin_unix = float(msg[1])
    try:
        result = runner(_run(spec, origin_unix, commands, reports))
        reports.put(("done", spec.index, result))
    except BaseException as exc:  # the engine must hear about it, not wait forever
        reports.put(("failed", spec.index, f"{type(exc).__name__}: {exc}"))


async def _run(spec: WorkerSpec, origin_unix: float, commands: Connection, reports: Any) -> dict:
    from system.client.driver import Clock

    loop = asyncio.get_running_loop()
    return await run_clients(spec, Clock(loop.time() - (time.time() - origin_unix), spec.time_scale), reports)


async def run_clients(spec: WorkerSpec, clock: Any, reports: Any) -> dict:
    """The clients of `spec` on the running loop, on `clock` (scenario seconds), with their
    weather; tallies go to `reports.put`, records to `spec.events_path`; returns the self-check."""
    import aiohttp

    from harness.emulate.selfcheck import LoopLagMonitor, ResourceSampler, worker_report
    from system.client.driver import ClientDriver, DriverOptions, Endpoints
    from system.client.fleet import MESSAGES
    from system.client.policy import ClientPolicy

    loop = asyncio.get_running_loop()
    started_late_s = max(0.0, clock.now())  # scenario seconds between the origin and this worker's start
    options = DriverOptions(open_timeout=spec.open_timeout_wall, http_timeout=spec.http_timeout_wall,
                            ping_interval=None, ping_timeout=None)  # browsers never ping: the server does
    tally = Tally()
    seen: set = set()
    records: list[tuple[float, str, str]] = []
    texts = spec.messages or MESSAGES

    def on_record(rec: dict) -> None:
        tally.add(rec, seen)
        records.append((rec["t"], rec["client"], json.dumps(rec, separators=(",", ":"))))

    stop = asyncio.Event()
    lag, res = LoopLagMonitor(), ResourceSampler()
    lag_task = loop.create_task(lag.run(stop) if spec.lag_monitor else stop.wait())

    async def report() -> None:
        while not stop.is_set():
            res.sample()
            reports.put(("tally", spec.index, tally.snapshot()))
            try:
                await asyncio.wait_for(stop.wait(), spec.report_every)
            except asyncio.TimeoutError:
                pass

    async def one(plan: ClientPlan, http: aiohttp.ClientSession) -> None:
        await _sleep_until(clock, plan.start_at)
        if stop.is_set():
            return
        ws_url, http_url = spec.urls[plan.group]
        policy = ClientPolicy(spec.config, plan.rng, plan.client_id, conversation=spec.conversations[plan.client_id])
        driver = ClientDriver(policy, Endpoints(ws_url, http_url), http, clock, secret=spec.secrets[plan.client_id],
                              on_record=on_record, options=options)
        tally.clients_running += 1
        weather = [loop.create_task(_messages(driver, clock, plan, texts)),
                   loop.create_task(_drops(driver, clock, plan)),
                   loop.create_task(_offline(driver, clock, plan))]
        try:
            await driver.run(until=plan.stop_at)
        finally:
            for w in weather:
                w.cancel()
            tally.clients_running -= 1

    reporter = loop.create_task(report())
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    errors: list[str] = []
    try:
        async with aiohttp.ClientSession(connector=connector) as http:
            results = await asyncio.gather(*(one(p, http) for p in spec.clients), return_exceptions=True)
    finally:  # interrupted too (SIGINT cancels this task): the engine keeps what the clients recorded
        records.sort(key=lambda r: r[:2])  # records of one instant by client: one order whatever ran first
        with open(spec.events_path, "w", encoding="utf-8") as f:
            for _, _, line in records:
                f.write(line + "\n")
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    stop.set()
    await asyncio.gather(lag_task, reporter, return_exceptions=True)
    res.sample()
    reports.put(("tally", spec.index, tally.snapshot()))
    check = {**worker_report(lag, res, to_scenario=lambda t: (t - clock.origin) * clock.scale),
             "started_late_s": round(started_late_s, 3)}
    return {"self_check": check, "clients": len(spec.clients), "records": len(records),
            "client_errors": errors[:20], "client_error_count": len(errors)}


async def _sleep_until(clock: Any, at: float) -> None:
    await asyncio.sleep(max(0.0, clock.loop_time(at) - asyncio.get_running_loop().time()))


async def _messages(driver: Any, clock: Any, plan: ClientPlan, texts: tuple[str, ...]) -> None:
    for n, at in enumerate(plan.messages):
        await _sleep_until(clock, at)
        driver.send_user_message(texts[(plan.index + n) % len(texts)])


async def _drops(driver: Any, clock: Any, plan: ClientPlan) -> None:
    for at in plan.drops:
        await _sleep_until(clock, at)
        driver.drop_connections()


async def _offline(driver: Any, clock: Any, plan: ClientPlan) -> None:
    for start, end in plan.offline:
        await _sleep_until(clock, start)
        driver.set_online(False)
        await _sleep_until(clock, end)
        driver.set_online(True)


class Shares:
    """What the workers of a fleet (local processes or a cluster's workers) have reported, by
    share index: the engine reads both kinds of fleet through these."""

    specs: list[WorkerSpec]
    tallies: dict[int, dict]
    results: dict[int, dict]
    failures: dict[int, str]

    @property
    def finished(self) -> bool:
        return len(self.results) + len(self.failures) >= len(self.specs)

    def tally(self) -> Tally:
        return Tally.merge(list(self.tallies.values()))


@dataclass
class Fleet(Shares):
    """The parent's side: spawn, start together, collect tallies, join with a deadline."""

    specs: list[WorkerSpec]
    start_lead_s: ClassVar[float] = 0.2  # from `go` to the origin: enough for a pipe message to arrive
    ctx: Any = field(default_factory=lambda: mp.get_context("spawn"))
    procs: list[Any] = field(default_factory=list)
    pipes: list[Connection] = field(default_factory=list)
    tallies: dict[int, dict] = field(default_factory=dict)
    results: dict[int, dict] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reports = self.ctx.Queue()

    def start(self, ready_timeout: float = 60.0) -> None:
        for spec in self.specs:
            parent, child = self.ctx.Pipe()
            p = self.ctx.Process(target=worker_main, args=(spec, child, self.reports),
                                 name=f"stormbench-worker-{spec.index}", daemon=True)
            p.start()
            self.procs.append(p)
            self.pipes.append(parent)
        ready: set[int] = set()
        deadline = time.monotonic() + ready_timeout
        while len(ready) < len(self.specs):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"fleet workers not ready within {ready_timeout:.0f}s "
                                   f"({len(ready)}/{len(self.specs)} ready)")
            try:
                kind, index, payload = self.reports.get(timeout=min(left, 1.0))
            except queue_mod.Empty:
                dead = [p.name for p in self.procs if not p.is_alive()]
                if dead:
                    raise RuntimeError(f"fleet worker(s) died while starting: {', '.join(dead)}")
                continue
            if kind == "ready":
                ready.add(index)

    def go(self, origin_unix: float) -> None:
        for pipe in self.pipes:
            pipe.send(("go", origin_unix))

    def poll(self, timeout: float = 0.0) -> None:
        """Take in whatever the workers reported (at most `timeout` seconds of waiting)."""
        end = time.monotonic() + timeout
        while True:
            try:
                kind, index, payload = self.reports.get(timeout=max(0.0, end - time.monotonic()))
            except queue_mod.Empty:
                return
            if kind == "tally":
                self.tallies[index] = payload
            elif kind == "done":
                self.results[index] = payload
            elif kind == "failed":
                self.failures[index] = payload
            if time.monotonic() >= end and self.reports.empty():
                return

    def join(self, timeout: float) -> None:
        """Wait for every worker's result; whoever is late is terminated and marked failed."""
        deadline = time.monotonic() + timeout
        while not self.finished and time.monotonic() < deadline:
            self.poll(timeout=0.5)
            for spec, p in zip(self.specs, self.procs):
                if not p.is_alive() and spec.index not in self.results and spec.index not in self.failures:
                    self.poll(timeout=0.5)
                    if spec.index not in self.results:
                        self.failures[spec.index] = f"worker exited with code {p.exitcode} without a result"
        self.stop()

    def interrupt(self) -> None:
        """Ask every live worker to stop as Ctrl-C does (SIGINT cancels its run, which then writes
        the records it has), rather than terminate it with its records unwritten."""
        for p in self.procs:
            if p.is_alive() and p.pid is not None:
                try:
                    os.kill(p.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass

    def stop(self) -> None:
        for spec, p in zip(self.specs, self.procs):
            if p.is_alive():
                p.join(timeout=2.0)
            if p.is_alive():
                p.terminate()
                p.join(timeout=2.0)
                if spec.index not in self.results:
                    self.failures.setdefault(spec.index, "terminated: no result before the deadline")
            if p.is_alive():
                p.kill()
                p.join(timeout=2.0)
        for pipe in self.pipes:
            pipe.close()


def split(clients: list[ClientPlan], workers: int) -> list[list[ClientPlan]]:
    """Round-robin over the workers in arrival order, so each gets a share of every phase."""
    ordered = sorted(clients, key=lambda c: (c.start_at, c.index))
    return [ordered[i::workers] for i in range(workers)]


def worker_count(clients: int) -> int:
    """One worker per usable core, never more than clients."""
    from harness.emulate.host import usable_cpus

    return max(1, min(usable_cpus(), clients))
