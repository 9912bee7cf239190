"""Reconnect storms: bursts of reconnects arriving together, one rule for every run.

Reconnects are summed per bin of `bin_s` (60 s). A storm is a *peak* of that series
1. rising at least `rise_fraction` (10 %) of the fleet above the level around it, and
2. beyond noise: its window (the bins around the peak above half its rise) holds more
   reconnects than steady Poisson churn at the surrounding level would give with
   probability `alpha` (1e-9). That level is the median of the `level_bins` (10) bins on
   each side of the window, and at least one reconnect per client per hour.
Both engines (`finalize`), the gates (`storms`) and the reports call `detect_storms`;
`StormRule.describe()` names the rule wherever a storm count is shown.

Why this shape (measured on simulated staging days, legacy and fixed, many seeds):
- The bar does not move with the run's own behaviour. The former bar, 3 × the run's
  median bin, put the legacy client (which reconnects all the time) against a raised,
  varying bar: its count went 37/day in one `make run` and 4/day in the next.
- Peaks, not runs of bins above a level: legacy's token-expiry waves ride on a churn
  that is itself above any fixed level, so merged runs fuse hours of waves into a few
  long "storms". A peak's rise is its topographic prominence (`scipy.signal.find_peaks`:
  the height above the higher of the lowest points between it and the next higher peak
  on either side), so each wave, a ragged crest or a herd spread over two bins counts once.
- The fleet share keeps a large fleet's harmless wobbles out (at 100,000 clients 1 % is
  far beyond Poisson noise). The noise test keeps a small fleet's random clumps out:
  prominence measures from the lowest minutes, so under churn of 25 % of 300 clients a
  minute noise alone "rises" over 10 %; against the median level it is no storm. In a
  sampled simulation each counted reconnect stands for `weight` clients, so the test runs
  on counts divided by the weight.
- Bins of 60 s, for every scenario length: twice the client's backoff cap (30 s), so one
  herd however a careful client spreads it (restart window 10 s, full-jitter backoff up
  to 30 s) is one peak, and waves minutes apart stay apart.
- A storm's time is its busiest second (`peak_s`), which gates use to place it in a
  phase (its first bin may begin before the fault that caused it).
- Edges: the series is padded with its own first and last bin, so a burst needs a rise
  and a fall inside the run; one still rising when the run ends is not counted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks
from scipy.stats import poisson


@dataclass(frozen=True)
class StormRule:
    bin_s: float = 60.0          # scenario seconds per bin
    rise_fraction: float = 0.10  # the least rise above the surrounding level, as a share of the fleet
    alpha: float = 1e-9          # a storm's total must be less likely than this as steady Poisson churn
    level_bins: int = 10         # bins on each side whose median is the level around a storm
    min_rise: float = 1.0        # reconnects: the least rise whatever the fleet (a fleet of 0 or 1)
    steady_per_client_h: float = 1.0  # the noise test's least level: each client reconnecting once an hour

    def steady_level(self, clients: int) -> float:
        """Reconnects per bin of a fleet churning steadily at `steady_per_client_h`."""
        return self.steady_per_client_h * clients * self.bin_s / 3600.0

    def rise_for(self, clients: int) -> float:
        """The least rise (reconnects per bin) the fleet part of the rule asks for."""
        return max(self.min_rise, self.rise_fraction * clients)

    def describe(self) -> str:
        """The rule in one line, for tables and summaries."""
        return (f"{self.bin_s:g}-s peaks of reconnects ≥ {self.rise_fraction:.0%} of the fleet above their "
                f"surroundings (Poisson p < {self.alpha:g})")


@dataclass(frozen=True)
class Storm:
    start_s: float
    end_s: float
    reconnects: int       # in the storm's bins
    peak_per_s: float     # the most reconnects in one second of it
    peak_s: float         # that second (the first, on a tie): when the storm happened, to the second
    rise: float           # reconnects per bin above the level around the peak bin

    def to_dict(self) -> dict:
        return {"start_s": self.start_s, "end_s": self.end_s, "reconnects": self.reconnects,
                "peak_per_s": self.peak_per_s, "peak_s": self.peak_s, "rise": self.rise}


def detect_storms(reconnects_per_s: np.ndarray, clients: int, rule: StormRule = StormRule(),
                  *, weight: float = 1.0) -> tuple[list[Storm], float]:
    """Storms in a per-second reconnect series, and the fleet part of the rise they needed (per bin).

    `weight`: how many clients each counted reconnect stands for (a sampled simulation's
    `meta.json` `sampling.weight`); it scales the noise test only.
    """
    per_s = np.asarray(reconnects_per_s, dtype=float)
    rise = rule.rise_for(clients)
    if per_s.size == 0 or clients <= 0:   # no fleet, no share of it: nothing to judge
        return [], rise
    width = max(1, int(round(rule.bin_s)))
    counts = np.pad(per_s, (0, (-per_s.size) % width)).reshape(-1, width).sum(axis=1)
    levels = np.pad(counts, 1, mode="edge")
    peaks, props = find_peaks(levels, prominence=rise, width=0, rel_height=0.5)
    storms: list[Storm] = []
    for k in range(peaks.size):
        first = max(int(np.ceil(props["left_ips"][k])), 1) - 1    # back to unpadded bin numbers
        last = min(int(np.floor(props["right_ips"][k])), counts.size) - 1
        if _noise_p(counts, first, last, rule, clients, weight) >= rule.alpha:
            continue
        start, end = first * width, min((last + 1) * width, per_s.size)
        inside = per_s[start:end]
        storms.append(Storm(start_s=float(start), end_s=float(end), reconnects=int(inside.sum()),
                            peak_per_s=float(inside.max()), peak_s=float(start + int(np.argmax(inside))),
                            rise=float(props["prominences"][k])))
    return storms, rise


def _noise_p(counts: np.ndarray, first: int, last: int, rule: StormRule, clients: int, weight: float) -> float:
    """P(a steady Poisson churn at the level around bins first..last gives their total or more).

    The level is the median of `rule.level_bins` bins on each side (robust to a neighbouring
    storm and to one unusually quiet minute), at least the fleet's steady churn; counts are
    divided by the sampling weight, since that is what is random."""
    before, after = counts[max(0, first - rule.level_bins):first], counts[last + 1:last + 1 + rule.level_bins]
    around = np.concatenate([before, after])
    level = max(float(np.median(around)) if around.size else 0.0, rule.steady_level(clients))
    w = max(float(weight), 1.0)
    total = float(counts[first:last + 1].sum())
    return float(poisson.sf(round(total / w) - 1, (last - first + 1) * level / w))


def sampling_weight(meta: dict) -> float:
    """How many clients each simulated agent stands for (`meta.json` `sampling.weight`; 1 when exact)."""
    sampling = meta.get("sampling") if isinstance(meta, dict) else None
    try:
        return max(float((sampling or {}).get("weight") or 1.0), 1.0)
    except (TypeError, ValueError):
        return 1.0
