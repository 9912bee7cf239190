"""Virtual clock vs wall clock: scenario-hours emulated per CPU second, 300 clients.

The same staging-like hour (30 s heartbeats, 15 min tokens, chat, drops, a restart) runs on
the virtual clock (one process) and on the wall clock at ×720 (server, proxy and worker
processes); CPU is this process's plus its reaped children's. The wall run is the baseline:
the ratio says how many times more scenario time the virtual clock gets from a CPU second.
Nothing is asserted.
"""
from __future__ import annotations

import json
import resource
import tempfile
import time
from pathlib import Path

from harness.emulate.engine import emulate
from formats.scenario import from_dict

CLIENTS = 300
HOURS = 1.0


def scenario(clock: str):
    return from_dict({
        "name": f"bench-clock-{clock}", "seed": 3, "duration": f"{HOURS:g}h", "clock": clock, "time_scale": 720,
        "system": {"behaviour": "fixed", "token_ttl": "15m", "heartbeat": {"interval": "30s", "timeout": "20s"},
                   "live_expiry": True},
        "fleet": {"clients": CLIENTS, "profile": "fixed", "arrival": {"ramp": "5m"}, "messages": {"every": "20m"},
                  "network": {"drops": {"every": "6h"}}},
        "faults": [{"at": "30m", "kind": "server_restart", "mode": "graceful"}], "gates": [],
    })


def cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def measure(clock: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cpu, wall = cpu_seconds(), time.perf_counter()
        emulate(scenario(clock), out, progress=lambda s: None)
        cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
        counts = json.loads((out / "meta.json").read_text())["counts"]
    return {"clock": clock, "wall_s": wall, "cpu_s": cpu, "per_cpu_s": HOURS / cpu, "events": counts["events"]}


def main() -> None:
    rows = [measure("wall"), measure("virtual")]
    print(f"{'clock':>8} {'scen. h':>7} {'wall s':>7} {'cpu s':>7} {'scen-h/cpu-s':>12} {'events':>7}")
    for r in rows:
        label = "x720" if r["clock"] == "wall" else "virtual"
        print(f"{label:>8} {HOURS:>7g} {r['wall_s']:>7.1f} {r['cpu_s']:>7.1f} {r['per_cpu_s']:>12.4f} {r['events']:>7}")
    print(f"ratio virtual / x720 (scenario-hours per CPU second): {rows[1]['per_cpu_s'] / rows[0]['per_cpu_s']:.2f}")


if __name__ == "__main__":
    main()
