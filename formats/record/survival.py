"""Connection lifetimes with right-censoring: the Kaplan–Meier product-limit estimator.

A connection still open when the run stops is evidence that its lifetime is at
least that long; dropping it (as k6 does) biases lifetime quantiles towards the
connections that died early. When the estimate never falls to the level a
quantile needs, that quantile lies beyond the longest observation: it is reported
as unknown (`None`) together with that lower bound, never as a number.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Survival:
    """S(t) as a step function: `survival[i]` holds from `times[i]` until the next end. The one
    estimator of the bench: the gates' quantiles and the reports' survival plot read it alike."""

    times: np.ndarray       # distinct times at which at least one connection ended
    survival: np.ndarray    # S(t) just after each of those times
    n: int                  # connections observed (their weights' sum)
    events: int             # connections that ended (not censored)
    t_max: float            # longest observation, ended or censored
    censored_times: np.ndarray = field(default_factory=lambda: np.empty(0))  # sorted
    censored_survival: np.ndarray = field(default_factory=lambda: np.empty(0))  # S at each, where its mark sits

    def at(self, t: float) -> float:
        i = int(np.searchsorted(self.times, t, side="right"))
        return 1.0 if i == 0 else float(self.survival[i - 1])

    def quantile(self, q: float) -> float | None:
        """Smallest t with S(t) <= 1 - q; None when the estimate never gets there (or no data)."""
        if self.n == 0:
            return None
        reached = np.nonzero(self.survival <= 1.0 - q + 1e-12)[0]
        return float(self.times[reached[0]]) if reached.size else None

    def restricted_mean(self) -> tuple[float | None, bool]:
        """Area under S(t) up to t_max, and whether it is the mean itself (False: a lower bound,
        because the longest observation was censored and S has not reached 0)."""
        if self.n == 0:
            return None, False
        edges = np.concatenate(([0.0], self.times, [self.t_max]))
        levels = np.concatenate(([1.0], self.survival))
        area = float(np.sum(levels * np.diff(edges)))
        exact = bool(self.survival.size and self.survival[-1] <= 1e-12)
        return area, exact


LOOKUP_CHUNK = 1 << 20  # times looked up among the censorings at once


def kaplan_meier(durations: np.ndarray, ended: np.ndarray, weights: np.ndarray | None = None) -> Survival:
    """The product-limit estimate from lifetimes and a flag per lifetime: True ended, False censored.

    At tied times, ends are counted before censorings (the usual convention: a censoring tied with an
    end was still at risk then). Lifetimes that are not finite (no handshake) are left out.
    `weights`: the connections each lifetime stands for (a weighted model agent's row), so the
    estimate is that of the table with each row repeated that many times.
    """
    durations = np.asarray(durations, dtype=float)
    ended = np.asarray(ended, dtype=bool)
    if weights is not None:
        weights = np.asarray(weights)
        weights = weights if weights.dtype.kind in "iuf" else weights.astype(float)
    if durations.shape != ended.shape or (weights is not None and durations.shape != weights.shape):
        raise ValueError("durations, ended flags and weights must have the same length")
    keep = np.isfinite(durations)
    if not keep.all():
        durations, ended, weights = durations[keep], ended[keep], None if weights is None else weights[keep]
    if durations.size == 0:
        return Survival(np.empty(0), np.empty(0), 0, 0, 0.0)
    # ends and censorings sorted apart, and every array let go (or reused) as soon as it is spent:
    # a fleet's table has tens of millions of lifetimes, nearly each a time of its own
    end_times, ended_by = _by_time(durations, ended, weights)
    c_times, censored_by = _by_time(durations, ~ended, weights)
    ends = _weight_of(ended_by, end_times.size)
    total = ends + _weight_of(censored_by, c_times.size)
    t_max = max(end_times[-1] if end_times.size else -np.inf, c_times[-1] if c_times.size else -np.inf)
    first = np.flatnonzero(np.concatenate(([end_times.size > 0], end_times[1:] != end_times[:-1])))
    times = end_times[first]
    del end_times
    before = _weight_of(ended_by, first)  # of the ends before each time, then of every lifetime
    del first
    ends_at = np.diff(before, append=ends)
    for lo in range(0, times.size, LOOKUP_CHUNK):  # the censorings before each time, a chunk of times at a time
        before[lo:lo + LOOKUP_CHUNK] += _weight_of(censored_by, np.searchsorted(c_times, times[lo:lo + LOOKUP_CHUNK]))
    at_risk = np.subtract(total, before, out=before)  # still observed just before each time
    keep = ends_at > 0
    if not keep.all():
        times, ends_at, at_risk = times[keep], ends_at[keep], at_risk[keep]
    factors = np.subtract(1.0, np.divide(ends_at, at_risk, out=ends_at), out=ends_at)
    del at_risk, before
    survival = np.cumprod(factors, out=factors)
    steps = np.searchsorted(times, c_times, side="right")
    c_surv = survival[np.maximum(steps - 1, 0)] if times.size else np.ones(c_times.size)
    c_surv = np.where(steps == 0, 1.0, c_surv)
    return Survival(times, survival, int(round(total)), int(round(ends)), float(t_max), c_times, c_surv)


def _by_time(durations: np.ndarray, which: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | float]:
    """The lifetimes `which` picks, sorted, and the weight of the first k of them for every k
    (from 0): an array, or the one weight they all have (`_weight_of` reads either). Weights are
    whole numbers (connections), so these sums are exact in any order, and the estimate is the
    one a sort of the whole table's rows (ends first at ties) would give."""
    d = durations[which]
    w = None if weights is None else weights[which]
    if w is None or not w.size or w.min() == w.max():
        d.sort()
        return d, 1.0 if w is None or not w.size else float(w[0])
    order = np.argsort(d, kind="stable")
    return d[order], np.concatenate(([0.0], np.cumsum(w[order], dtype=float)))


def _weight_of(by: np.ndarray | float, k: np.ndarray | int) -> np.ndarray | float:
    """The weight of the first `k` sorted lifetimes (`_by_time`)."""
    return by[k] if isinstance(by, np.ndarray) else k * by
