"""The load generator's own lateness, timed: where a herd kept a worker's loop busy."""
from __future__ import annotations

import asyncio
import time

from harness.emulate.selfcheck import LoopLagMonitor, ResourceSampler, merge, worker_report


async def test_a_blocked_loop_leaves_a_timed_lag_spike():
    monitor = LoopLagMonitor(interval=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(monitor.run(stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while not monitor.lags and loop.time() < deadline:  # the monitor is running
        await asyncio.sleep(0.005)
    blocked_at = loop.time()
    time.sleep(0.08)  # the stimulus: a herd's worth of callbacks holding the loop
    while not any(t > blocked_at for t, _ in monitor.spikes) and loop.time() < deadline:
        await asyncio.sleep(0.005)
    stop.set()
    await task
    t, lag = max(monitor.spikes, key=lambda s: s[1])
    assert lag >= 0.06 and t >= blocked_at + 0.06
    report = worker_report(monitor, ResourceSampler(), to_scenario=lambda x: (x - blocked_at) * 30)
    worst = max(report["lag_spikes"], key=lambda s: s[1])
    assert worst[0] >= 0.06 * 30 and worst[1] >= 0.06  # stamped in scenario seconds, lag in wall seconds
    merged = merge([report, {**report, "pid": 0}], fd_limit=1024, fleet_bound=10, host_cpu=[])
    assert len(merged["lag_spikes"]) == 2 * len(report["lag_spikes"])
    assert all("lag_spikes" not in w for w in merged["workers"])
