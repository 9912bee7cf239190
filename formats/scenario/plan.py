"""The plan of draws: everything random about a run, built once from the scenario and its seed.

Both engines read one `DrawPlan`: the emulation materialises it per client and adds its topology
(`harness.emulate.plan`), the model schedules from it lazily (`sim.world`; a day of a 100k fleet's
messages would not fit in memory as lists). Arrivals, drops, offline periods, message times, each
policy's rng, fault targets (partition members included) and load-spike arrivals all come from
here, so an emulated and a simulated run of one scenario and seed face the same weather.

Load spikes: `clients` extra clients per emulated fleet (scaled to the plan's fleet, so a simulated
fleet of `sim_clients` gets the same share), with indices after the base fleet, arriving uniformly
over min(ramp, half the spike) from its start and leaving when it ends.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import islice
from typing import Any, Iterator

from formats.scenario.draws import (
    RealizedFault, arrival_times, client_id, client_rng, drop_times, message_times, offline_periods,
    realize_faults, stream,
)
from formats.scenario.model import Scenario


@dataclass(frozen=True)
class Lifetime:
    """One client of the run: when it starts and stops (scenario seconds); `spike` for a load spike's."""

    index: int
    client_id: str
    start: float
    stop: float
    spike: bool = False
    fault: int | None = None  # the load spike's position in the schedule
    # the law `start` was drawn from: U(origin, origin + spread) (the ramp, or a spike's); 0: fixed
    origin: float = 0.0
    spread: float = 0.0


@dataclass(frozen=True)
class DrawPlan:
    scenario: Scenario
    clients: int  # the base fleet the plan was drawn for
    faults: tuple[RealizedFault, ...]
    lifetimes: tuple[Lifetime, ...]  # the base fleet in index order, then every spike's clients

    def drops(self, life: Lifetime) -> Iterator[float]:
        return (t for t in drop_times(self.scenario, life.index) if life.start <= t < life.stop)

    def offline(self, life: Lifetime) -> Iterator[tuple[float, float]]:
        return ((a, min(b, life.stop)) for a, b in offline_periods(self.scenario, life.index)
                if life.start <= a < life.stop)

    def messages(self, life: Lifetime) -> Iterator[float]:
        times = message_times(self.scenario, life.index, life.start)
        return (t for t in times if t < life.stop)

    def rng(self, life: Lifetime) -> random.Random:
        return client_rng(self.scenario, life.index)

    def spike(self, fault_index: int) -> list[Lifetime]:
        return [life for life in self.lifetimes if life.fault == fault_index]

    def fingerprint(self, first: int = 3) -> dict[str, Any]:
        """The plan as plain data (each client's series to its `first` draws): equal plans, equal prints."""
        def head(it: Iterator) -> list:
            return [list(x) if isinstance(x, tuple) else x for x in islice(it, first)]

        def rng_head(life: Lifetime) -> list[float]:
            r = self.rng(life)
            return [r.random() for _ in range(first)]

        return {"clients": self.clients, "faults": [f.to_dict() for f in self.faults],
                "lifetimes": [{"id": life.client_id, "start": life.start, "stop": life.stop, "spike": life.spike,
                               "drops": head(self.drops(life)), "offline": head(self.offline(life)),
                               "messages": head(self.messages(life)), "rng": rng_head(life)}
                              for life in self.lifetimes]}


def spike_size(scenario: Scenario, fault: RealizedFault, clients: int) -> int:
    """A spike's `clients` are per emulated fleet; a plan for another fleet size scales them."""
    extra = int(fault.params.get("clients") or 0)
    return extra if clients == scenario.fleet.clients else round(extra * clients / max(1, scenario.fleet.clients))


def draw_plan(scenario: Scenario, clients: int | None = None) -> DrawPlan:
    """The plan for a base fleet of `clients` (default: the scenario's emulated fleet)."""
    n = scenario.fleet.clients if clients is None else clients
    faults = tuple(realize_faults(scenario, n))
    ramp = scenario.fleet.ramp
    lifetimes = [Lifetime(i, client_id(i), t, scenario.duration, spread=ramp)
                 for i, t in enumerate(arrival_times(scenario, n))]
    for i, f in enumerate(faults):
        if f.kind != "load_spike":
            continue
        end = min(f.at + f.for_, scenario.duration) if f.for_ else scenario.duration
        spread = min(scenario.fleet.ramp, (end - f.at) / 2) if scenario.fleet.ramp > 0 else 0.0
        rng = stream(scenario.seed, f"fault:{i}:load_spike")
        for _ in range(spike_size(scenario, f, n)):
            index = len(lifetimes)
            lifetimes.append(Lifetime(index, client_id(index), f.at + (rng.uniform(0.0, spread) if spread else 0.0),
                                      end, spike=True, fault=i, origin=f.at, spread=spread))
    return DrawPlan(scenario, n, faults, tuple(lifetimes))
