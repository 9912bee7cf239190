"""Reconnect storms: when many reconnects arrive together, compared with the run's usual rate.

Definition (the same for both engines, computed from `timeseries.csv`):
1. Reconnects are summed into bins of `bin_s` scenario seconds (default: the run's
   duration / 240, clamped to 1..60 s, so a day is judged per minute and a
   two-minute storm scenario per second).
2. A bin is stormy when its count exceeds `max(k × baseline, floor)`, where the
   baseline is the median bin count over the run and the floor is
   `max(min_floor, floor_fraction × clients)`: a storm needs both a jump over the
   usual rate and a noticeable share of the fleet.
3. Stormy bins separated by at most `merge_gap_bins` calm bins form one storm.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StormRule:
    k: float = 3.0
    floor_fraction: float = 0.02
    min_floor: float = 5.0
    merge_gap_bins: int = 1
    bin_s: float | None = None

    def bin_for(self, duration: float) -> float:
        return self.bin_s if self.bin_s else float(min(60.0, max(1.0, round(duration / 240.0))))


@dataclass(frozen=True)
class Storm:
    start_s: float
    end_s: float
    reconnects: int
    peak_per_s: float

    def to_dict(self) -> dict:
        return {"start_s": self.start_s, "end_s": self.end_s, "reconnects": self.reconnects,
                "peak_per_s": self.peak_per_s}


def detect_storms(reconnects_per_s: np.ndarray, clients: int, rule: StormRule = StormRule()
                  ) -> tuple[list[Storm], float]:
    """Storms in a per-second reconnect series, and the threshold (reconnects per bin) used."""
    per_s = np.asarray(reconnects_per_s, dtype=float)
    if per_s.size == 0:
        return [], 0.0
    width = max(1, int(rule.bin_for(float(per_s.size))))
    padded = np.pad(per_s, (0, (-per_s.size) % width))
    bins = padded.reshape(-1, width)
    counts = bins.sum(axis=1)
    threshold = max(rule.k * float(np.median(counts)), rule.min_floor, rule.floor_fraction * clients)
    stormy = np.nonzero(counts > threshold)[0]
    storms: list[Storm] = []
    group: list[int] = []
    for b in stormy:
        if group and b - group[-1] - 1 > rule.merge_gap_bins:  # more calm bins between than allowed
            storms.append(_storm(group, counts, bins, width, per_s.size))
            group = []
        group.append(int(b))
    if group:
        storms.append(_storm(group, counts, bins, width, per_s.size))
    return storms, threshold


def _storm(group: list[int], counts: np.ndarray, bins: np.ndarray, width: int, n: int) -> Storm:
    first, last = group[0], group[-1]
    return Storm(start_s=float(first * width), end_s=float(min((last + 1) * width, n)),
                 reconnects=int(counts[first:last + 1].sum()),
                 peak_per_s=float(bins[first:last + 1].max()))
