"""Everything random about an emulated run, drawn from the one seed before it starts (no IO).

The draws are `formats.scenario.plan`'s (the simulation reads the very same plan):
arrivals, per-client drops, offline periods, message times, the client's policy
rng, spike arrivals and the fault schedule with its target clients. What this module adds is the
emulation's topology: clients are grouped by the set of network faults that
target them, and each group gets its own proxies, so a toxic on a group's proxies
hits exactly the clients the schedule chose and nobody else.

Network drops: at each drawn drop time the worker aborts that client's TCP
connection without a close frame — what a NAT rebinding or a Wi-Fi hand-over does
— so the client sees 1006 from the network and the server sees a reset. Offline
periods tell the client's policy `NetworkOffline` and block its socket until
`NetworkOnline`, like a browser's offline event.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from formats.scenario import RealizedFault, Scenario
from formats.faults import NETWORK_FAULT_KINDS, lifted
from formats.scenario.plan import DrawPlan, draw_plan

#: faults that act on the network path of their target clients (through their group's proxies)
NETWORK_FAULTS = NETWORK_FAULT_KINDS


@dataclass(frozen=True)
class ClientPlan:
    """One emulated client: its group, its lifetime and its draws (scenario seconds)."""

    index: int
    client_id: str
    group: int
    start_at: float
    stop_at: float
    rng: random.Random = field(compare=False, repr=False)
    drops: tuple[float, ...] = ()
    offline: tuple[tuple[float, float], ...] = ()   # (start, end)
    messages: tuple[float, ...] = ()
    spike: bool = False

    def draws(self) -> dict[str, Any]:
        """The client's draws as plain data, including the first values of its policy rng."""
        probe = random.Random()
        probe.setstate(self.rng.getstate())
        return {"id": self.client_id, "group": self.group, "start": self.start_at, "stop": self.stop_at,
                "drops": list(self.drops), "offline": [list(p) for p in self.offline],
                "messages": list(self.messages), "rng": [probe.random() for _ in range(3)]}


@dataclass(frozen=True)
class Plan:
    clients: tuple[ClientPlan, ...]
    faults: tuple[RealizedFault, ...]
    groups: int
    group_of_fault: dict[int, tuple[int, ...]]   # fault index -> the groups it hits
    drawn: DrawPlan = field(compare=False, repr=False)  # the plan of draws, as the model reads it

    def fingerprint(self) -> dict[str, Any]:
        """Everything drawn, as plain data: equal plans have equal fingerprints."""
        return {"clients": [c.draws() for c in self.clients],
                "faults": [f.to_dict() for f in self.faults], "groups": self.groups,
                "group_of_fault": {str(k): list(v) for k, v in sorted(self.group_of_fault.items())}}

    @property
    def peak_clients(self) -> int:
        """The most clients alive at once (base fleet plus overlapping spikes)."""
        edges = sorted([(c.start_at, 1) for c in self.clients] + [(c.stop_at, -1) for c in self.clients],
                       key=lambda e: (e[0], e[1]))
        peak = cur = 0
        for _, d in edges:
            cur += d
            peak = max(peak, cur)
        return peak


def make_plan(scenario: Scenario, *, clients: int | None = None) -> Plan:
    """The run's plan of draws (`formats.scenario.plan.draw_plan`) for a fleet of `clients` (default: the
    scenario's emulated fleet), materialised per client and grouped by the network faults that hit it."""
    drawn = draw_plan(scenario, clients)
    faults = drawn.faults

    # groups: one per distinct set of network faults targeting a client
    network = [i for i, f in enumerate(faults) if f.kind in NETWORK_FAULTS]
    targeted = {i: (None if faults[i].targets is None else set(faults[i].targets)) for i in network}
    signature_of: dict[tuple[int, ...], int] = {}
    plans = []
    for life in drawn.lifetimes:
        sig = tuple(i for i in network if targeted[i] is None or life.client_id in targeted[i])
        group = signature_of.setdefault(sig, len(signature_of))
        plans.append(ClientPlan(
            index=life.index, client_id=life.client_id, group=group, start_at=life.start, stop_at=life.stop,
            rng=drawn.rng(life), drops=tuple(drawn.drops(life)), offline=tuple(drawn.offline(life)),
            messages=tuple(drawn.messages(life)), spike=life.spike,
        ))
    group_of_fault = {i: tuple(sorted(g for sig, g in signature_of.items() if i in sig)) for i in network}
    return Plan(tuple(plans), faults, max(1, len(signature_of)), group_of_fault, drawn)


@dataclass(frozen=True)
class Step:
    """One thing the fault runner does at scenario time `at`."""

    at: float
    action: str          # "start" | "stop"
    index: int           # the fault's position in the schedule
    fault: RealizedFault


def timeline(faults: tuple[RealizedFault, ...], duration: float) -> list[Step]:
    """Start and stop steps in time order; a fault with a `for` is lifted when it ends
    (or at the run's end); instant faults (a restart without downtime, token expiry)
    and load spikes (the fleet runs those) have no stop step."""
    steps = []
    for i, f in enumerate(faults):
        if f.at > duration:
            continue
        steps.append(Step(f.at, "start", i, f))
        if f.for_ and lifted(f.kind):
            steps.append(Step(min(f.at + f.for_, duration), "stop", i, f))
    steps.sort(key=lambda s: (s.at, 0 if s.action == "stop" else 1, s.index))
    return steps
