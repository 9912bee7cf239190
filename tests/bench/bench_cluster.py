"""Many runs on Dask: a sweep of 8 simulated points on a local cluster of 2 worker processes,
next to the same sweep on 1 worker, in the same command (goal: >= 1.8x on 2 cores).

Both timings are the whole `sweep()` as a user runs it: starting the cluster, shipping each
point's record back as a tar and writing the table. The points are independent CPU-bound runs,
so the ratio is bounded by the free cores: how many points ran at once, how long a point took
alone and beside another, and the load average are printed next to it, since on a shared machine
another user's work takes cores from the 2-worker run first.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from tests.restart_scenario import restart_scenario

SCENARIO = restart_scenario("bench-sweep", seed=11, duration="6h", clients=300,
                            extra_faults=("{at: 4h, kind: token_expiry, fraction: 1.0}",))
GRID = {"fleet.sim_clients": [200, 250, 300, 350, 400, 450, 500, 550]}


def timed_sweep(path: Path, out: Path, workers: int) -> tuple[float, float, dict]:
    """Wall time of the sweep, and the sum of its points' own run times (each point's
    `meta.wall_time_s`, on its worker) over it: how many points ran at once on average."""
    from commands.sweep import sweep

    t0 = time.perf_counter()
    doc = sweep(path, GRID, out, echo=lambda *_: None, workers=workers)
    wall = time.perf_counter() - t0
    busy = sum(json.loads((out / p["run_dir"] / "meta.json").read_text())["wall_time_s"] for p in doc["points"])
    return wall, busy / wall, doc


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="stormbench-bench-cluster-") as tmp:
        path = Path(tmp) / "bench-sweep.yaml"
        path.write_text(SCENARIO)
        load0 = os.getloadavg()[0]
        one, at_once1, doc1 = timed_sweep(path, Path(tmp) / "one", 1)
        load1 = os.getloadavg()[0]
        two, at_once2, doc2 = timed_sweep(path, Path(tmp) / "two", 2)
        load2 = os.getloadavg()[0]
    same = [p["summary"] for p in doc1["points"]] == [p["summary"] for p in doc2["points"]]
    print(f"sweep of {len(doc1['points'])} points: 1 worker {one:.1f} s, 2 workers {two:.1f} s")
    print(f"ratio 1-worker / 2-worker wall time: {one / two:.2f}x (goal >= 1.8x on 2 free cores)")
    n = len(doc1["points"])
    print(f"points running at once on average (their run times / the sweep's wall time): 1 worker "
          f"{at_once1:.2f}, 2 workers {at_once2:.2f}; a point took {one * at_once1 / n:.1f} s alone, "
          f"{two * at_once2 / n:.1f} s beside another")
    print(f"load average before/between/after: {load0:.2f} / {load1:.2f} / {load2:.2f} "
          f"on {os.cpu_count()} CPUs; same tables from both: {same}")
