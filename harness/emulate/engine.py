"""`emulate(scenario, out_dir)`: run a scenario against the real system and write its raw run record.

The order of a run: draw the plan from the seed; start the server and the proxy
(or use `target` / `toxiproxy_url`); create one pair of proxies per client group;
measure handshake and agent time through them (distortion warnings); spawn the
workers and start them on one shared origin; then, until the scenario ends, apply
the fault timeline, scrape `/metrics`, and show the live view. Afterwards: merge
the workers' events, fetch the server's delivery log (`sent.csv`), write
`faults.json` and `meta.json` with the self-checks, and tear everything down —
always, whatever failed.

Scaling: every duration given to the server (token TTL, refresh TTL, heartbeat,
expiry grace) is divided by `time_scale`, the handshake rate multiplied by it; the
clients' policy runs on a clock in scenario seconds, so their records need no
conversion; the server's delivery log (unix seconds) is converted here. Heartbeats
are floored at `HEARTBEAT_FLOOR_WALL` (a 30 s heartbeat at ×720 would be a ping
every 42 ms per socket): the warning says so when the floor bites.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import aiohttp
import psutil

from harness.emulate import probe
from harness.emulate.faults import FaultApplier, run_timeline
from harness.emulate.fleet import Fleet, WorkerSpec, fleet_bound, split, worker_count
from harness.emulate.host import fd_limit, host_facts
from harness.emulate.live import view_of
from harness.emulate.plan import Plan, Step, make_plan, timeline
from harness.emulate.procs import ManagedProcess
from harness.emulate.scrape import scrape_until
from harness.emulate.selfcheck import CpuShare, merge as merge_self_check
from harness.emulate.timescale import TimeScale
from harness.emulate.topology import (
    Endpoints, ProxyControl, ServerControl, ServerOptions, start_proxy_process,
)
from system.errors import UsageError
from formats.record import RecordWriter
from formats.record.writer import tool_version
from formats.scenario import Scenario, draws
from formats.scenario.clients import client_config
from formats.scenario.server import server_profile
from system.client.credentials import ProvisionError, conversation_id, provision_once
from system.units import format_duration

#: the shortest heartbeat interval/timeout handed to the server, in wall seconds
HEARTBEAT_FLOOR_WALL = 0.25
#: how long a handshake or token request may take before the client calls it failed (wall floor):
#: below this a busy 2-core machine, not the scenario, decides what fails
OPEN_TIMEOUT_FLOOR_WALL = 2.0
#: the shortest grace the server gives an expired token for the in-band refresh to arrive (wall)
EXPIRY_GRACE_FLOOR_WALL = 0.25
#: a restart whose downtime (scenario seconds) exceeds this gets a warning
RESTART_WARN_S = 30.0
#: a worker that began later than this after the origin (scenario seconds, or this share of the
#: run) gets a warning: the clients it planned before then started late
LATE_START_S, LATE_START_SHARE = 1.0, 0.01
#: scrapes per run (at most one per wall second)
SCRAPES_PER_RUN = 120

Progress = Callable[[dict[str, Any]], None]


def server_options(scenario: Scenario, scale: TimeScale, db: Path) -> tuple[ServerOptions, list[str]]:
    """The server's flags for this scenario in wall time (`formats.scenario.server.server_profile`,
    scaled), and warnings about floors that bit."""
    from system.server.config import ServerConfig

    profile, warnings = server_profile(scenario), []
    hb = []
    for name, value in (("interval", profile.heartbeat_interval), ("timeout", profile.heartbeat_timeout)):
        wall = scale.to_wall(value) if value else None
        if wall is not None and wall < HEARTBEAT_FLOOR_WALL:
            warnings.append(f"system.heartbeat.{name} {value:g}s at time_scale {scale.factor:g} would be "
                            f"{wall * 1000:.0f}ms wall; floored at {HEARTBEAT_FLOOR_WALL * 1000:.0f}ms "
                            f"(= {scale.to_scenario(HEARTBEAT_FLOOR_WALL):g}s of scenario time)")
            wall = HEARTBEAT_FLOOR_WALL
        hb.append(wall)
    grace = scale.to_wall(profile.expiry_grace)
    if profile.live_expiry and grace < EXPIRY_GRACE_FLOOR_WALL:
        warnings.append(f"live expiry grace {profile.expiry_grace:g}s at time_scale {scale.factor:g} would be "
                        f"{grace * 1000:.0f}ms wall; floored at {EXPIRY_GRACE_FLOOR_WALL * 1000:.0f}ms")
        grace = EXPIRY_GRACE_FLOOR_WALL
    rate = profile.handshake_rate
    return ServerOptions(
        legacy_traits=tuple(sorted(profile.traits)),
        token_ttl=scale.to_wall(profile.token_ttl),
        refresh_ttl=scale.to_wall(profile.refresh_ttl),
        heartbeat_interval=hb[0], heartbeat_timeout=hb[1],
        live_expiry=profile.live_expiry,
        expiry_grace=grace,
        max_connections=profile.max_connections,
        handshake_rate=rate * scale.factor if rate else None,
        # the server's per-user rate is wall time: scaled like every other rate; every emulated
        # client connects from 127.0.0.1, so a per-address limit would throttle the whole fleet as one
        auth_user_rate=ServerConfig.auth_user_rate * scale.factor,
        auth_address_limit=False,
        db=db,
    ), warnings


def parse_target(target: str) -> Endpoints:
    """`--target`: "WS_URL,HTTP_URL", or one HTTP URL whose host also serves the WebSocket."""
    parts = [p.strip().rstrip("/") for p in target.split(",") if p.strip()]
    if len(parts) == 2:
        ws, http = sorted(parts, key=lambda u: not u.startswith("ws"))
        return Endpoints(ws, http)
    if len(parts) == 1 and parts[0].startswith("http"):
        return Endpoints("ws" + parts[0][4:], parts[0])
    raise UsageError(f"--target {target!r}: expected an http:// URL or 'ws://HOST:PORT,http://HOST:PORT'")


class _Run:
    """One emulation: owns every process and file it starts, so teardown is one place."""

    def __init__(self, scenario: Scenario, out_dir: Path, target: str | None, toxiproxy_url: str | None,
                 progress: Progress | None, cluster: str | None = None, live: bool | None = None) -> None:
        self.scenario = scenario
        self.live = live
        self.out = Path(out_dir)
        self.target = target
        self.toxiproxy_url = toxiproxy_url
        self.cluster = cluster
        self.progress = progress
        self.scale = TimeScale(scenario.time_scale)
        self.warnings: list[str] = []
        self.logs = self.out / "logs"
        self.tmp = Path(tempfile.mkdtemp(prefix="stormbench-emulate-"))
        self.server: ServerControl | None = None
        self.proxy_proc: ManagedProcess | None = None
        self.proxies: ProxyControl | None = None
        self.fleet: Fleet | None = None
        self.applier: FaultApplier | None = None
        self.endpoints: Endpoints | None = None
        self.admin_key = os.environ.get("STORMBENCH_ADMIN_KEY", "")
        self.origin_unix = 0.0
        self.host_cpu: list[float] = []
        self.cpu_share = CpuShare()
        self.fault_events: list[dict] = []
        self.conversations: dict[str, str] = {}  # client id -> its conversation

    # ---- set-up ----

    def plan(self) -> Plan:
        limit = fd_limit()
        cfg = client_config(self.scenario)
        per_client = 1 if cfg.fixes.single_writer else 2
        self.bound = fleet_bound(limit, per_client)
        plan = make_plan(self.scenario)
        if plan.peak_clients > self.bound:
            base = max(1, self.scenario.fleet.clients - (plan.peak_clients - self.bound))
            self.warnings.append(
                f"fleet capped at {base} base clients (asked {self.scenario.fleet.clients}, peak "
                f"{plan.peak_clients}): the proxy holds 2 descriptors per connection, {per_client} connection(s) "
                f"per client, within the {limit} open-files limit")
            plan = make_plan(self.scenario, clients=base)
        self.config = cfg
        return plan

    def start_system(self, plan: Plan) -> None:
        if self.target:
            self.endpoints = parse_target(self.target)
            if not self.admin_key:
                raise UsageError("--target: set STORMBENCH_ADMIN_KEY to the server's admin key, which creates "
                                 "the fleet's users (a token needs a user's secret)")
        else:
            opts, warns = server_options(self.scenario, self.scale, self.tmp / "server.db")
            self.warnings += warns
            self.admin_key = opts.admin_key
            self.server = ServerControl(opts, self.logs)
            self.endpoints = self.server.start()
        api_url = self.toxiproxy_url
        if api_url is None:
            self.proxy_proc = start_proxy_process(self.logs, self.scenario.seed)
            api_url = self.proxy_proc.ready["api_url"]
        self.proxies = ProxyControl(api_url, plan.groups)
        self.proxies.create(self.endpoints)
        self.applier = FaultApplier(
            scale=self.scale, server=self.server, proxies=self.proxies,
            http_url=lambda: self.endpoints.http_url, admin_key=self.admin_key,
            user_of=lambda cid: cid, groups_of=dict(plan.group_of_fault))

    async def provision(self, users: list[str]) -> dict[str, str]:
        """Create `users` on the server (the direct URL, not through the proxy): user -> secret."""
        assert self.endpoints is not None
        try:
            return await provision_once(self.endpoints.http_url, self.admin_key, users)
        except ProvisionError as exc:
            raise UsageError(f"STORMBENCH_ADMIN_KEY: {exc}") from None

    async def measure(self) -> dict[str, Any]:
        assert self.proxies is not None and self.endpoints is not None
        secret = (await self.provision([probe.USER]))[probe.USER]
        result = await probe.measure(self.proxies.group_endpoints(0, self.endpoints), secret)
        sysspec = self.scenario.system
        constants = {"token_ttl": sysspec.token_ttl, "heartbeat.interval": sysspec.heartbeat.interval,
                     "heartbeat.timeout": sysspec.heartbeat.timeout,
                     "client.base_delay": self.config.base_delay,
                     "client.restart_window": self.config.restart_window}
        processing = {k: v for k, v in (("handshake", result["handshake_s"]),
                                        ("agent reply", result["agent_reply_s"])) if v is not None}
        self.warnings += self.scale.distortion_warnings(constants, processing)
        self.warnings += [f"probe: {e}" for e in result["errors"]]
        return result

    def spawn_fleet(self, plan: Plan) -> None:
        assert self.proxies is not None and self.endpoints is not None
        n = worker_count(len(plan.clients))
        urls = {}
        for g in range(plan.groups):
            ep = self.proxies.group_endpoints(g, self.endpoints)
            urls[g] = (ep.ws_url, ep.http_url)
        open_timeout = max(OPEN_TIMEOUT_FLOOR_WALL, self.scale.to_wall(10.0))
        secrets = asyncio.run(self.provision([p.client_id for p in plan.clients]))
        rng = draws.stream(self.scenario.seed, "conversations")
        self.conversations = {p.client_id: conversation_id(p.client_id, rng) for p in plan.clients}
        specs = [WorkerSpec(index=i, clients=share, urls=urls, config=self.config,
                            time_scale=self.scale.factor, duration=self.scenario.duration,
                            events_path=self.tmp / f"events-{i}.jsonl", open_timeout_wall=open_timeout,
                            http_timeout_wall=open_timeout,
                            secrets={p.client_id: secrets[p.client_id] for p in share},
                            conversations={p.client_id: self.conversations[p.client_id] for p in share})
                 for i, share in enumerate(split(list(plan.clients), n))]
        if self.cluster:  # the same shares, re-split over the cluster's workers
            from harness.emulate.remote import RemoteFleet

            self.fleet = RemoteFleet(specs, self.cluster, self.tmp)
        else:
            self.fleet = Fleet(specs)
        self.fleet.start()

    # ---- the run ----

    def clock(self) -> float:
        return self.scale.to_scenario(time.time() - self.origin_unix)

    def _own_pids(self) -> list[int]:
        """The emulation's processes now: this one, the workers, the server, the proxy."""
        pids = [os.getpid(), *(p.pid for p in (self.fleet.procs if self.fleet else ()) if p.pid)]
        for proc in (self.server.proc if self.server else None, self.proxy_proc):
            if proc is not None and proc.pid:
                pids.append(proc.pid)
        return pids

    async def drive(self, plan: Plan, writer: RecordWriter) -> None:
        assert self.fleet is not None and self.applier is not None
        stop = asyncio.Event()
        steps = timeline(plan.faults, self.scenario.duration)

        def on_fault_error(step: Step, exc: Exception) -> None:
            self.warnings.append(f"fault {step.index} ({step.fault.kind}) {step.action} at "
                                 f"{step.at:g}s failed: {exc}")

        view = view_of(self.scenario, self.progress, self.warnings, self.live)

        def on_applied(step: Step, began: float, took: float) -> None:
            if step.action == "start":
                view.saw(step.fault.kind)
            self.fault_events.append({"t": began, "client": "harness", "kind": f"fault_{step.action}",
                                      "fault": step.fault.kind, "index": step.index,
                                      "applied_in_s": round(took, 3)})
            if step.fault.kind == "server_restart" and took > RESTART_WARN_S:
                self.warnings.append(
                    f"server restart at {step.at:g}s took {self.scale.to_wall(took):.1f}s wall = {took:.0f}s of "
                    f"scenario time at ×{self.scale.factor:g}: gates on recovery shortly after it measure "
                    f"this machine's restart time, not the clients")

        self.origin_unix = time.time() + self.fleet.start_lead_s
        self.fleet.go(self.origin_unix)
        wall_end = self.origin_unix + self.scale.to_wall(self.scenario.duration)
        faults = asyncio.create_task(run_timeline(steps, self.applier, self.clock, stop, on_fault_error, on_applied))
        scraper = asyncio.create_task(self._scrape(writer, stop, wall_end))
        psutil.cpu_percent(None)
        try:
            with view:
                while not self.fleet.finished and time.time() < wall_end + 30.0:
                    await asyncio.to_thread(self.fleet.poll, 0.25)
                    tally = self.fleet.tally()
                    clock = min(self.clock(), self.scenario.duration)
                    self.host_cpu.append(psutil.cpu_percent(None))
                    if clock < self.scenario.duration:
                        self.cpu_share.sample(self._own_pids(), time.monotonic())
                    if self.progress is not None:
                        self.progress({"t": clock, "faults": self.applier.labels(), **tally.snapshot()})
                    else:
                        view.update(clock, tally, self.applier.labels())
        finally:
            stop.set()
            await asyncio.gather(faults, scraper, return_exceptions=True)
        self.fleet.join(timeout=30.0)
        for index, why in sorted(self.fleet.failures.items()):
            self.warnings.append(f"worker {index}: {why}")
        for name, proc in (("server", self.server.proc if self.server else None), ("proxy", self.proxy_proc)):
            if proc is not None and not proc.alive():
                self.warnings.append(f"the {name} process exited during the run (code {proc.proc.returncode}); "
                                     f"see {proc.log_path}")

    async def _scrape(self, writer: RecordWriter, stop: asyncio.Event, wall_end: float) -> None:
        every = max(1.0, (wall_end - self.origin_unix) / SCRAPES_PER_RUN)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            await scrape_until(http, lambda: f"{self.endpoints.http_url}/metrics", writer, self.clock, every,
                               lambda: time.time() <= wall_end + every, stop, self._with_memory)

    def _with_memory(self, samples: list[dict]) -> list[dict]:
        """Add the server process's resident memory when its own exposition lacks it (a
        per-server registry has no process collector), so the leak gate can be judged."""
        proc = self.server.proc if self.server is not None else None
        if proc is None or proc.pid is None or any(s["name"] == "process_resident_memory_bytes" for s in samples):
            return samples
        try:
            rss = psutil.Process(proc.pid).memory_info().rss
        except psutil.Error:
            return samples
        return samples + [{"name": "process_resident_memory_bytes",
                           "labels": {"source": "harness", "pid": str(proc.pid)}, "value": float(rss)}]

    # ---- results ----

    def merge_events(self, writer: RecordWriter) -> int:
        return merge_events(writer, [s.events_path for s in self.fleet.specs] if self.fleet else [],
                            self.fault_events)

    def fetch_sent(self, writer: RecordWriter, conversations: set[str]) -> int:
        """The server's delivery log for the fleet's conversations (not the probe's), times
        converted from unix to scenario seconds."""
        import requests

        if not self.admin_key or self.endpoints is None:
            return 0
        try:
            r = requests.get(f"{self.endpoints.http_url}/admin/messages", headers={"X-Admin-Key": self.admin_key},
                             timeout=30)
            r.raise_for_status()
            messages = r.json()["messages"]
        except Exception as exc:
            self.warnings.append(f"sent.csv: could not fetch the server's delivery log: {exc}")
            return 0
        to_scenario = lambda t: round(self.scale.to_scenario(t - self.origin_unix), 3)  # noqa: E731
        sent = write_sent(writer, messages, conversations, to_scenario)
        try:  # the other direction: what the server received of what the clients typed
            r = requests.get(f"{self.endpoints.http_url}/admin/user-messages",
                             headers={"X-Admin-Key": self.admin_key}, timeout=30)
            r.raise_for_status()
            write_received(writer, r.json()["messages"], conversations, to_scenario)
        except Exception as exc:
            self.warnings.append(f"received.csv: could not fetch the server's user-message log: {exc}")
        return sent

    def salvage(self, writer: RecordWriter, plan: Plan | None) -> dict:
        """An aborted run keeps what it recorded: every worker is interrupted (Ctrl-C in a terminal
        already did) and writes its clients' records, which go to events.jsonl as in a whole run,
        with the server's delivery log if the server still answers."""
        if self.fleet is None or plan is None:
            return {}
        self.fleet.interrupt()
        self.fleet.stop()
        try:
            events = self.merge_events(writer)
        except (OSError, ValueError) as exc:  # a worker killed mid-write: keep what merged
            self.warnings.append(f"events.jsonl: could not merge every worker's records: {exc}")
            return {}
        return {"events": events, "sent": self.fetch_sent(writer, set(self.conversations.values()))}

    def teardown(self) -> None:
        if self.fleet is not None:
            self.fleet.stop()
        if self.applier is not None:
            self.applier.lift_all()
        if self.proxies is not None and self.toxiproxy_url is not None:
            try:
                self.proxies.destroy_all()  # a user's Toxiproxy keeps running: leave it clean
            except Exception:
                pass
        if self.proxy_proc is not None:
            self.proxy_proc.stop()
        if self.server is not None:
            self.server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def emulate(scenario: Scenario, out_dir: str | Path, *, target: str | None = None,
            toxiproxy_url: str | None = None, progress: Progress | None = None, cluster: str | None = None,
            on_system_ready: Callable[[Endpoints], None] | None = None,
            on_scenario_end: Callable[[float, float], None] | None = None, live: bool | None = None) -> Path:
    """Run `scenario` for real and write the raw run record into `out_dir` (README "Engines").

    `target`: an existing system ("ws://H:P,http://H:P" or its HTTP URL; admin key from
    STORMBENCH_ADMIN_KEY) instead of a `stormbench serve` subprocess; `toxiproxy_url`: a
    Toxiproxy server instead of the embedded proxy; `progress`: called with a snapshot
    dict about four times a second instead of the live terminal view; `live`: the view as a
    panel (True), as plain lines (False), or as a panel only on a TTY (None); `cluster`: a Dask
    scheduler whose workers run the client fleet (`harness.emulate.remote`) instead of worker
    processes here.

    Hooks, so an observer (a Prometheus scraping the server) can watch the system under test:
    `on_system_ready(endpoints)` once the server answers, before any client starts (a restart
    fault brings the server back on the same ports); `on_scenario_end(origin_unix, end_unix)`
    when the scenario's time is over (scenario second 0 and its end, in unix seconds), while
    the system still runs. An exception from a hook aborts the run like any other."""
    if scenario.virtual:
        refuse_on_virtual_clock(target=target, toxiproxy_url=toxiproxy_url,
                                prometheus=on_system_ready is not None or on_scenario_end is not None)
        from harness.emulate.virtual import emulate_virtual

        return emulate_virtual(scenario, out_dir, progress=progress, live=live)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(scenario, out, target, toxiproxy_url, progress, cluster, live)
    started = time.time()
    wall0 = time.monotonic()
    writer = RecordWriter(out)
    plan: Plan | None = None
    try:
        writer.scenario(scenario)
        plan = run.plan()
        writer.faults(list(plan.faults))
        writer.meta({"engine": "emulate", "stormbench_version": tool_version(), "seed": scenario.seed,
                     "time_scale": scenario.time_scale, "clients": len([c for c in plan.clients if not c.spike]),
                     "started_at": datetime.fromtimestamp(started, timezone.utc).isoformat(),
                     "host": host_facts(), "calibration": None,
                     "clock": {"kind": "wall", "capacity_measured": True}})
        run.start_system(plan)
        if on_system_ready is not None:
            on_system_ready(run.endpoints)
        measured = asyncio.run(run.measure())
        run.spawn_fleet(plan)
        asyncio.run(run.drive(plan, writer))
        writer.meta({"origin_unix": run.origin_unix})
        if on_scenario_end is not None:
            on_scenario_end(run.origin_unix, run.origin_unix + run.scale.to_wall(scenario.duration))
        events = run.merge_events(writer)
        sent = run.fetch_sent(writer, set(run.conversations.values()))
        results = run.fleet.results if run.fleet else {}
        client_errors = sum(r.get("client_error_count", 0) for r in results.values())
        if client_errors:
            run.warnings.append(f"{client_errors} client(s) ended with an error, e.g. "
                                f"{next(e for r in results.values() for e in r.get('client_errors', []))}")
        late = {i: r["self_check"].get("started_late_s") or 0.0 for i, r in results.items()}
        if late and max(late.values()) > max(LATE_START_S, LATE_START_SHARE * scenario.duration):
            i = max(late, key=late.get)
            run.warnings.append(
                f"worker {i} began {format_duration(late[i])} of scenario time after the run's origin "
                f"({run.scale.to_wall(late[i]):.1f}s wall at ×{run.scale.factor:g}): its clients planned before then "
                f"started late (a busy machine; a lower time_scale leaves more room)")
        self_check = merge_self_check([r["self_check"] for r in results.values()], fd_limit=fd_limit(),
                                      fleet_bound=run.bound, host_cpu=run.host_cpu,
                                      cpu_share=run.cpu_share.report())
        if self_check["load_generator_bottleneck"]:
            run.warnings.append("the load generator was the bottleneck: " + "; ".join(self_check["bottleneck_reasons"]))
        writer.meta({
            "wall_time_s": round(time.monotonic() - wall0, 3), "end_s": scenario.duration,
            "warnings": run.warnings, "self_check": self_check, "processing": measured,
            "topology": {"groups": plan.groups, "workers": len(run.fleet.specs) if run.fleet else 0,
                         "proxies": dict(run.proxies.listen) if run.proxies else {},
                         "server_pids": run.server.pids if run.server else [],
                         "server_restarts": max(0, (run.server.generation if run.server else 1) - 1),
                         "target": target, "toxiproxy_url": toxiproxy_url, "cluster": cluster,
                         "fleet_bound_by_fds": run.bound},
            "plan_sha256": plan_digest(plan),
            "counts": {"events": events, "sent": sent, "spike_clients": sum(c.spike for c in plan.clients)},
            "faults_applied": run.applier.log if run.applier else [],
        })
        return out
    except BaseException as exc:
        run.warnings.append(f"run aborted: {type(exc).__name__}: {exc}")
        kept = run.salvage(writer, plan)
        writer.meta({"warnings": run.warnings, "wall_time_s": round(time.monotonic() - wall0, 3),
                     **({"counts": kept} if kept else {})})
        raise
    finally:
        try:
            run.teardown()
        finally:
            writer.close()
        for w in run.warnings:
            print(f"warning: {w}", file=sys.stderr)


