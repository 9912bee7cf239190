"""Applying a planned fault step to the running system.

Network faults act on the targeted groups' proxies through the Toxiproxy API;
system faults act on the server (restart, admin API); a load spike is the fleet's
business (its extra clients are in the plan) and needs nothing here. Every
duration a toxic takes is scaled to wall time, and so is bandwidth (the same bytes
must pass in 1/factor of the time).

Semantics, chosen to be distinct and faithful:
- `partition`: a blackhole — `timeout` toxics with timeout 0 on both streams of the
  group's WebSocket and HTTP proxies: bytes stop, nothing is reset, so both ends
  only learn of it from their own timeouts (heartbeats, connect timeouts).
- `proxy_down`: the proxies are disabled: live connections are cut and new ones
  refused, as when a load balancer goes away.
- `latency`, `bandwidth`, `slicer`, `reset_peer`, `timeout`: the Toxiproxy toxics of
  those names with the scenario's attributes.
- `ws_close {code, reason}`, `ws_drop_pings`: the embedded proxy's WebSocket toxics.
- `server_restart {mode: graceful|crash}`: SIGTERM (1012 to every socket) or
  SIGKILL; restarted on the same db and ports after `for` (default at once). On the
  virtual clock the server object is shut down (crash: sockets dropped without a close
  frame) and a new one started after `for`, default `system.restart_downtime`.
- `auth_outage`: `/admin/auth-outage` on, off when it ends.
- `token_expiry`: `/admin/expire-tokens` for every user, or for the target clients.

Where the parts live decides how a step reaches them (`on_loop`): on the wall clock they are
other processes behind blocking clients (toxiproxy-python, requests), called from worker
threads; on the virtual clock they are objects on this event loop, called (and awaited) here,
since a thread's work would take no scenario time.
"""
from __future__ import annotations

import asyncio
import inspect
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import requests

from harness.emulate.plan import NETWORK_FAULTS, Step
from formats.faults import lifted
from formats.scenario import RealizedFault
from harness.emulate.timescale import TimeScale
from system.units import parse_duration


#: proxies changed at once when a fault starts or ends (each change is one API call)
PARALLEL_API_CALLS = 16


def _ms(value: Any, scale: TimeScale) -> int:
    """A scenario duration ("800ms", 0.8) → wall milliseconds for a toxic attribute."""
    return max(0, round(scale.to_wall(parse_duration(value)) * 1000))


def toxics_for(index: int, fault: RealizedFault, scale: TimeScale) -> list[dict[str, Any]]:
    """The toxics (Toxiproxy JSON bodies, without the proxy) network fault number `index` adds."""
    p = fault.params
    name = f"f{index}-{fault.kind}"
    toxicity = float(p.get("toxicity", 1.0))

    def tox(kind: str, stream: str, attributes: dict[str, Any]) -> dict[str, Any]:
        return {"name": f"{name}-{stream}", "type": kind, "stream": stream,
                "toxicity": toxicity, "attributes": attributes}

    if fault.kind == "partition":
        return [tox("timeout", s, {"timeout": 0}) for s in ("downstream", "upstream")]
    streams = ("downstream", "upstream") if p.get("stream") == "both" else (p.get("stream") or "downstream",)
    if fault.kind == "latency":
        attrs = {"latency": _ms(p.get("latency", 0), scale), "jitter": _ms(p.get("jitter", 0), scale)}
        return [tox("latency", s, attrs) for s in streams]
    if fault.kind == "bandwidth":
        rate_kb = float(p.get("rate", 0))  # KB/s in scenario time → more per wall second
        return [tox("bandwidth", s, {"rate": max(1, round(rate_kb * scale.factor))}) for s in streams]
    if fault.kind == "slicer":
        attrs = {"average_size": int(p.get("average_size", 64)),
                 "size_variation": int(p.get("size_variation", 32)),
                 "delay": max(0, round(scale.to_wall(parse_duration(p.get("delay", 0.01))) * 1e6))}
        return [tox("slicer", s, attrs) for s in streams]
    if fault.kind in ("reset_peer", "timeout"):
        return [tox(fault.kind, s, {"timeout": _ms(p.get("timeout", 0), scale)}) for s in streams]
    if fault.kind == "ws_close":
        return [tox("ws_close", "downstream",
                    {"code": int(p.get("code", 1006)), "reason": str(p.get("reason", ""))})]
    if fault.kind == "ws_drop_pings":
        return [tox("ws_drop_pings", s, {}) for s in ("downstream", "upstream")]
    return []


