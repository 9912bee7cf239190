"""Everything random about an emulated run, drawn from the one seed before it starts (no IO).

The plan fixes which proxy group each client uses, when each client arrives and
leaves, when its network drops or goes offline, and which groups each fault hits.
Each draw comes from its own named stream (`random.Random(f"{seed}:{name}")`), so
adding a client or a fault never shifts another's draws, and two runs with the
same seed get the same plan (the tests compare them).

Network drops are a per-client Poisson process (mean gap `drops_every`): at each
drop the worker aborts that client's TCP connection without a close frame — what
a NAT rebinding or a Wi-Fi hand-over does — so the client sees code 1006 from the
network and the server sees a reset. Offline periods (mean gap `offline_every`,
length `offline_for`) tell the client's policy `NetworkOffline` and block its
socket until `NetworkOnline`, like a browser's offline event.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

#: faults that act on the network path of a fraction of clients (through their proxies)
NETWORK_FAULTS = frozenset({
    "partition", "latency", "bandwidth", "slicer", "reset_peer", "timeout",
    "proxy_down", "ws_close", "ws_drop_pings",
})
#: faults that act on the server or on the fleet as a whole
SYSTEM_FAULTS = frozenset({"server_restart", "auth_outage", "token_expiry", "load_spike"})
KNOWN_FAULTS = NETWORK_FAULTS | SYSTEM_FAULTS


def stream(seed: int, name: str) -> random.Random:
    """An independent random stream for one named purpose."""
    return random.Random(f"{seed}:{name}")


@dataclass(frozen=True)
class FaultSpec:
    """A fault as the scenario states it (scenario seconds)."""

    at: float
    kind: str
    duration: float | None = None
    fraction: float | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RealizedFault:
    """A fault with its targets drawn: proxy groups for network faults, client
    indices for token expiry, the extra clients for a load spike."""

    index: int
    at: float
    kind: str
    duration: float | None
    params: dict[str, Any]
    targets: tuple[int, ...]

    def record(self) -> dict[str, Any]:
        """The faults.json shape: `{"at","for","kind","params","targets"}`."""
        return {"at": self.at, "for": self.duration, "kind": self.kind,
                "params": dict(self.params), "targets": list(self.targets)}


@dataclass(frozen=True)
class ClientPlan:
    """One emulated client: its group, its lifetime and its network weather (scenario seconds)."""

    index: int
    client_id: str
    group: int
    start_at: float
    stop_at: float
    seed: int
    drops: tuple[float, ...] = ()
    offline: tuple[tuple[float, float], ...] = ()   # (at, for)
    spike: bool = False


@dataclass(frozen=True)
class Plan:
    clients: tuple[ClientPlan, ...]
    faults: tuple[RealizedFault, ...]
    groups: int

    def fingerprint(self) -> dict[str, Any]:
        """Everything drawn, as plain data: equal plans have equal fingerprints."""
        return {"clients": [asdict(c) for c in self.clients],
                "faults": [f.record() for f in self.faults], "groups": self.groups}


def pick(rng: random.Random, population: int, fraction: float | None) -> tuple[int, ...]:
    """round(fraction × population) distinct members, at least one when fraction > 0."""
    if fraction is None or fraction >= 1.0:
        return tuple(range(population))
    if fraction <= 0:
        return ()
    k = max(1, round(fraction * population))
    return tuple(sorted(rng.sample(range(population), k)))


def poisson_times(rng: random.Random, every: float | None, start: float, end: float,
                  limit: int = 10_000) -> list[float]:
    """Event times of a Poisson process with mean gap `every` in [start, end), at most `limit`."""
    if not every or every <= 0:
        return []
    out, t = [], start
    while len(out) < limit:
        t += rng.expovariate(1.0 / every)
        if t >= end:
            break
        out.append(t)
    return out


def offline_periods(rng: random.Random, every: float | None, length: float | None,
                    start: float, end: float) -> list[tuple[float, float]]:
    """Non-overlapping offline periods (at, for): gaps exponential with mean `every`."""
    if not every or not length or every <= 0 or length <= 0:
        return []
    out, t = [], start
    while len(out) < 10_000:
        t += rng.expovariate(1.0 / every)
        if t >= end:
            break
        out.append((t, min(length, end - t)))
        t += length
    return out


def make_plan(*, seed: int, clients: int, duration: float, groups: int, ramp: float = 0.0,
              drops_every: float | None = None, offline_every: float | None = None,
              offline_for: float | None = None, faults: list[FaultSpec] = ()) -> Plan:
    """Draw the whole run. Groups partition the base fleet round-robin in a seeded
    shuffled order, so a fault on k of n groups hits about k/n of the clients."""
    if groups < 1:
        raise ValueError("groups must be >= 1")
    order = list(range(clients))
    stream(seed, "groups").shuffle(order)
    group_of = {c: i % groups for i, c in enumerate(order)}
    arrivals = stream(seed, "arrivals")
    plans = []
    for i in range(clients):
        start = arrivals.uniform(0.0, ramp) if ramp > 0 else 0.0
        plans.append(_client(seed, i, group_of[i], start, duration, drops_every,
                             offline_every, offline_for))
    realized = []
    for n, f in enumerate(sorted(faults, key=lambda f: f.at)):
        if f.kind not in KNOWN_FAULTS:
            raise ValueError(f"faults[{n}].kind: unknown fault kind {f.kind!r}; expected one of "
                             f"{', '.join(sorted(KNOWN_FAULTS))}")
        rng = stream(seed, f"fault:{n}:{f.kind}")
        if f.kind in NETWORK_FAULTS:
            targets = pick(rng, groups, f.fraction)
        elif f.kind == "token_expiry":
            targets = pick(rng, clients, f.fraction) if f.fraction is not None and f.fraction < 1 else ()
        elif f.kind == "load_spike":
            extra = int(f.params.get("clients", 0))
            end = f.at + f.duration if f.duration else duration
            base = len(plans)
            for j in range(extra):
                idx = base + j
                start = f.at + rng.uniform(0.0, min(ramp, end - f.at) if ramp > 0 else 0.0)
                plans.append(_client(seed, idx, idx % groups, start, end, drops_every,
                                     offline_every, offline_for, spike=True))
            targets = tuple(range(base, base + extra))
        else:
            targets = ()
        realized.append(RealizedFault(n, f.at, f.kind, f.duration, dict(f.params), targets))
    return Plan(tuple(plans), tuple(realized), groups)


def _client(seed: int, i: int, group: int, start: float, stop: float, drops_every: float | None,
            offline_every: float | None, offline_for: float | None, spike: bool = False) -> ClientPlan:
    rng = stream(seed, f"client:{i}")
    client_seed = rng.getrandbits(63)
    drops = poisson_times(rng, drops_every, start, stop)
    off = offline_periods(rng, offline_every, offline_for, start, stop)
    return ClientPlan(i, f"c{i:05d}", group, start, stop, client_seed, tuple(drops), tuple(off), spike)


@dataclass(frozen=True)
class Step:
    """One thing the fault runner does at scenario time `at`."""

    at: float
    action: str          # "start" | "stop"
    fault: RealizedFault


def timeline(faults: tuple[RealizedFault, ...], duration: float) -> list[Step]:
    """Start and stop steps in time order; a fault with a `for` is lifted when it ends
    (or at the run's end), an instant fault (restart, token expiry) only starts."""
    steps = []
    for f in faults:
        if f.at > duration:
            continue
        steps.append(Step(f.at, "start", f))
        if f.duration and f.kind != "load_spike":
            steps.append(Step(min(f.at + f.duration, duration), "stop", f))
    steps.sort(key=lambda s: (s.at, 0 if s.action == "stop" else 1, s.fault.index))
    return steps
