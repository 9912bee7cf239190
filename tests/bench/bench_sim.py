"""The model's speed: policy events per CPU second next to a bare SimPy loop and a bare heapq loop
measured in the same command, and CPU per client-day of the whole `simulate()`.

Goals (issue 20): staging-day, fixed profile, 100,000 clients, one agent per client, in <= 60 s
of CPU on one core; legacy at 100,000 in <= 5 min of CPU and under 2 GB peak RSS; the model's
event rate >= 0.5x a bare SimPy loop's. The model is one thread, so CPU time is its time on one
core; on a shared machine wall time also counts whatever else ran, so the load average is printed
next to every figure and the loops are compared by CPU time.

Each model run is its own process, so its peak RSS is its own. The event rate counts policy
events (the plain model's unit of work: a calm client's batched refresh counts as the timer and
the token answer it replaces) per CPU second; the model alone with and without calm batches
(`ModelOptions.calm_batches`) on a small fleet shows what the calm path buys, in the same
command; the fleet lines time the whole `simulate()` (model, tables, finalize).

staging-day caps the server at 150,000 connections and lifts nothing else: the fleet here is
`fleet.sim_clients`, one agent each (`max_agents` above it), no weights.
"""
from __future__ import annotations

import heapq
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import simpy

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "staging-day.yaml"
FLEET = 100_000
PLAIN_FLEET = 1_000


def bare_simpy(events: int = 300_000) -> float:
    """Events per CPU second of SimPy alone (one timeout per event): the ceiling of a SimPy model."""
    env = simpy.Environment()

    def ticker(n: int):
        for _ in range(n):
            yield env.timeout(1.0)

    for _ in range(100):
        env.process(ticker(events // 100))
    c0 = time.process_time()
    env.run()
    return events / (time.process_time() - c0)


def bare_heapq(events: int = 1_000_000) -> float:
    """Events per CPU second of a heap of (time, serial, call) entries, each calling a no-op."""
    def tick() -> None:
        pass

    queue = [(1.0, i, tick) for i in range(100)]
    heapq.heapify(queue)
    serial = len(queue)
    c0 = time.process_time()
    for _ in range(events):
        t, _, fn = heapq.heappop(queue)
        fn()
        serial += 1
        heapq.heappush(queue, (t + 1.0, serial, fn))
    return events / (time.process_time() - c0)


def _measure(clients: int, profile: str, mode: str) -> dict:
    """One run in this process. `engine`: the whole `simulate()` (model, tables, finalize); `calm` and
    `plain`: the model alone (`World`, the engine's fleet-scale options), with and without calm batches."""
    import resource
    import tempfile

    from formats.scenario import load

    scenario = load(SCENARIO, {"fleet.sim_clients": clients, "profile": profile})
    c0 = time.process_time()
    if mode == "engine":
        from sim.engine import simulate

        with tempfile.TemporaryDirectory() as out:
            summary = simulate(scenario, Path(out) / "run", max_agents=clients, max_wall_s=None)
            meta = json.loads((Path(out) / "run" / "meta.json").read_text())
        events, weight = meta["model"]["policy_events"], meta["sampling"]["weight"]
        storms, peak = summary["storms"], summary["peak_reconnects_per_s"]
    else:
        from sim.calibration import load as load_calibration
        from sim.engine import LEDGER_SAMPLE
        from sim.world import ModelOptions, World

        options = ModelOptions(message_clients=LEDGER_SAMPLE, keep_all_records=False, calm_batches=mode == "calm")
        world = World(scenario, load_calibration()[0], options=options,
                      sink=lambda records: None)  # the model alone: records go nowhere, as neither its time nor its memory
        world.run()
        events, weight, storms, peak = world.policy_events, 1, None, None
    cpu = time.process_time() - c0
    return {"cpu": cpu, "events": events, "weight": weight, "storms": storms, "peak": peak,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "load": os.getloadavg()[0], "days": clients * scenario.duration / 86400}


def measure(clients: int, profile: str, mode: str = "engine") -> dict:
    """`_measure` in a fresh process (its own peak RSS, no state left from another run)."""
    code = (f"import json; from tests.bench.bench_sim import _measure; "
            f"print(json.dumps(_measure({clients}, {profile!r}, {mode!r})))")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def line(name: str, m: dict, simpy_rate: float, heapq_rate: float) -> str:
    rate = m["events"] / m["cpu"]
    return (f"{name}: {m['cpu']:.1f} s CPU (load {m['load']:.1f}), {1000 * m['cpu'] / m['days']:.2f} ms CPU per "
            f"client-day, {rate:,.0f} policy events/s = {rate / simpy_rate:.2f}x bare SimPy, "
            f"{rate / heapq_rate:.2f}x bare heapq; peak RSS {m['rss_mb']:,.0f} MB; weight {m['weight']}"
            + ("" if m["storms"] is None else f"; storms {m['storms']}, peak {m['peak']:,} reconnects/s"))


def main() -> None:
    simpy_rate, heapq_rate = bare_simpy(), bare_heapq()
    print(f"bare SimPy loop: {simpy_rate:,.0f} events per CPU second; bare heapq loop: {heapq_rate:,.0f} "
          f"(load {os.getloadavg()[0]:.1f})", flush=True)
    plain = measure(PLAIN_FLEET, "fixed", "plain")
    calm = measure(PLAIN_FLEET, "fixed", "calm")
    print(line(f"plain model (no calm batches), staging-day fixed, {PLAIN_FLEET:,} clients", plain, simpy_rate,
               heapq_rate))
    print(line(f"model alone, staging-day fixed, {PLAIN_FLEET:,} clients", calm, simpy_rate, heapq_rate)
          + f"  [{plain['cpu'] / calm['cpu']:.1f}x faster than plain]", flush=True)
    fixed = measure(FLEET, "fixed")
    print(line(f"model, staging-day fixed, {FLEET:,} clients, one agent each", fixed, simpy_rate, heapq_rate)
          + f"  [goal <= 60 s CPU: {'met' if fixed['cpu'] <= 60 else 'NOT met'}; "
          f">= 0.5x bare SimPy: {'met' if fixed['events'] / fixed['cpu'] >= 0.5 * simpy_rate else 'NOT met'}]",
          flush=True)
    legacy = measure(FLEET, "legacy")
    print(line(f"model, staging-day legacy, {FLEET:,} clients, one agent each", legacy, simpy_rate, heapq_rate)
          + f"  [goal <= 300 s CPU: {'met' if legacy['cpu'] <= 300 else 'NOT met'}; "
          f"< 2 GB RSS: {'met' if legacy['rss_mb'] < 2048 else 'NOT met'}]")


if __name__ == "__main__":
    main()