@dataclass
class FaultApplier:
    """Executes timeline steps (`apply_async` on the run's loop; `apply` from synchronous code).

    `groups_of` maps a network fault's index to the proxy groups holding its target
    clients; `user_of` maps a client id to the user its tokens were issued to. `server` is a
    `ServerControl` (wall) or an object on this loop with async `start()`/`stop(crash)`;
    `admin(url, key, path, body)` posts to the admin API (blocking, or a coroutine when
    `on_loop`); `restart_downtime` is how long a restart without `for` stays down on the loop."""

    scale: TimeScale
    server: Any
    proxies: Any
    http_url: Callable[[], str]
    admin_key: str
    user_of: Callable[[str], str]
    groups_of: dict[int, tuple[int, ...]] = field(default_factory=dict)
    in_force: dict[int, Step] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
    on_loop: bool = False
    admin: Callable[..., Any] | None = None
    restart_downtime: float = 0.0
    _pool: ThreadPoolExecutor | None = field(default=None, repr=False)

    def apply(self, step: Step) -> None:
        asyncio.run(self.apply_async(step))

    async def apply_async(self, step: Step) -> None:
        if self.on_loop:
            return await self._apply(step)
        with ThreadPoolExecutor(max_workers=PARALLEL_API_CALLS) as self._pool:
            return await self._apply(step)

    async def _apply(self, step: Step) -> None:
        f, start = step.fault, step.action == "start"
        await HANDLERS[f.kind](self, step.index, f, start)
        if start and f.for_ and lifted(f.kind):
            self.in_force[step.index] = step
        else:
            self.in_force.pop(step.index, None)
        self.log.append({"index": step.index, "kind": f.kind, "action": step.action})

    async def _proxy_down(self, index: int, f: RealizedFault, start: bool) -> None:
        await self._enable(index, f, enabled=not start)

    async def _server_restart(self, index: int, f: RealizedFault, start: bool) -> None:
        await self._restart(f, start)

    async def _auth_outage(self, index: int, f: RealizedFault, start: bool) -> None:
        await self._admin("/admin/auth-outage", {"enabled": start})

    async def _token_expiry(self, index: int, f: RealizedFault, start: bool) -> None:
        if not start:
            return
        if f.targets is None:
            await self._admin("/admin/expire-tokens", {})
        else:
            for cid in f.targets:
                await self._admin("/admin/expire-tokens", {"user": self.user_of(cid)})

    async def _load_spike(self, index: int, f: RealizedFault, start: bool) -> None:
        """The fleet runs a spike's clients (they are in the plan); nothing to apply."""

    def labels(self) -> list[str]:
        """The faults in force, for the live view."""
        return [s.fault.kind for s in self.in_force.values()]

    def _require_proxies(self, f: RealizedFault) -> Any:
        if self.proxies is None:
            raise RuntimeError(f"fault {f.kind!r} needs proxies, and this run has none")
        return self.proxies

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` where the parts live: here on the loop (awaiting what it returns), else in a
        worker thread of the step's pool."""
        if self.on_loop:
            result = fn(*args)
            return await result if inspect.isawaitable(result) else result
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _toxics(self, index: int, f: RealizedFault, start: bool) -> None:
        """A network fault: its toxics on the proxies of the groups it targets."""
        bodies = toxics_for(index, f, self.scale)

        def change(proxy: Any) -> None:
            for body in bodies:
                if start:
                    proxy.add_toxic(**body)
                else:
                    proxy.destroy_toxic(body["name"])

        await self._each_proxy(index, f, change, ws_only=f.kind.startswith("ws_"))

    async def _enable(self, index: int, f: RealizedFault, enabled: bool) -> None:
        await self._each_proxy(index, f, lambda proxy: proxy.enable() if enabled else proxy.disable())

    async def _each_proxy(self, index: int, f: RealizedFault, change: Callable[[Any], Any],
                          ws_only: bool = False) -> None:
        """`change` every proxy of the fault's groups at once: a fault hits all its targets at one
        moment, so the groups are not changed one after another (one API round trip each, which
        at a high time scale spread a partition's heal over seconds of scenario time and smeared
        the reconnect herd it starts). One listing of the proxies, then the changes in parallel."""
        px = self._require_proxies(f)
        names = [n for g in self.groups_of.get(index, ()) for n in px.names(g)[:1 if ws_only else 2]]
        listed = await self._call(px.client.proxies)
        proxies = [listed[n] for n in names if n in listed]
        done = await asyncio.gather(*(self._call(change, proxy) for proxy in proxies), return_exceptions=True)
        for result in done:  # the first failure is raised, after every change was tried
            if isinstance(result, BaseException):
                raise result

    async def _restart(self, f: RealizedFault, start: bool) -> None:
        if self.server is None:
            raise RuntimeError("server_restart needs a server started by the harness (not --target)")
        if start:
            await self._call(lambda: self.server.stop(crash=f.params.get("mode", "graceful") == "crash"))
            if not f.for_:
                if self.on_loop and self.restart_downtime > 0:
                    await asyncio.sleep(self.restart_downtime)
                await self._call(self.server.start)
        else:
            await self._call(self.server.start)

    async def _admin(self, path: str, body: dict[str, Any]) -> None:
        await self._call(self.admin or post_admin, self.http_url(), self.admin_key, path, body)

    def lift_all(self) -> None:
        """End every fault still in force (the run is over): no toxic outlives the run."""
        for step in list(self.in_force.values()):
            try:
                self.apply(Step(step.at, "stop", step.index, step.fault))
            except Exception:
                pass


def post_admin(http_url: str, admin_key: str, path: str, body: dict[str, Any]) -> None:
    """One admin API call, blocking (the wall clock's server is another process)."""
    r = requests.post(http_url + path, json=body, headers={"X-Admin-Key": admin_key}, timeout=10)
    if r.status_code >= 400:
        raise RuntimeError(f"admin {path} {body} → HTTP {r.status_code}: {r.text[:200]}")


async def run_timeline(steps: list[Step], applier: FaultApplier, clock: Callable[[], float],
                       stop: asyncio.Event, on_error: Callable[[Step, Exception], None],
                       on_applied: Callable[[Step, float, float], None] = lambda step, began, took: None) -> None:
    """Apply each step when the scenario clock reaches it (bounded by `stop`); `on_applied`
    hears when each began and how long it took (scenario seconds)."""
    for step in steps:
        wait = applier.scale.to_wall(step.at - clock())
        if wait > 0:
            try:
                await asyncio.wait_for(stop.wait(), wait)
                return
            except asyncio.TimeoutError:
                pass
        if stop.is_set():
            return
        began = clock()
        try:
            await applier.apply_async(step)
        except Exception as exc:  # a fault that could not be applied is a warning, not a crash
            on_error(step, exc)
        else:
            on_applied(step, began, clock() - began)


#: what the emulation does for each fault kind of the registry (`formats.faults`)
HANDLERS: dict[str, Callable[[FaultApplier, int, RealizedFault, bool], Awaitable[None]]] = {
    **{kind: FaultApplier._toxics for kind in NETWORK_FAULTS - {"proxy_down"}},
    "proxy_down": FaultApplier._proxy_down,
    "server_restart": FaultApplier._server_restart,
    "auth_outage": FaultApplier._auth_outage,
    "token_expiry": FaultApplier._token_expiry,
    "load_spike": FaultApplier._load_spike,
}
