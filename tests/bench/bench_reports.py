"""Report rendering of a legacy/fixed pair of 24 h records, next to just reading their files.

Reading the CSVs with pandas is the floor any report pays; the ratio says what the
Kaplan–Meier curves, the plots and the HTML cost on top. A 24 h record is 86,400
time-series rows and, for a legacy fleet of 500, about 50,000 connections.
"""
from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import pandas as pd

from reports.render import render
from tests.reports.synthetic import SyntheticRun, write_run

DAY = 86400
REPEATS = 3


def _spec(profile: str, connections: int, seed: int) -> SyntheticRun:
    rng = random.Random(seed)
    lifetimes = [(rng.expovariate(1 / (900 if profile == "legacy" else 9000)), rng.random() < 0.01)
                 for _ in range(connections)]
    return SyntheticRun(name="staging-day", profile=profile, clients=500, duration=DAY, lifetimes=lifetimes,
                        base_attempts=1, storm=(21600, 21660, 60), messages=30000, lost={5}, duplicated={7},
                        faults=[{"at": 21600, "kind": "server_restart"}, {"at": 43200, "for": 600, "kind": "latency"}],
                        closes={"1006": list(range(0, DAY, 30)), "4401": list(range(0, DAY, 900))})


def _best(fn) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        runs = [write_run(root / "legacy", _spec("legacy", 50_000, 1)), write_run(root / "fixed", _spec("fixed", 4_000, 2))]
        print(f"records written in {time.perf_counter() - t0:.1f}s")

        def read_only() -> None:
            for run in runs:
                for name in ("connections.csv", "timeseries.csv", "ledger.csv"):
                    pd.read_csv(run / name)

        baseline = _best(read_only)
        report = _best(lambda: render(runs, root / "out"))
        size = sum(p.stat().st_size for p in (root / "out").iterdir()) / 1e6
        print(f"read the CSVs (baseline):   {baseline:6.2f} s")
        print(f"render the report:          {report:6.2f} s   ratio {report / baseline:5.1f}x the baseline")
        print(f"report output: {size:.1f} MB (index.html with embedded PNGs, PNGs, summary.md)")


if __name__ == "__main__":
    main()
