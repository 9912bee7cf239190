"""Judging gates against a live Prometheus: the same `Gate`s in, the same `Verdict`s out.

Each gate becomes one instant query at the end of the window (see `promql`). A query
with no series, or NaN (a histogram with no observations), is `unknown`. A quantile is
read from histogram buckets, so it is known only to bucket resolution: when the
threshold falls strictly inside the bucket holding the estimate, the gate is `unknown`
rather than decided by interpolation. Lifetimes in the server's histogram are recorded
when a connection closes, so connections still open are missing (as in k6): a lifetime
quantile read from Prometheus is biased low, which makes a pass of `p95 >= 2h`
trustworthy and a fail worth a second look; the provenance says so.
"""
from __future__ import annotations

import bisect
import math
import time
from dataclasses import replace
from datetime import datetime
from typing import Any

from system.errors import UsageError
from formats.gates.evaluate import compare
from formats.gates.spec import Gate
from formats.gates.verdict import FAIL, PASS, UNKNOWN, Verdict
from harness.prom.api import PrometheusAPI, Sample
from harness.prom.promql import NotDerivable, Query, query_for
from system.units import parse_duration

LIFETIME_HISTOGRAM = "ws_connection_duration_seconds"


def parse_time(value: str | float | datetime | None) -> float:
    """Unix seconds from None (now), a number, "now", unix seconds as text, or RFC 3339."""
    if value is None:
        return time.time()
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if text == "now":
        return time.time()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--end: expected RFC 3339 (2026-11-26T06:00:00Z), unix seconds or 'now', "
                         f"got {value!r}") from None
    if parsed.tzinfo is None:
        raise UsageError(f"--end: {value!r} has no time zone; add Z or an offset such as +00:00")
    return parsed.timestamp()


def evaluate(gates: list[Gate], prometheus_url: str, window: float | str = 86400.0,
             end: str | float | datetime | None = None, *, time_scale: float = 1.0,
             timeout: float = 10.0) -> list[Verdict]:
    """Judge every gate over the wall-clock window [end - window, end].

    `time_scale` (scenario seconds per wall second) is for compressed emulated runs: the
    server measures wall time, the gates speak scenario time, so rolling windows shrink by
    it, lifetimes grow by it and rates shrink by it. Raises PrometheusUnavailable (exit 2)
    when Prometheus is down, before judging anything.
    """
    window_s = parse_duration(window)
    if window_s <= 0:
        raise UsageError(f"--window: expected a positive duration, got {window!r}")
    if time_scale <= 0:
        raise UsageError(f"time_scale: expected a positive factor, got {time_scale!r}")
    at = parse_time(end)
    api = PrometheusAPI(prometheus_url, timeout)
    try:
        api.check()
        return [judge(api, gate, window_s, at, time_scale) for gate in gates]
    finally:
        api.close()


def judge(api: PrometheusAPI, gate: Gate, window_s: float, at: float, time_scale: float = 1.0) -> Verdict:
    prov: dict[str, Any] = {"source": "prometheus", "url": api.url, "metric": gate.selector,
                            "stat": gate.stat_label, "window_s": window_s, "end": _iso(at)}
    threshold: Any = list(gate.value) if isinstance(gate.value, tuple) else gate.value
    if time_scale != 1.0:
        prov["time_scale"] = time_scale
        if gate.window:
            gate = replace(gate, window=gate.window / time_scale)
    try:
        query = query_for(gate, window_s)
    except NotDerivable as why:
        prov["reason"] = str(why)
        return Verdict(gate.name, UNKNOWN, gate.strict, None, gate.op, threshold, prov)
    prov["promql"] = query.expr
    if query.note:
        prov["reads"] = query.note
    if query.spec is not None and query.spec.name == LIFETIME_HISTOGRAM:
        prov["caveat"] = "closed connections only (recorded at close): biased low against open ones"
    if query.baseline_expr is not None:
        base = [s for s in api.query(query.baseline_expr, at) if math.isfinite(s.value)]
        if not base:
            prov["reason"] = f"no baseline: {query.baseline_expr} returned no finite value"
            return Verdict(gate.name, UNKNOWN, gate.strict, None, gate.op, None, prov)
        base_value = base[0].value * _scale_factor(gate, query, time_scale)
        threshold = gate.baseline_factor * base_value
        prov["baseline"] = {"promql": query.baseline_expr, "value": base_value, "factor": gate.baseline_factor}
    samples = api.query(query.expr, at)
    if not samples and _counter_is_scraped(api, gate, query, at):
        samples = [Sample({}, 0.0)]
        prov["zero"] = f"no {gate.selector} series while {query.spec.name} is scraped: counted as 0"
    numbers = [s for s in samples if not math.isnan(s.value)]
    if not numbers:
        prov["reason"] = ("no data: the query returned no series" if not samples
                          else "no data: the query returned NaN (nothing observed in the window)")
        return Verdict(gate.name, UNKNOWN, gate.strict, None, gate.op, threshold, prov)
    chosen = _worst(gate.op, numbers, threshold)
    prov["series"] = len(numbers)
    if chosen.labels:
        prov["labels"] = chosen.labels
    verdict, observed = _decide(gate, query, chosen.value, threshold, prov, _scale_factor(gate, query, time_scale))
    return Verdict(gate.name, verdict, gate.strict, observed, gate.op, threshold, prov)


