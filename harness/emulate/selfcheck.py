"""Is the load generator itself the bottleneck? Event-loop lag, CPU and descriptors.

A fleet whose event loop runs late measures its own lateness, not the system's:
reconnect delays stretch, heartbeats miss, handshakes look slow. Each worker
measures how late a periodic wake-up fires (loop lag) and samples its CPU and open
descriptors; the engine merges the samples into meta.json's `self_check` and flags
`load_generator_bottleneck` when the generator was saturated.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Callable

import psutil

from formats.record.resolution import SPIKE_FLOOR
from formats.record.selfcheck import cpu_finding, lag_finding, worker_name, worst_worker

#: loop lag (wall seconds, p99) above which the generator, not the system, dominates timing
LAG_P99_LIMIT = 0.100
#: a worker this busy (percent of one core, mean over the run) has no headroom left
CPU_LIMIT = 90.0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(q / 100.0 * (len(s) - 1)))))
    return s[k]


@dataclass
class LoopLagMonitor:
    """Wakes every `interval` wall seconds and records how late it woke.

    Lags of at least `SPIKE_FLOOR` are also kept with the loop time they ended at: a herd makes
    the loop late exactly when it matters, and a record stamped during that lag may be late by
    it, so the lag around a moment is the emulation's time resolution there (`formats.record.resolution.time_resolution`)."""

    interval: float = 0.05
    lags: list[float] = field(default_factory=list)
    spikes: list[tuple[float, float]] = field(default_factory=list)  # (loop time, lag)
    max_samples: int = 100_000

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            expected = loop.time() + self.interval
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
                return
            except asyncio.TimeoutError:
                pass
            if len(self.lags) < self.max_samples:
                now = loop.time()
                lag = max(0.0, now - expected)
                self.lags.append(lag)
                if lag >= SPIKE_FLOOR:
                    self.spikes.append((now, lag))


@dataclass
class ResourceSampler:
    """CPU percent and descriptor count of this process, sampled on demand."""

    proc: psutil.Process = field(default_factory=psutil.Process)
    cpu: list[float] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.proc.cpu_percent(None)  # prime: the first call always returns 0.0

    def sample(self) -> None:
        self.cpu.append(self.proc.cpu_percent(None))
        try:
            self.fds.append(self.proc.num_fds())
        except (AttributeError, psutil.Error):
            pass


@dataclass
class CpuShare:
    """Cores the emulation's own processes (this one, the workers, the server, the proxy) took over
    the run, and cores the rest of the machine took meanwhile (other users' work on a shared host).
    The second is what the emulation did not have: `stormbench validate` models the emulated run
    on the cores left (`sim.calibration.Testbed`). A process that exited keeps its last reading."""

    first: dict[int, float] = field(default_factory=dict)
    last: dict[int, float] = field(default_factory=dict)
    host_first: float | None = None
    host_last: float = 0.0
    wall_first: float = 0.0
    wall_last: float = 0.0

    def sample(self, pids: list[int], now: float) -> None:
        for pid in pids:
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            self.first.setdefault(pid, t.user + t.system)
            self.last[pid] = t.user + t.system
        h = psutil.cpu_times()
        busy = sum(h) - h.idle - getattr(h, "iowait", 0.0)
        if self.host_first is None:
            self.host_first, self.wall_first = busy, now
        self.host_last, self.wall_last = busy, now

    def report(self) -> dict:
        wall = self.wall_last - self.wall_first
        if self.host_first is None or wall <= 0:
            return {}
        own = sum(self.last[p] - self.first[p] for p in self.last) / wall
        host = (self.host_last - self.host_first) / wall
        return {"emulation_cpu_cores": round(own, 3), "other_cpu_cores": round(max(0.0, host - own), 3)}


def worker_report(lag: LoopLagMonitor, res: ResourceSampler,
                  to_scenario: Callable[[float], float] | None = None) -> dict:
    """One worker's self-check numbers (wall seconds and percent of one core); `to_scenario` maps
    loop time to the scenario time at which each lag spike ended."""
    spikes = [[round(to_scenario(t), 3), round(v, 4)] for t, v in lag.spikes] if to_scenario else []
    return {
        "pid": os.getpid(),
        "loop_lag_p50_s": percentile(lag.lags, 50),
        "loop_lag_p99_s": percentile(lag.lags, 99),
        "loop_lag_max_s": max(lag.lags) if lag.lags else None,
        "cpu_mean_pct": sum(res.cpu) / len(res.cpu) if res.cpu else None,
        "cpu_max_pct": max(res.cpu) if res.cpu else None,
        "fds_max": max(res.fds) if res.fds else None,
        "lag_spikes": spikes,
    }


def merge(workers: list[dict], *, fd_limit: int, fleet_bound: int, host_cpu: list[float],
          cpu_share: dict | None = None) -> dict:
    """The run's `self_check` block and its verdict on the generator (`cpu_share`: `CpuShare.report`)."""
    lag99 = [w["loop_lag_p99_s"] for w in workers if w.get("loop_lag_p99_s") is not None]
    cpu = [w["cpu_mean_pct"] for w in workers if w.get("cpu_mean_pct") is not None]
    reasons = []
    if lag99 and max(lag99) > LAG_P99_LIMIT:
        i, w = worst_worker(workers, "loop_lag_p99_s")
        reasons.append(lag_finding(w["loop_lag_p99_s"], worker_name(i, w), LAG_P99_LIMIT))
    if cpu and max(cpu) > CPU_LIMIT:
        i, w = worst_worker(workers, "cpu_mean_pct")
        reasons.append(cpu_finding(w["cpu_mean_pct"], worker_name(i, w), CPU_LIMIT))
    spikes = sorted(s for w in workers for s in w.get("lag_spikes") or ())
    workers = [{k: v for k, v in w.items() if k != "lag_spikes"} for w in workers]
    return {
        "workers": workers,
        "lag_spikes": spikes,
        "lag_spike_floor_s": SPIKE_FLOOR,
        "loop_lag_p99_s": max(lag99) if lag99 else None,
        "worker_cpu_mean_pct": max(cpu) if cpu else None,
        "host_cpu_mean_pct": sum(host_cpu) / len(host_cpu) if host_cpu else None,
        **(cpu_share or {}),
        "fd_limit_per_process": fd_limit,
        "fleet_bound_by_fds": fleet_bound,
        "load_generator_bottleneck": bool(reasons),
        "bottleneck_reasons": reasons,
    }
