"""Emulation engine cost: how much wall time a run takes beyond its scheduled (scaled) duration,
and how much client traffic the fleet carries before its own event loops fall behind.

The baseline is the run's own schedule (scenario duration / time_scale), measured in the
same process; each fleet size prints wall/scheduled, the fixed overhead (start-up, probe,
teardown), events per wall second and the workers' loop-lag p99. Nothing is asserted.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from harness.emulate.engine import emulate
from formats.scenario import from_dict

SCHEDULE_WALL_S = 10.0


def scenario(clients: int):
    return from_dict({
        "name": f"bench-emulate-{clients}", "seed": 1, "duration": "5m", "time_scale": 300 / SCHEDULE_WALL_S,
        "system": {"behaviour": "fixed", "token_ttl": "15m"},
        "fleet": {"clients": clients, "profile": "fixed", "arrival": {"ramp": "30s"},
                  "messages": {"every": "60s"}, "network": {"drops": {"every": "2m"}}},
        "faults": [], "gates": [],
    })


def main() -> None:
    print(f"{'clients':>8} {'wall s':>7} {'wall/sched':>10} {'overhead s':>10} {'events/s':>9} "
          f"{'lag p99 ms':>10} {'bottleneck':>10}")
    for clients in (50, 200, 600):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            t = time.perf_counter()
            emulate(scenario(clients), out, progress=lambda s: None)
            wall = time.perf_counter() - t
            meta = json.loads((out / "meta.json").read_text())
            events = meta["counts"]["events"]
            lag = meta["self_check"]["loop_lag_p99_s"]
            print(f"{clients:>8} {wall:>7.1f} {wall / SCHEDULE_WALL_S:>10.2f} {wall - SCHEDULE_WALL_S:>10.1f} "
                  f"{events / SCHEDULE_WALL_S:>9.0f} {lag * 1000 if lag is not None else float('nan'):>10.1f} "
                  f"{str(meta['self_check']['load_generator_bottleneck']):>10}", flush=True)


if __name__ == "__main__":
    main()