def merge_events(writer: RecordWriter, paths: list[Path], fault_events: list[dict]) -> int:
    """Merge the clients' time-sorted record files and the harness's fault events into events.jsonl."""
    import heapq
    import json

    def lines(path: Path):
        if path.exists():
            with open(path, encoding="utf-8") as f:
                for line in f:
                    yield json.loads(line)

    n = 0
    for rec in heapq.merge(*(lines(p) for p in paths), iter(fault_events), key=lambda r: (r["t"], r["client"])):
        writer.event(rec)
        n += 1
    return n


def write_sent(writer: RecordWriter, messages: list[dict], conversations: set[str],
               to_scenario: Callable[[float], float]) -> int:
    """The server's delivery log for the fleet's conversations (not the probe's) into sent.csv,
    its times (the server's clock, unix seconds) converted by `to_scenario`."""
    messages = [m for m in messages if m["conversation_id"] in conversations]
    for m in sorted(messages, key=lambda m: (m["t"], m["conversation_id"], m["seq"])):
        writer.sent(m["conversation_id"], m["id"], m["seq"], to_scenario(m["t"]))
    return len(messages)


def write_received(writer: RecordWriter, received: list[dict], conversations: set[str],
                   to_scenario: Callable[[float], float]) -> int:
    """The server's log of user messages received (the fleet's conversations) into received.csv."""
    received = [m for m in received if m["conversation_id"] in conversations]
    for m in received:
        writer.received(m["conversation_id"], m["id"], to_scenario(m["t"]), m["answered"])
    return len(received)


def refuse_on_virtual_clock(*, target: str | None = None, toxiproxy_url: str | None = None,
                            prometheus: bool = False) -> None:
    """What can not run on the virtual clock, refused before anything runs: each lives in another
    process, whose time is the wall's (it can not follow a loop that jumps over idle hours)."""
    why = [f"{flag}: {reason}" for flag, given, reason in (
        ("--target", target, "a running system keeps the wall clock"),
        ("--toxiproxy-url", toxiproxy_url, "a Toxiproxy server keeps the wall clock (the embedded proxy runs on the loop)"),
        ("--prometheus", prometheus, "a real Prometheus scrapes on the wall clock (the harness's in-loop scraper "
                                     "feeds the gates)"),
    ) if given]
    if why:
        raise UsageError("--clock virtual runs the server, proxy and clients in one process on a virtual clock; "
                         + "; ".join(why) + ". Use --clock wall with these.")


def plan_digest(plan: Plan) -> str:
    """A digest of every draw of the run (fault schedule, targets, arrivals, drops, offline
    periods, message times, each client's policy rng): equal seeds give equal digests."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(plan.fingerprint(), sort_keys=True).encode()).hexdigest()
