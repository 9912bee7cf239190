"""How far a wall-clock emulation may have displaced its records: read from `meta.json` `self_check`.

A part of the run record format (the emulation writes the loop lags, `harness.emulate.selfcheck`),
read by the gates (a windowed gate the run could not resolve is unknown) and by `validate`.
"""
from __future__ import annotations

#: a loop lag at least this long (wall seconds) is kept with its time (`self_check.lag_spikes`)
SPIKE_FLOOR = 0.002


def time_resolution(self_check: dict, time_scale: float, around: tuple[float, float] | None = None) -> float | None:
    """How far (scenario seconds) the emulation may have displaced a record stamped in `around`
    (scenario seconds; None: anywhere in the run): the longest loop lag that overlaps it, times the
    scale. A herd occupies the workers' loops, and every record due meanwhile is stamped when the
    loop gets to it, so a 1-s bin is only resolved where this is well below a second. A lag below
    the spike floor goes unrecorded, so the floor bounds the resolution from below (at x720 it is
    1.4 s of scenario time: a scenario second there is 1.4 ms of wall time). Records made before
    lags were timed give the whole run's longest lag; None when nothing was measured."""
    spikes = self_check.get("lag_spikes")
    if spikes is None:
        lags = [w.get("loop_lag_max_s") for w in self_check.get("workers", ()) if w.get("loop_lag_max_s") is not None]
        return max(lags) * time_scale if lags else None
    floor = float(self_check.get("lag_spike_floor_s", SPIKE_FLOOR))
    lags = [lag for end, lag in spikes  # the loop was blocked from end - lag (in scenario time) to end
            if around is None or (end >= around[0] and end - lag * time_scale <= around[1])]
    return max([floor, *lags]) * time_scale
