"""Every fault kind of the scenario timeline, as the model reads it.

One handler pair per kind of the registry (`formats.faults`), as `harness/emulate/faults.py`
has one for the emulation (what it does to the real system), in model terms: network faults act on the targeted clients' paths, system faults on the server, the
token service or the fleet.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from formats.faults import lifted
from system.server.lifecycle import Revocation


if TYPE_CHECKING:  # pragma: no cover
    from formats.scenario.model import Fault
    from sim.client import SimClient
    from sim.world import World

BANDWIDTH_FRAME_KB = 1.0  # a handshake or a chat frame is about one kilobyte on the wire


def _latency(f: "Fault") -> float:
    p = f.params
    return float(p.get("latency") or 0.0) + float(p.get("jitter") or 0.0) / 2


def schedule(world: "World", index: int, f: "Fault", targets: list["SimClient"]) -> None:
    """Start the fault at `f.at` and, when it lasts, lift it at its end (or the run's end)."""
    start, stop = KINDS[f.kind]
    env = world.env
    end = min(f.at + f.for_, world.duration) if f.for_ else None

    lifts = end is not None and lifted(f.kind)  # a spike's clients leave by themselves
    # while it holds, no client is calm (sim.client.SimClient.wake): an instantaneous kind holds
    # for no time, a restart without `for` for its own downtime (the server is then not up)
    holds = lifts or (end is None and stop is not _nothing and f.kind != "server_restart")

    def begin() -> None:
        world.wake_all()
        world.faults_holding += holds
        start(world, f, targets)
        world.fault_log.append({"index": index, "kind": f.kind, "action": "start", "t": env.now})

    def finish() -> None:
        world.wake_all()
        stop(world, f, targets)
        world.faults_holding -= 1
        if not world.faults_holding:
            world.rest_all()
        world.fault_log.append({"index": index, "kind": f.kind, "action": "stop", "t": env.now})

    env.call_in(f.at, begin)
    if lifts:
        env.call_in(end, finish)


def _each(fn: Callable[["SimClient"], None]) -> Callable[["World", "Fault", list["SimClient"]], None]:
    def apply(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
        for c in targets:
            fn(c)
    return apply


def _block(c: "SimClient", both_ways: bool = True) -> None:
    c.blocked += 1
    c.sealed += both_ways
    c.break_path()


def _unblock(c: "SimClient", both_ways: bool = True) -> None:
    c.blocked -= 1
    c.sealed -= both_ways
    c.heal_path()


def _both_ways(f: "Fault") -> bool:
    """Whether a blackhole toxic also stops what the client sends. The emulation puts a toxic on
    the scenario's `stream` (Toxiproxy's default: downstream only), and a downstream blackhole lets
    requests through: the server serves them (a refresh rotates the client's refresh token, an
    upgrade opens a socket) and only the answers are lost. A partition is both ways."""
    return f.kind == "partition" or f.params.get("stream") in ("upstream", "both")


def _latency_on(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    for c in targets:
        c.extra_latency += _latency(f)


def _latency_off(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    for c in targets:
        c.extra_latency = max(0.0, c.extra_latency - _latency(f))


def _bandwidth_delay(f: "Fault") -> float | None:
    rate = int(f.params.get("rate") or 0)
    return None if rate <= 0 else BANDWIDTH_FRAME_KB / rate


def _bandwidth_on(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    delay = _bandwidth_delay(f)
    for c in targets:
        if delay is None:
            _block(c, _both_ways(f))  # rate 0: nothing passes, a blackhole
        else:
            c.extra_latency += delay


def _bandwidth_off(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    delay = _bandwidth_delay(f)
    for c in targets:
        if delay is None:
            _unblock(c, _both_ways(f))
        else:
            c.extra_latency = max(0.0, c.extra_latency - delay)


def _slicer_on(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    for c in targets:
        c.extra_latency += float(f.params.get("delay") or 0.0)


def _slicer_off(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    for c in targets:
        c.extra_latency = max(0.0, c.extra_latency - float(f.params.get("delay") or 0.0))


def _reset_on(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    """reset_peer: every connection through the proxy is reset `timeout` after it exists."""
    delay = float(f.params.get("timeout") or 0.0)
    for c in targets:
        c.reset_after = delay
        for s in list(c.socks.values()):
            if s.client_open:
                world.env.call_in(delay, c.abort, s)


def _timeout_on(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    """timeout: bytes stop; with a timeout > 0 the proxy closes the connection after it."""
    delay = float(f.params.get("timeout") or 0.0)
    for c in targets:
        _block(c, _both_ways(f))
        if delay > 0:
            c.reset_after = delay
            for s in list(c.socks.values()):
                if s.client_open or s.server_open:
                    world.env.call_in(delay, c.abort, s)


def _timeout_off(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    for c in targets:
        c.reset_after = None
        _unblock(c, _both_ways(f))


def _reset_off(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    for c in targets:
        c.reset_after = None


def _proxy_down(c: "SimClient") -> None:
    c.refused += 1
    c.drop()


def _proxy_up(c: "SimClient") -> None:
    c.refused -= 1


def _ws_close_on(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    code = int(f.params.get("code") or 1006)
    for c in targets:
        c.close_code = code
        for s in list(c.socks.values()):
            if s.client_open and s.server_open:
                world.server.close(s, code, "closed by proxy", by_proxy=True)


def _ws_close_off(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    for c in targets:
        c.close_code = None


def _pings_on(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    for c in targets:
        c.pings_dropped += 1
        for s in list(c.socks.values()):
            if s.server_open:
                c.watch_pings(s)


def _pings_off(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    for c in targets:
        c.pings_dropped -= 1


def _restart_on(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    world.server.go_down(crash=f.params.get("mode", "graceful") == "crash")
    if not f.for_:
        world.env.call_in(world.cal.restart_downtime_s, world.server.come_up)


def _restart_off(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    world.server.come_up()


def _outage(on: bool) -> Callable[["World", "Fault", list["SimClient"]], None]:
    def apply(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
        world.tokens.outage = on
    return apply


def _token_expiry(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    if f.fraction >= 1.0:
        world.tokens.expire(None)
        world.server.expire_live(Revocation())
    else:
        users = [c.client_id for c in targets]
        world.tokens.expire(users)
        world.server.expire_live(Revocation(frozenset(users)))


def _load_spike(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    world.spike(f)


def _nothing(world: "World", f: "Fault", targets: list["SimClient"]) -> None:
    """An instantaneous fault has nothing to lift."""


_Apply = Callable[["World", "Fault", list["SimClient"]], None]
#: what the model does when each fault kind of the registry (`formats.faults`) starts and stops
KINDS: dict[str, tuple[_Apply, _Apply]] = {
    "partition": (_each(_block), _each(_unblock)),
    "latency": (_latency_on, _latency_off),
    "bandwidth": (_bandwidth_on, _bandwidth_off),
    "slicer": (_slicer_on, _slicer_off),
    "reset_peer": (_reset_on, _reset_off),
    "timeout": (_timeout_on, _timeout_off),
    "proxy_down": (_each(_proxy_down), _each(_proxy_up)),
    "server_restart": (_restart_on, _restart_off),
    "auth_outage": (_outage(True), _outage(False)),
    "token_expiry": (_token_expiry, _nothing),
    "load_spike": (_load_spike, _nothing),
    "ws_close": (_ws_close_on, _ws_close_off),
    "ws_drop_pings": (_pings_on, _pings_off),
}

