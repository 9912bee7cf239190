"""`emulate_virtual(scenario, out_dir)`: the emulation on the virtual clock.

The real `ChatServer` (with its agent), the embedded proxy (`ProxyCollection`, the same
objects its HTTP API edits) and the whole client fleet (`run_clients`, what a wall-clock
worker runs) live in this process on one event loop over real loopback sockets. The
loop's `time()` is scenario time: when nothing is ready to run and no byte is waiting on a
socket, it jumps to the next timer. Every time constant keeps its true value (30 s
heartbeats, 15 min tokens, 10 s expiry grace, backoff, restart windows), CPU cost takes
no scenario time, and the run is repeatable from its seed whatever else the machine runs.

The loop is `harness.emulate.vclock.VirtualClockLoop` (its docstring says why not the
`looptime` package); it is asyncio's own selector loop, since uvloop's timers follow libuv's
clock, which no Python code can move.

What would break the clock is kept off it: the agent's `asyncio.to_thread` runs inline on
the loop (`InlineExecutor`; the server measures the agent as its thread's CPU time), the
proxy starts no splice thread (`ProxyCollection(splice=False)`), admin calls and scrapes go
over HTTP on the loop (aiohttp), and nothing runs in another process. The system reads
time only through the loop (`system.clock`), so its tokens, durations and delivery log
follow the virtual clock without knowing it.

What this clock can not tell: a handshake or a token request costs no scenario time, so
server capacity (handshake rate, shedding under a herd) is not measured here; `meta.json`
says so (`clock.capacity_measured: false`) and capacity scenarios keep the wall clock.
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import aiohttp

from harness.emulate.engine import (
    Progress, merge_events, plan_digest, server_options, write_received, write_sent,
)
from harness.emulate.faults import FaultApplier, run_timeline
from harness.emulate.fleet import WorkerSpec, run_clients
from harness.emulate.live import Tally, view_of
from harness.emulate.host import fd_limit, host_facts
from harness.emulate.plan import Step, make_plan, timeline
from harness.emulate.scrape import parse_metrics, scrape_until
from harness.emulate.timescale import TimeScale
from harness.emulate.topology import Endpoints, ProxyControl, ServerOptions
from formats.record import RecordWriter
from formats.record.writer import tool_version
from formats.scenario import Scenario, draws
from formats.scenario.clients import client_config
from system.client.credentials import conversation_id, provision_once
from system.units import format_duration

#: scrapes of /metrics per run, as on the wall clock
SCRAPES_PER_RUN = 120
#: how often the fleet's tally is taken, in scenario seconds (the live view's refresh)
TALLY_EVERY_S = 60.0
#: what a record says of this clock's limits
CAPACITY_NOTE = ("virtual clock: handshakes and token requests cost no scenario time, so server capacity "
                 "(handshake rate, shedding under a herd) is not measured; use the wall clock at time_scale 1 "
                 "or the model for capacity")


class InlineExecutor(ThreadPoolExecutor):
    """`asyncio.to_thread` on the virtual clock: the function runs at once, on the loop's thread.

    A worker thread's work would take no scenario time and arrive whenever the real thread
    finished (the loop's clock may jump meanwhile); inline, it takes none either, but arrives
    deterministically, before anything else happens."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # the caller's await raises it, as from a thread
            future.set_exception(exc)
        return future


def new_loop() -> asyncio.AbstractEventLoop:
    """An event loop whose clock jumps over idle time, running `to_thread` work inline."""
    from harness.emulate.vclock import VirtualClockLoop

    loop = VirtualClockLoop()
    loop.set_default_executor(InlineExecutor(max_workers=1))
    return loop


def server_config(options: ServerOptions, port: int = 0, http_port: int = 0):
    """The `ServerConfig` a `stormbench serve` with these options would run (the same flags,
    parsed by the same CLI), so both clocks run one server configuration."""
    from system.server import cli

    parser = argparse.ArgumentParser()
    cli.configure(parser)
    config, _ = cli.config_from_args(parser.parse_args(options.argv(port, http_port)[1:]))
    return config


class LoopServer:
    """The server object on this loop: stopped (gracefully, or as a crash: sockets dropped
    without close frames) and started anew on the same database and ports by a restart. Each
    generation draws its message ids from the run's seed, so a run's delivery log repeats."""

    def __init__(self, options: ServerOptions, log_path: Path, seed: int) -> None:
        self.options = options
        self.seed = seed
        self.log_path = log_path
        self.server: Any = None
        self.endpoints: Endpoints | None = None
        self.generation = 0
        self.pings = 0  # keepalive pings sent by the server generations stopped so far
        self._log_stream: Any = None

    async def start(self) -> Endpoints:
        from system.server.app import ChatServer
        from system.server.logs import EventLog

        ports = (0, 0)
        if self.endpoints is not None:  # a restart: same ports, so the proxies need no change
            ports = (int(self.endpoints.ws_hostport.rsplit(":", 1)[1]),
                     int(self.endpoints.http_hostport.rsplit(":", 1)[1]))
        if self._log_stream is None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_stream = open(self.log_path, "a", encoding="utf-8")
        ids = draws.stream(self.seed, f"server ids {self.generation}").getrandbits(63)
        self.server = ChatServer(replace(server_config(self.options, *ports), id_seed=ids), EventLog(self._log_stream))
        await self.server.start()
        self.generation += 1
        self.endpoints = Endpoints(self.server.ws_url, self.server.http_url)
        return self.endpoints

    async def stop(self, crash: bool = False) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.shutdown(crash=crash)
            self.pings += keepalive_pings(server.state.metrics.exposition()[0].decode())

    async def close(self) -> None:
        await self.stop()
        if self._log_stream is not None:
            self._log_stream.close()


def keepalive_pings(exposition: str) -> int:
    """The keepalive pings one server sent, from its own metrics."""
    return int(sum(s["value"] for s in parse_metrics(exposition) if s["name"] == "ws_messages_total"
                   and s["labels"] == {"direction": "out", "type": "keepalive_ping"}))


class LoopProxy:
    """One proxy of the embedded collection, with the toxiproxy-python methods the fault
    applier calls (`add_toxic`, `destroy_toxic`, `enable`, `disable`)."""

    def __init__(self, collection: Any, proxy: Any) -> None:
        self.collection, self.proxy = collection, proxy

    def add_toxic(self, **body: Any) -> None:
        self.proxy.add_toxic(self.collection.new_toxic(self.proxy, body))

    def destroy_toxic(self, name: str) -> None:
        self.proxy.remove_toxic(self.proxy.find_toxic(name))

    async def enable(self) -> None:
        await self.collection.update(self.proxy, self.proxy.listen, self.proxy.upstream, True)

    async def disable(self) -> None:
        await self.collection.update(self.proxy, self.proxy.listen, self.proxy.upstream, False)


class LoopProxies(ProxyControl):
    """The per-group proxies in the embedded `ProxyCollection` on this loop (no HTTP API: the
    calls it would make are made on the same objects)."""

    def __init__(self, seed: int, groups: int) -> None:
        from harness.proxy.proxy import ProxyCollection

        self.collection = ProxyCollection(seed, splice=False)
        self.groups = groups
        self.listen = {}
        self.client = self  # what the fault applier lists proxies through

    async def create_on_loop(self, server: Endpoints) -> None:
        for g in range(self.groups):
            for name, upstream in zip(self.names(g), (server.ws_hostport, server.http_hostport)):
                proxy = await self.collection.create(name, "127.0.0.1:0", upstream, True)
                self.listen[name] = proxy.listen

    def proxies(self) -> dict[str, LoopProxy]:
        return {name: LoopProxy(self.collection, p) for name, p in self.collection.proxies.items()}

    def stop(self) -> None:
        for proxy in self.collection.proxies.values():
            proxy.stop()


async def post_admin(http: aiohttp.ClientSession, http_url: str, admin_key: str, path: str, body: dict) -> None:
    async with http.post(http_url + path, json=body, headers={"X-Admin-Key": admin_key}) as r:
        if r.status >= 400:
            raise RuntimeError(f"admin {path} {body} → HTTP {r.status}: {(await r.text())[:200]}")


class _Tallies:
    """The fleet's `reports` queue, kept in this process: the latest tally."""

    def __init__(self) -> None:
        self.latest: dict = {}

    def put(self, item: tuple) -> None:
        if item[0] == "tally":
            self.latest = item[2]


class _VirtualRun:
    def __init__(self, scenario: Scenario, out: Path, progress: Progress | None, live: bool | None = None) -> None:
        self.scenario = scenario
        self.live = live
        self.out = out
        self.progress = progress
        self.tmp = Path(tempfile.mkdtemp(prefix="stormbench-virtual-"))
        self.warnings: list[str] = []
        self.fault_events: list[dict] = []
        self.origin_unix = 0.0
        self.origin_loop = 0.0
        self.conversations: dict[str, str] = {}  # client id -> its conversation
        self.interrupted_at: float | None = None  # scenario time of a Ctrl-C (see `emulate_virtual`)

    def clock(self) -> float:
        return asyncio.get_running_loop().time() - self.origin_loop

    async def main(self, writer: RecordWriter, plan: Any) -> dict:
        """The run on this loop; the server and the proxies are stopped whatever happens."""
        options, warns = server_options(self.scenario, TimeScale(1.0), self.tmp / "server.db")
        self.warnings += warns
        self.server = LoopServer(options, self.out / "logs" / "server.log", self.scenario.seed)
        self.proxies = LoopProxies(self.scenario.seed, plan.groups)
        try:
            return await self._drive(writer, plan, options)
        finally:
            self.proxies.stop()
            await self.server.close()

    async def _drive(self, writer: RecordWriter, plan: Any, options: ServerOptions) -> dict:
        from system import clock as system_clock
        from system.client.driver import Clock

        scenario = self.scenario
        endpoints = await self.server.start()
        await self.proxies.create_on_loop(endpoints)
        urls = {}
        for g in range(plan.groups):
            ep = self.proxies.group_endpoints(g, endpoints)
            urls[g] = (ep.ws_url, ep.http_url)
        ids = [c.client_id for c in plan.clients]
        secrets = await provision_once(endpoints.http_url, options.admin_key, ids)
        rng = draws.stream(scenario.seed, "conversations")
        self.conversations = {cid: conversation_id(cid, rng) for cid in ids}
        spec = WorkerSpec(index=0, clients=list(plan.clients), urls=urls, config=client_config(scenario),
                          time_scale=1.0, duration=scenario.duration, events_path=self.tmp / "events-0.jsonl",
                          report_every=TALLY_EVERY_S, lag_monitor=False, secrets=secrets,
                          conversations=self.conversations)
        self.spec = spec
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            applier = FaultApplier(
                scale=TimeScale(1.0), server=self.server, proxies=self.proxies,
                http_url=lambda: endpoints.http_url, admin_key=options.admin_key, user_of=lambda cid: cid,
                groups_of=dict(plan.group_of_fault), on_loop=True,
                admin=lambda *a: post_admin(http, *a), restart_downtime=scenario.system.restart_downtime)
            self.applier = applier
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            self.origin_loop = loop.time()
            self.origin_unix = system_clock.now()
            tallies = _Tallies()
            self.view = view_of(scenario, self.progress, self.warnings, self.live)
            fleet = loop.create_task(run_clients(spec, Clock(self.origin_loop, 1.0), tallies))
            faults = loop.create_task(run_timeline(timeline(plan.faults, scenario.duration), applier, self.clock,
                                                   stop, self._fault_error, self._fault_applied))
            scraper = loop.create_task(scrape_until(  # the harness's in-loop scraper, on scenario time
                http, lambda: f"{endpoints.http_url}/metrics", writer, self.clock,
                scenario.duration / SCRAPES_PER_RUN, lambda: self.clock() <= scenario.duration, stop))
            watcher = loop.create_task(self._watch(tallies, stop))
            try:
                result = await fleet
            except asyncio.CancelledError:  # Ctrl-C: the fleet wrote its clients' records as it stopped;
                asyncio.current_task().uncancel()  # the server still runs, so its logs are fetched below
                self.interrupted_at, result = self.clock(), {}
            finally:
                stop.set()
                await asyncio.gather(faults, scraper, watcher, return_exceptions=True)
            messages = await self._admin_log(http, endpoints, options.admin_key, "/admin/messages", "sent.csv")
            received = await self._admin_log(http, endpoints, options.admin_key, "/admin/user-messages", "received.csv")
        return {"result": result, "messages": messages, "received": received}

    def _fault_error(self, step: Step, exc: Exception) -> None:
        self.warnings.append(f"fault {step.index} ({step.fault.kind}) {step.action} at {step.at:g}s failed: {exc}")

    def _fault_applied(self, step: Step, began: float, took: float) -> None:
        if step.action == "start":
            self.view.saw(step.fault.kind)
        self.fault_events.append({"t": began, "client": "harness", "kind": f"fault_{step.action}",
                                  "fault": step.fault.kind, "index": step.index, "applied_in_s": round(took, 3)})

    async def _watch(self, tallies: _Tallies, stop: asyncio.Event) -> None:
        """Every TALLY_EVERY_S of scenario time: a snapshot for the caller's `progress`, else the
        live view (the panel on a terminal, a plain line every 10 wall seconds otherwise), its
        last state the fleet's final tally at the run's end."""
        with self.view:
            while True:
                t = min(self.clock(), self.scenario.duration)
                tally = Tally.merge([tallies.latest]) if tallies.latest else Tally()
                if self.progress is not None:
                    if tallies.latest:
                        self.progress({"t": t, "faults": self.applier.labels(), **tally.snapshot()})
                else:
                    self.view.update(t, tally, self.applier.labels())
                if stop.is_set():
                    return
                try:
                    await asyncio.wait_for(stop.wait(), TALLY_EVERY_S)
                except asyncio.TimeoutError:
                    pass

    async def _admin_log(self, http: aiohttp.ClientSession, endpoints: Endpoints, admin_key: str,
                         path: str, file: str) -> list[dict]:
        """The server's delivery log (`/admin/messages`) or its log of user messages received."""
        try:
            async with http.get(f"{endpoints.http_url}{path}", headers={"X-Admin-Key": admin_key}) as r:
                r.raise_for_status()
                return (await r.json())["messages"]
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError) as exc:
            self.warnings.append(f"{file}: could not fetch the server's {path}: {exc}")
            return []


