"""Every random draw of a run, derived from the scenario's one seed by named sub-streams.

Both engines call these helpers, so an emulated and a simulated run of the same
scenario and seed see the same fault schedule, the same targeted clients, the same
arrival times, drops, offline periods and message times. A stream is named for
what it draws (`"arrivals"`, `"client:17"`), so adding a new stream never shifts
the draws of an existing one.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator

from formats.scenario.model import CLIENT_TARGETED, Fault, Scenario
from formats.streams import numpy_stream, ramp_arrivals, stream  # noqa: F401 (numpy_stream: for the engines)


def client_id(index: int) -> str:
    """The id both engines give client `index` (0-based) in events and fault targets."""
    return f"c{index:05d}"


def client_rng(scenario: Scenario, index: int) -> random.Random:
    """The rng handed to client `index`'s policy (backoff jitter and the like)."""
    return stream(scenario.seed, f"client:{index}")


@dataclass(frozen=True)
class RealizedFault:
    """A fault with its random choices made: `targets` are client ids, or None for every client."""

    at: float
    for_: float | None
    kind: str
    params: dict
    targets: tuple[str, ...] | None

    def to_dict(self) -> dict:
        return {"at": self.at, "for": self.for_, "kind": self.kind, "params": dict(self.params),
                "targets": None if self.targets is None else list(self.targets)}


def realize_faults(scenario: Scenario, clients: int | None = None) -> list[RealizedFault]:
    """The fault schedule of `faults.json`; targets drawn from a fleet of `clients` (default: the emulated fleet)."""
    n = scenario.fleet.clients if clients is None else clients
    realized = []
    for i, fault in enumerate(scenario.faults):
        realized.append(RealizedFault(fault.at, fault.for_, fault.kind, dict(fault.params),
                                      _targets(scenario.seed, i, fault, n)))
    return realized


def _targets(seed: int, index: int, fault: Fault, n: int) -> tuple[str, ...] | None:
    if fault.kind not in CLIENT_TARGETED or fault.fraction >= 1.0:
        return None
    k = round(fault.fraction * n)
    chosen = stream(seed, f"fault:{index}:{fault.kind}").sample(range(n), k)
    return tuple(client_id(c) for c in sorted(chosen))


def arrival_times(scenario: Scenario, clients: int | None = None) -> list[float]:
    """When each client starts: uniform over the arrival ramp, in client-index order."""
    n = scenario.fleet.clients if clients is None else clients
    return ramp_arrivals(scenario.seed, scenario.fleet.ramp, n)


def _poisson_times(rng: random.Random, mean: float, start: float, end: float) -> Iterator[float]:
    t = start
    while True:
        t += rng.expovariate(1.0 / mean)
        if t >= end:
            return
        yield t


def drop_times(scenario: Scenario, index: int) -> Iterator[float]:
    """Client `index`'s network drops (abnormal closes): a Poisson process over the run."""
    if scenario.fleet.drop_every is None:
        return iter(())
    return _poisson_times(stream(scenario.seed, f"drops:{index}"), scenario.fleet.drop_every, 0.0, scenario.duration)


def offline_periods(scenario: Scenario, index: int) -> Iterator[tuple[float, float]]:
    """Client `index`'s offline periods `(start, end)`: Poisson starts, fixed length, never overlapping."""
    offline = scenario.fleet.offline
    if offline is None:
        return
    rng = stream(scenario.seed, f"offline:{index}")
    t = 0.0
    while True:
        t += rng.expovariate(1.0 / offline.every)
        if t >= scenario.duration:
            return
        end = min(t + offline.for_, scenario.duration)
        yield (t, end)
        t = end


def message_times(scenario: Scenario, index: int, start: float = 0.0) -> Iterator[float]:
    """When client `index` sends user messages: a Poisson process from `start` to the end of the run."""
    if scenario.fleet.message_every is None:
        return iter(())
    return _poisson_times(stream(scenario.seed, f"messages:{index}"), scenario.fleet.message_every,
                          start, scenario.duration)

