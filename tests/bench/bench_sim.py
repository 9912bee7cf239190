"""The model's speed: simulated client-hours per wall second and events per second, next to a
bare SimPy loop (one timeout per event, nothing else) measured in the same process.

Goal (issue 7): 100,000 clients x 24 h with storms in <= 60 s on one core. The plain model runs
every client's policy through every token refresh (about 130 a day each), which no Python SimPy
model does for 100,000 clients in a minute; at fleet scale the engine follows `MAX_AGENTS`
weighted agents (tests/sim/test_model.py checks that path against the plain model). The model is
one thread, so its CPU time is its time on one core; the goal is judged on that, since wall time
on a shared machine also counts whatever else ran (both are printed, with the load average).

staging-day caps the server at 20,000 connections; a 100,000-client fleet then spends the day
retrying 1013 sheds (some 300 million policy events: the model bounds such a run in wall time).
The speed benchmark lifts the cap so that the day has the scenario's storms, not a permanent one.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import simpy

from harness.scenario import load

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "staging-day.yaml"


def bare_simpy(events: int = 300_000) -> float:
    """Events per second of SimPy alone: the ceiling any SimPy model lives under."""
    env = simpy.Environment()

    def ticker(n: int):
        for _ in range(n):
            yield env.timeout(1.0)

    for _ in range(100):
        env.process(ticker(events // 100))
    t0 = time.perf_counter()
    env.run()
    return events / (time.perf_counter() - t0)


def plain_model(clients: int) -> dict:
    """Every client through the real policy, no record IO: the model's own cost."""
    from sim.calibration import load as load_calibration
    from sim.world import ModelOptions, World

    scenario = load(SCENARIO, {"fleet.sim_clients": clients})
    world = World(scenario, load_calibration()[0], options=ModelOptions(keep_all_records=False))
    t0, c0 = time.perf_counter(), time.process_time()
    world.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"wall": wall, "cpu": cpu, "simpy_events": next(world.env._eid), "policy_events": world.policy_events,
            "client_hours": clients * scenario.duration / 3600}


def engine(clients: int) -> dict:
    """The whole `simulate()` at fleet scale: model, derived tables, finalize."""
    from sim.engine import Sizing, simulate

    scenario = load(SCENARIO, {"fleet.sim_clients": clients, "system.admission.max_connections": 2 * clients})
    with tempfile.TemporaryDirectory() as out:
        t0, c0 = time.perf_counter(), time.process_time()
        summary = simulate(scenario, Path(out) / "run")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    size = Sizing.plan(clients)
    return {"wall": wall, "cpu": cpu, "agents": size.agents, "weight": size.weight,
            "client_hours": clients * scenario.duration / 3600, "storms": summary["storms"],
            "peak": summary["peak_reconnects_per_s"]}


def main() -> None:
    base = bare_simpy()
    print(f"bare SimPy loop: {base:,.0f} events/s")
    p = plain_model(1_000)
    rate = p["simpy_events"] / p["wall"]
    print(f"plain model, staging-day 24 h, 1,000 clients: {p['wall']:.1f} s wall ({p['cpu']:.1f} s CPU), "
          f"{p['client_hours'] / p['wall']:,.0f} client-hours/s, {rate:,.0f} SimPy events/s "
          f"= {rate / base:.3f}x bare SimPy, {p['policy_events'] / p['wall']:,.0f} policy events/s")
    e = engine(100_000)
    verdict = "met" if e["cpu"] <= 60 else "NOT met"
    print(f"engine, staging-day 24 h, 100,000 clients ({e['agents']:,} agents x {e['weight']}): "
          f"{e['cpu']:.1f} s CPU ({e['wall']:.1f} s wall at load {os.getloadavg()[0]:.1f}), "
          f"{e['client_hours'] / e['cpu']:,.0f} client-hours per CPU second, storms {e['storms']}, "
          f"peak {e['peak']:,} reconnects/s  [goal <= 60 s on one core: {verdict}]")


if __name__ == "__main__":
    main()
