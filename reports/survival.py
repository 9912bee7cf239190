"""Kaplan–Meier survival of connection lifetimes, the data behind the survival plot.

Connections still open when a run ends are right-censored: they count as "lived at
least this long", never as "died now" and never dropped (k6 drops them, which is why
its lifetime percentiles lie). A quantile the curve never reaches is None: the run did
not observe long enough to estimate it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-12


@dataclass(frozen=True)
class Survival:
    """S(t) as a step function: `survival[i]` holds from `times[i]` until the next event time."""

    times: np.ndarray
    survival: np.ndarray
    censored_times: np.ndarray
    censored_survival: np.ndarray  # S at each censored time, where its mark sits on the curve
    n: int

    def at(self, t: float) -> float:
        i = int(np.searchsorted(self.times, t, side="right"))
        return 1.0 if i == 0 else float(self.survival[i - 1])

    def quantile(self, q: float) -> float | None:
        """Smallest lifetime t with S(t) <= 1 - q (p95: q = 0.95); None if never reached."""
        reached = np.nonzero(self.survival <= 1.0 - q + _EPS)[0]
        return float(self.times[reached[0]]) if len(reached) else None


def kaplan_meier(durations: np.ndarray, censored: np.ndarray) -> Survival:
    """Product-limit estimate; a censoring tied with a death counts as still at risk at that time."""
    durations = np.asarray(durations, dtype=float)
    censored = np.asarray(censored, dtype=bool)
    if durations.shape != censored.shape:
        raise ValueError("durations and censored flags must have the same length")
    keep = np.isfinite(durations)
    durations, censored = durations[keep], censored[keep]
    ordered = np.sort(durations)
    times, deaths = np.unique(durations[~censored], return_counts=True)
    at_risk = len(ordered) - np.searchsorted(ordered, times, side="left")
    survival = np.cumprod(1.0 - deaths / at_risk) if len(times) else np.array([], dtype=float)
    c_times = np.sort(durations[censored])
    steps = np.searchsorted(times, c_times, side="right")
    c_surv = np.where(steps == 0, 1.0, survival[np.maximum(steps - 1, 0)] if len(times) else 1.0)
    return Survival(times, survival, c_times, c_surv, int(len(durations)))