def _counter_is_scraped(api: PrometheusAPI, gate: Gate, query: Query, at: float) -> bool:
    """A counter label set that never happened has no series; that is 0 only if the metric itself exists."""
    if query.spec is None or query.spec.type != "counter" or gate.stat not in ("count", "rate", "max_window_count"):
        return False
    return bool(api.query(f"count({query.spec.name})", at))


def _scale_factor(gate: Gate, query: Query, time_scale: float) -> float:
    """Wall → scenario units for this gate's observed value."""
    if time_scale == 1.0 or query.spec is None:
        return 1.0
    if gate.stat == "rate":
        return 1.0 / time_scale
    if query.spec.name == LIFETIME_HISTOGRAM and gate.stat in ("quantile", "mean"):
        return time_scale
    return 1.0


def _decide(gate: Gate, query: Query, value: float, threshold: Any, prov: dict[str, Any],
            scale: float = 1.0) -> tuple[str, float]:
    """The verdict at the query's resolution: bucket bounds for quantiles, exact otherwise (scenario units)."""
    value *= scale
    if gate.stat != "quantile" or query.spec is None or not query.spec.buckets:
        return (PASS if compare(gate.op, value, _tuple(threshold)) else FAIL), value
    lo, hi = bucket_of(value, tuple(b * scale for b in query.spec.buckets))
    prov["bucket"] = [lo, "+Inf" if math.isinf(hi) else hi]
    prov["resolution"] = "histogram_quantile interpolates inside a bucket: the true quantile lies in 'bucket'"
    observed = value if math.isfinite(value) else lo
    outcomes = {compare(gate.op, x, _tuple(threshold)) for x in _probe_points(lo, hi, threshold)}
    if len(outcomes) > 1:
        prov["reason"] = "the threshold lies inside the bucket holding the estimate: undecidable at this resolution"
        return UNKNOWN, observed
    return (PASS if outcomes.pop() else FAIL), observed


def bucket_of(value: float, buckets: tuple[float, ...]) -> tuple[float, float]:
    """The (lower, upper] histogram bucket holding `value`.

    histogram_quantile answers the last finite bound both for a quantile at the top of the
    last finite bucket and for one in the +Inf bucket, so that value means (previous, +Inf).
    """
    bounds = sorted(buckets)
    if value >= bounds[-1]:
        return (bounds[-2] if len(bounds) > 1 else 0.0), math.inf
    i = bisect.bisect_left(bounds, value)
    lower = 0.0 if i == 0 else bounds[i - 1]
    upper = bounds[i] if i < len(bounds) else math.inf
    return lower, upper


def _probe_points(lo: float, hi: float, threshold: Any) -> list[float]:
    """Values that stand for every possible true quantile in (lo, hi]: the ends and around each threshold."""
    points = [math.nextafter(lo, math.inf), hi if math.isfinite(hi) else lo * 1e6 + 1]
    for t in (threshold if isinstance(threshold, list) else [threshold]):
        if lo < t < hi:
            points += [t, math.nextafter(t, -math.inf), math.nextafter(t, math.inf)]
    return points


def _worst(op: str, samples: list[Sample], threshold: Any) -> Sample:
    """With several series, the one that decides: the first failing one, else the closest to failing."""
    failing = [s for s in samples if not compare(op, s.value, _tuple(threshold))]
    if failing:
        return failing[0]
    if op in ("<", "<="):
        return max(samples, key=lambda s: s.value)
    if op in (">", ">="):
        return min(samples, key=lambda s: s.value)
    return samples[0]


def _tuple(threshold: Any) -> Any:
    return tuple(threshold) if isinstance(threshold, list) else threshold


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at).astimezone().isoformat(timespec="seconds")
