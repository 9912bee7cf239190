"""Agent execution time over 100,000 listings, next to a bare indexed SQLite query.

The staging gate is agent p95 < 100 ms; the aim is p95 < 5 ms. Three layers are
timed on the same database in the same process, so the ratios say where the time
goes: a bare indexed query (the floor), the search tool alone, and the whole
supervisor turn (routing, understanding, policy, search, rendering), in wall
time and in the thread's CPU time.
"""
from __future__ import annotations

import datetime as dt
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from system.agent.agents.real_estate.geography import CITIES
from system.agent.agents.real_estate.listings import SeedConfig, seed_database
from system.agent.agents.real_estate.tools import Criteria, ListingTools
from system.agent.supervisor import Supervisor

LISTINGS = 100_000
TURNS = 4_000
GOAL_P95_MS = 5.0
TODAY = dt.date(2026, 11, 26)


def _quantiles(samples_ns: list[int]) -> tuple[float, float, float]:
    q = statistics.quantiles(samples_ns, n=100, method="inclusive")
    return q[49] / 1e6, q[94] / 1e6, q[98] / 1e6


def _conversation(rng: random.Random) -> list[str]:
    city = rng.choice(CITIES)
    area = rng.choice(city.areas)[0]
    beds = rng.randint(0, 4)
    if rng.random() < 0.5:
        day = rng.randint(1, 20)
        first = f"short stay in {area} {day}-{day + rng.randint(2, 8)} Dec under {city.night * 2} a night"
    else:
        first = f"{beds} bedroom flat in {city.name} under {city.month * 2}/month from 1 February"
    return [first, "cheaper", f"with {rng.randint(1, 3)} bedrooms", "thanks"]


def main() -> None:
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        db = seed_database(Path(tmp) / "bench.sqlite3", SeedConfig(listings=LISTINGS, seed=7))
        print(f"seeded {LISTINGS:,} listings in {time.perf_counter() - t0:.1f}s")

        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        baseline = []
        for _ in range(TURNS):
            city = rng.choice(CITIES)
            args = (city.name, rng.choice(("short", "long")), rng.randint(0, 4))
            t = time.perf_counter_ns()
            con.execute("SELECT * FROM listings WHERE city = ? AND tenure = ? AND bedrooms = ? LIMIT 5", args).fetchall()
            baseline.append(time.perf_counter_ns() - t)

        tools = ListingTools(db)
        tool = []
        for _ in range(TURNS):
            city = rng.choice(CITIES)
            tenure = rng.choice(("short", "long"))
            day = TODAY + dt.timedelta(days=rng.randint(1, 60))
            c = Criteria(city=city.name, tenure=tenure, bedrooms=rng.randint(0, 4),
                         max_price=(city.night if tenure == "short" else city.month) * 2,
                         check_in=day if tenure == "short" else None,
                         check_out=day + dt.timedelta(days=4) if tenure == "short" else None,
                         move_in=day if tenure == "long" else None)
            t = time.perf_counter_ns()
            tools.search_listings(c)
            tool.append(time.perf_counter_ns() - t)

        supervisor = Supervisor(db, today=TODAY)
        turns, cpu, n = [], [], 0
        while len(turns) < TURNS:
            for text in _conversation(rng):
                c, t = time.thread_time_ns(), time.perf_counter_ns()
                supervisor.respond(f"bench-{n}", text, "1.1")
                turns.append(time.perf_counter_ns() - t)
                cpu.append(time.thread_time_ns() - c)
            n += 1

    base = _quantiles(baseline)
    rows = [("bare indexed SQLite query", base), ("search_listings tool", _quantiles(tool)),
            ("supervisor turn (end to end)", _quantiles(turns)), ("  the same, CPU time only", _quantiles(cpu))]
    print(f"{'':32} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'p95 / baseline':>15}")
    for name, (p50, p95, p99) in rows:
        print(f"{name:32} {p50:8.3f} {p95:8.3f} {p99:8.3f} {p95 / base[1]:14.1f}x")
    p95 = rows[-2][1][1]
    print(f"agent p95 {p95:.2f} ms wall over {len(turns):,} turns ({n:,} conversations); "
          f"goal < {GOAL_P95_MS:.0f} ms: {'met' if p95 < GOAL_P95_MS else 'NOT met'}; staging gate < 100 ms. "
          f"Wall above CPU is time the thread waited (other processes on a shared machine, the GIL).")


if __name__ == "__main__":
    main()
