"""Many runs on Dask: a sweep of 8 simulated points on a local cluster of 2 worker processes,
next to the same sweep on 1 worker, in the same command (goal: >= 1.8x on 2 cores).

What is timed is the whole `sweep()` as a user runs it on a cluster that is already up (a
scheduler's workers outlive the commands sent to them): shipping each point to a worker, running
it, bringing its record back as a tar, unpacking it and writing the table. Starting the local
cluster and the workers' first imports are printed apart, not in the ratio: they are paid once
per cluster, not per point. The points are independent CPU-bound runs, so the ratio is bounded by
the free cores: how many points ran at once, how long a point took alone and beside another, and
the load average are printed next to it, since on a shared machine another user's work takes
cores from the 2-worker run first.
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


WARM = ("sim.engine", "formats.gates.evaluate", "formats.gates.report", "formats.record.run")


def warm(client) -> None:
    """Every worker imports what a point needs, as a long-running worker has after its first job."""
    def imports(names: tuple[str, ...] = WARM) -> None:  # a nested function: sent by value
        import importlib

        for name in names:
            importlib.import_module(name)

    client.run(imports)


def timed_sweep(path: Path, out: Path, workers: int) -> tuple[float, float, float, dict]:
    """Start-up of a local cluster of `workers` (with imports), then the wall time of the sweep on
    it, and the sum of its jobs' compute times on the workers (Dask's task stream: simulating,
    judging and packing a point) over that wall time: how many points ran at once on average."""
    from distributed import get_task_stream

    from cluster.executor import connect
    from commands.sweep import sweep

    t0 = time.perf_counter()
    with connect(None, workers) as client:
        warm(client)
        t1 = time.perf_counter()
        with get_task_stream(client) as stream:
            doc = sweep(path, GRID, out, echo=lambda *_: None, cluster=client.scheduler_info()["address"])
            wall = time.perf_counter() - t1
    busy = sum(s["stop"] - s["start"] for task in stream.data for s in task["startstops"] if s["action"] == "compute")
    return t1 - t0, wall, busy / wall, doc


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="stormbench-bench-cluster-") as tmp:
        path = Path(tmp) / "bench-sweep.yaml"
        path.write_text(SCENARIO)
        load0 = os.getloadavg()[0]
        up1, one, at_once1, doc1 = timed_sweep(path, Path(tmp) / "one", 1)
        load1 = os.getloadavg()[0]
        up2, two, at_once2, doc2 = timed_sweep(path, Path(tmp) / "two", 2)
        load2 = os.getloadavg()[0]
    same = [p["summary"] for p in doc1["points"]] == [p["summary"] for p in doc2["points"]]
    n = len(doc1["points"])
    print(f"sweep of {n} points on a running local cluster: 1 worker {one:.1f} s, 2 workers {two:.1f} s "
          f"(starting the cluster and its imports, not timed: {up1:.1f} s, {up2:.1f} s)")
    print(f"ratio 1-worker / 2-worker wall time: {one / two:.2f}x (goal >= 1.8x on 2 free cores)")
    print(f"points running at once on average (their compute times / the sweep's wall time): 1 worker "
          f"{at_once1:.2f}, 2 workers {at_once2:.2f}; a point took {one * at_once1 / n:.1f} s alone, "
          f"{two * at_once2 / n:.1f} s beside another")
    print(f"load average before/between/after: {load0:.2f} / {load1:.2f} / {load2:.2f} "
          f"on {os.cpu_count()} CPUs; same tables from both: {same}")
