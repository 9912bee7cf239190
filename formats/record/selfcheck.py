"""The run's self-check (`meta.json` `self_check`) in words: was the load generator itself the
bottleneck, and what did it measure of itself.

The block is machine-readable (wall seconds, percent of one core, lists of lag spikes); a
person reads it in the report and the CLI as sentences with units, in the words of the gate
evidence (`formats.gates.wording`, whose `human_number` it shares): "the event loop lagged 62 ms at p99 (worker 0), under the
100 ms limit". One function per engine's block: a wall-clock emulation (per-worker loop lag,
CPU, descriptors), the virtual clock (lag takes no scenario time) and the model (how far the
simulated time got).
"""
from __future__ import annotations

from typing import Any

from system.units import format_duration, human_number


def lag_finding(p99_s: float, worker: str, limit_s: float | None = None) -> str:
    """`the event loop lagged 150 ms at p99 (worker 2), more than the 100 ms limit`."""
    said = f"the event loop lagged {_ms(p99_s)} at p99 ({worker})"
    if limit_s is None:
        return said
    return f"{said}, {'more than' if p99_s > limit_s else 'within'} the {_ms(limit_s)} limit"


def cpu_finding(mean_pct: float, worker: str, limit_pct: float | None = None) -> str:
    """`worker 1 used 95% of a core on average, more than the 90% limit`."""
    said = f"{worker} used {mean_pct:.0f}% of a core on average"
    if limit_pct is None:
        return said
    return f"{said}, {'more than' if mean_pct > limit_pct else 'within'} the {limit_pct:.0f}% limit"


def describe(check: dict[str, Any] | None) -> list[str]:
    """The self-check as sentences (none for an empty block)."""
    if not check:
        return []
    if "sim_time_reached_s" in check:
        return _model(check)
    if check.get("clock") == "virtual":
        return _virtual(check)
    return _wall(check)


def _model(check: dict[str, Any]) -> list[str]:
    reached = format_duration(float(check["sim_time_reached_s"]))
    faults = check.get("faults_applied") or []
    return [f"the model reached {reached} of scenario time"
            + ("" if check.get("complete", True) else ", short of the scenario's end: an incomplete run"),
            f"{_plural(len(faults), 'fault')} applied by the model"]


def _virtual(check: dict[str, Any]) -> list[str]:
    out = ["on the virtual clock the event loop's lag takes no scenario time, so the load generator "
           "cannot be the bottleneck"]
    if check.get("fds_max") is not None:
        out.append(f"at most {human_number(check['fds_max'])} descriptors were open in the one process")
    return out


def _wall(check: dict[str, Any]) -> list[str]:
    workers = check.get("workers") or []
    out = []
    if check.get("load_generator_bottleneck"):
        out.append("the load generator was the bottleneck: " + "; ".join(check.get("bottleneck_reasons") or []))
    elif workers:
        out.append(f"the load generator was not the bottleneck ({_plural(len(workers), 'worker')})")
    said = bool(check.get("load_generator_bottleneck"))  # the reasons named the worst lag and CPU
    worst = worst_worker(workers, "loop_lag_p99_s")
    if worst is not None and not said:
        i, w = worst
        out.append(lag_finding(w["loop_lag_p99_s"], worker_name(i, w)))
    spikes = check.get("lag_spikes") or []
    if spikes:
        t, lag = max(spikes, key=lambda s: s[1])
        floor = check.get("lag_spike_floor_s")
        out.append(f"{_plural(len(spikes), 'stall')} of the event loop"
                   + (f" of at least {_ms(floor)}" if floor else "")
                   + f"; the longest {_ms(lag)} at {format_duration(t)} of scenario time")
    worst = worst_worker(workers, "cpu_mean_pct")
    if worst is not None and not said:
        i, w = worst
        out.append(cpu_finding(w["cpu_mean_pct"], worker_name(i, w)))
    if check.get("emulation_cpu_cores") is not None:
        out.append(f"the emulation's processes took {_cores(check['emulation_cpu_cores'])} and the rest of the "
                   f"machine {_cores(check.get('other_cpu_cores') or 0.0)} meanwhile")
    elif check.get("host_cpu_mean_pct") is not None:
        out.append(f"the machine's CPUs were {check['host_cpu_mean_pct']:.0f}% busy on average")
    worst = worst_worker(workers, "started_late_s")
    if worst is not None and worst[1]["started_late_s"] > 0:
        i, w = worst
        out.append(f"{worker_name(i, w)} began {format_duration(w['started_late_s'])} of scenario time after "
                   "the run's origin (the latest to start)")
    fds = [w["fds_max"] for w in workers if w.get("fds_max") is not None]
    if fds:
        limit = check.get("fd_limit_per_process")
        bound = check.get("fleet_bound_by_fds")
        out.append(f"at most {human_number(max(fds))} descriptors were open in a worker"
                   + (f" (limit {human_number(limit)} per process" if limit else "")
                   + (f", enough for {human_number(bound)} clients)" if limit and bound else ")" if limit else ""))
    return out


def worst_worker(workers: list[dict], key: str) -> tuple[int, dict] | None:
    """The worker with the highest `key`, with its place in the list."""
    measured = [(i, w) for i, w in enumerate(workers) if w.get(key) is not None]
    return max(measured, key=lambda iw: iw[1][key]) if measured else None


def worker_name(i: int, worker: dict) -> str:
    """`worker 2`, and on a cluster its address."""
    return f"worker {i}" + (f" ({worker['address']})" if worker.get("address") else "")


def _plural(n: int, word: str) -> str:
    return f"{human_number(n)} {word}{'' if n == 1 else 's'}"


def _cores(n: float) -> str:
    return f"{human_number(round(n, 2))} cores"


def _ms(seconds: float) -> str:
    """Milliseconds for a person: `62 ms`, `0.4 ms`, `1,250 ms`."""
    return f"{human_number(round(seconds * 1000, 1))} ms"
