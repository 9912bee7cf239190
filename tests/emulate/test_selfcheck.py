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


def _workers() -> list[dict]:
    return [{"pid": 11, "loop_lag_p50_s": 0.001, "loop_lag_p99_s": 0.012, "loop_lag_max_s": 0.02,
             "cpu_mean_pct": 20.0, "cpu_max_pct": 40.0, "fds_max": 60, "lag_spikes": [[30.0, 0.02]]},
            {"pid": 12, "loop_lag_p50_s": 0.002, "loop_lag_p99_s": 0.15, "loop_lag_max_s": 0.3,
             "cpu_mean_pct": 95.0, "cpu_max_pct": 100.0, "fds_max": 81, "lag_spikes": [[754.0, 0.3]]}]


def test_a_saturated_generator_says_why_in_sentences_with_units():
    from formats.record.selfcheck import describe

    check = merge([*_workers()[:1], dict(_workers()[1], started_late_s=155.0)], fd_limit=1024, fleet_bound=250,
                  host_cpu=[50.0],
                  cpu_share={"emulation_cpu_cores": 1.234, "other_cpu_cores": 0.4})
    assert check["load_generator_bottleneck"]
    assert check["bottleneck_reasons"] == [
        "the event loop lagged 150 ms at p99 (worker 1), more than the 100 ms limit",
        "worker 1 used 95% of a core on average, more than the 90% limit"]
    text = describe(check)
    assert text[0] == ("the load generator was the bottleneck: the event loop lagged 150 ms at p99 (worker 1), "
                       "more than the 100 ms limit; worker 1 used 95% of a core on average, more than the 90% limit")
    assert "2 stalls of the event loop of at least 2 ms; the longest 300 ms at 12m34s of scenario time" in text
    assert "the emulation's processes took 1.23 cores and the rest of the machine 0.4 cores meanwhile" in text
    assert "at most 81 descriptors were open in a worker (limit 1,024 per process, enough for 250 clients)" in text
    assert "worker 1 began 2m35s of scenario time after the run's origin (the latest to start)" in text
    assert not any(c in " ".join(text) for c in "{}[]_")  # sentences, not the JSON block or its keys


def test_a_healthy_generator_and_the_other_engines_in_sentences():
    from formats.record.selfcheck import describe

    calm = [dict(w, loop_lag_p99_s=0.012, cpu_mean_pct=20.0) for w in _workers()]
    text = describe(merge(calm, fd_limit=1024, fleet_bound=250, host_cpu=[50.0]))
    assert text[:2] == ["the load generator was not the bottleneck (2 workers)",
                        "the event loop lagged 12 ms at p99 (worker 0)"]
    assert "worker 0 used 20% of a core on average" in text
    assert "the machine's CPUs were 50% busy on average" in text
    assert describe({"load_generator_bottleneck": False, "bottleneck_reasons": [], "clock": "virtual",
                     "fds_max": 40})[0].startswith("on the virtual clock the event loop's lag takes no scenario time")
    assert describe({"sim_time_reached_s": 3600.0, "complete": False, "faults_applied": [{}]}) == [
        "the model reached 1h of scenario time, short of the scenario's end: an incomplete run",
        "1 fault applied by the model"]
    assert describe({}) == []