def run_interruptibly(loop: asyncio.AbstractEventLoop, main: Any) -> Any:
    """Run `main` with Ctrl-C cancelling it rather than raising KeyboardInterrupt inside whatever
    callback happens to run: the cancellation reaches the fleet, whose clients write their records
    as they stop, while the server still answers for its delivery logs. Off the main thread (no
    signal handler can be set there) a Ctrl-C is the caller's as usual."""
    task = loop.create_task(main)
    try:
        loop.add_signal_handler(signal.SIGINT, task.cancel)
    except (RuntimeError, ValueError):
        return loop.run_until_complete(task)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:  # before the fleet started or during the salvage: nothing to keep
        raise KeyboardInterrupt("interrupted (Ctrl-C)") from None
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def emulate_virtual(scenario: Scenario, out_dir: str | Path, *, progress: Progress | None = None,
                    live: bool | None = None) -> Path:
    """Run `scenario` on the virtual clock and write its raw run record into `out_dir`
    (the same files as the wall-clock `emulate`; `meta.json` `clock` says which ran)."""
    from harness.emulate.fleet import fleet_bound

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started, wall0, cpu0 = time.time(), time.monotonic(), time.process_time()
    run = _VirtualRun(scenario, out, progress, live)
    writer = RecordWriter(out)
    loop = new_loop()
    try:
        writer.scenario(scenario)
        limit = fd_limit()
        plan = make_plan(scenario)
        # one process holds every socket: client, proxy (two) and server side of each connection
        bound = fleet_bound(limit, 2) // 2
        if plan.peak_clients > bound:
            raise ValueError(f"{plan.peak_clients} clients at the peak need more than the {limit} open files "
                             f"this process may hold on the virtual clock (at most {bound})")
        writer.faults(list(plan.faults))
        writer.meta({"engine": "emulate", "stormbench_version": tool_version(), "seed": scenario.seed,
                     "time_scale": 1.0, "clients": len([c for c in plan.clients if not c.spike]),
                     "started_at": datetime.fromtimestamp(started, timezone.utc).isoformat(),
                     "host": host_facts(), "calibration": None,
                     "clock": {"kind": "virtual", "capacity_measured": False, "note": CAPACITY_NOTE}})
        done = run_interruptibly(loop, run.main(writer, plan))
        result = done["result"]
        events = merge_events(writer, [run.spec.events_path], run.fault_events)
        conversations = set(run.conversations.values())
        to_scenario = lambda t: round(round(t - run.origin_unix, 6), 3)  # noqa: E731
        sent = write_sent(writer, done["messages"], conversations, to_scenario)
        write_received(writer, done["received"], conversations, to_scenario)
        if run.interrupted_at is not None:  # what was recorded is written, as a wall-clock run keeps it
            writer.meta({"counts": {"events": events, "sent": sent}})
            raise KeyboardInterrupt(f"interrupted at {format_duration(run.interrupted_at)} of scenario time; "
                                    f"the partial record is in {out} (not finalized or judged)")
        if result.get("client_error_count"):
            run.warnings.append(f"{result['client_error_count']} client(s) ended with an error, e.g. "
                                f"{result['client_errors'][0]}")
        writer.meta({
            "origin_unix": run.origin_unix, "wall_time_s": round(time.monotonic() - wall0, 3),
            "cpu_time_s": round(time.process_time() - cpu0, 3), "end_s": scenario.duration,
            "warnings": run.warnings, "self_check": {"load_generator_bottleneck": False, "bottleneck_reasons": [],
                                                     "clock": "virtual", "fds_max": result["self_check"]["fds_max"]},
            "processing": {},
            "topology": {"groups": plan.groups, "workers": 0, "proxies": dict(run.proxies.listen),
                         "server_pids": [], "server_restarts": max(0, run.server.generation - 1),
                         "target": None, "toxiproxy_url": None, "fleet_bound_by_fds": bound},
            "heartbeat": {"interval_s": scenario.system.heartbeat.interval, "pings": run.server.pings},
            "plan_sha256": plan_digest(plan),
            "counts": {"events": events, "sent": sent, "spike_clients": sum(c.spike for c in plan.clients)},
            "faults_applied": run.applier.log,
        })
        return out
    except BaseException as exc:
        run.warnings.append(f"run aborted: {type(exc).__name__}: {exc}")
        writer.meta({"warnings": run.warnings, "wall_time_s": round(time.monotonic() - wall0, 3)})
        raise
    finally:
        try:
            leftovers = asyncio.all_tasks(loop)  # an interrupted fleet's helpers: ended, not destroyed pending
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.close()
        finally:
            writer.close()
            shutil.rmtree(run.tmp, ignore_errors=True)
        for w in run.warnings:
            print(f"warning: {w}", file=sys.stderr)

