"""The before/after table in the seed system's form, filled with measured values.

Storms are counted by one rule (`harness.record.storms`); the row names it, and a pair
counted by two different rules (records finalized by different versions) shows no change.

Which run is "before": when the runs include exactly one legacy and one fixed run of the
same scenario and engine, legacy is before and fixed after (the seed's question: what did
the fixes buy?). Otherwise runs are compared pairwise in the order given.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import groupby

from reports.record import Run, number
from system.units import format_duration

DAY_S = 86400.0


@dataclass(frozen=True)
class Metric:
    key: str          # summary.json key
    label: str
    per_day: bool     # a count normalised to a day of scenario time; else a duration
    seed_before: str  # the seed system's expectation (DESIGN.md), for reference
    seed_after: str


METRICS = (
    Metric("storms", "reconnection storms", True, "~50/day", "~2/day"),
    Metric("http_403", "403 auth errors", True, "~20/day", "~1/day"),
    Metric("duration_p95_s", "connection duration p95", False, "~15 min", "≥ 2 h"),
    Metric("duplicates_displayed", "duplicate messages", True, "~5/day", "0/day"),
    Metric("manual_refreshes", "manual refreshes", True, "~30/day", "~5/day"),
    Metric("lost_messages", "lost messages", True, "", ""),
    Metric("reconnect_attempts", "reconnect attempts", True, "", ""),
)


@dataclass(frozen=True)
class Row:
    metric: Metric
    before: float | None   # per day for counts, seconds for durations
    after: float | None
    before_text: str
    after_text: str
    change_text: str


@dataclass(frozen=True)
class Comparison:
    before: Run
    after: Run
    legacy_vs_fixed: bool
    rows: list[Row]


def pairs(runs: list[Run]) -> tuple[list[tuple[Run, Run]], bool]:
    """(before, after) pairs, and whether they are legacy-vs-fixed pairs."""
    runs = [r for r in runs if r.summary is not None]
    key = lambda r: (r.scenario_name, r.engine)  # noqa: E731
    found = []
    for _, group in groupby(sorted(runs, key=key), key=key):
        group = list(group)
        legacy = [r for r in group if r.profile == "legacy"]
        fixed = [r for r in group if r.profile == "fixed"]
        if len(legacy) == 1 and len(fixed) == 1:
            found.append((legacy[0], fixed[0]))
    if found:
        order = {id(r): i for i, r in enumerate(runs)}
        return sorted(found, key=lambda p: order[id(p[0])]), True
    return list(zip(runs, runs[1:])), False


def compare(runs: list[Run]) -> list[Comparison]:
    chosen, legacy_vs_fixed = pairs(runs)
    return [Comparison(b, a, legacy_vs_fixed, [_row(m, b, a) for m in METRICS]) for b, a in chosen]


def storm_rule(before: Run, after: Run) -> str | None:
    """The storm rule both runs were counted by (summary `storm_rule`); "" when they differ, None when unnamed."""
    rules = {(r.summary or {}).get("storm_rule") for r in (before, after)}
    if rules == {None}:
        return None
    return rules.pop() if len(rules) == 1 else ""


def metric_value(run: Run, metric: Metric) -> float | None:
    """Per day for counts (None when the run's duration is unknown), seconds for durations."""
    raw = (run.summary or {}).get(metric.key)
    value = float(len(raw)) if isinstance(raw, list) else number(raw)
    if value is None or not metric.per_day:
        return value
    if not run.duration_s:
        return None
    return value * DAY_S / run.duration_s


def change_text(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "n/a"
    if before == 0:
        return "0%" if after == 0 else "new (was 0)"
    return f"{(after - before) / before * 100:+.0f}%"


def lower_bound(run: Run, metric: Metric) -> float | None:
    """For a duration quantile the run never reached (Kaplan–Meier above its level to the end):
    the longest lifetime observed, which the quantile exceeds."""
    summary = run.summary or {}
    if metric.per_day or metric.key not in summary or summary[metric.key] is not None:
        return None
    return number(summary.get("duration_observed_max_s"))


def _row(metric: Metric, before: Run, after: Run) -> Row:
    b, a = metric_value(before, metric), metric_value(after, metric)
    change = change_text(b, a)
    bound = lower_bound(after, metric)
    if b and a is None and bound is not None and bound > b:
        change = f"> {(bound - b) / b * 100:+.0f}%"
    if metric.key == "storms":
        rule = storm_rule(before, after)
        if rule == "":   # counted by two different rules: the numbers do not compare
            metric, change = replace(metric, label=f"{metric.label} (counted by different rules)"), "n/a"
        elif rule:
            metric = replace(metric, label=f"{metric.label}: {rule}")
    return Row(metric, b, a, _text(metric, before, b), _text(metric, after, a), change)


def _text(metric: Metric, run: Run, value: float | None) -> str:
    raw = (run.summary or {}).get(metric.key)
    if not metric.per_day:
        if value is not None:
            return format_duration(value)
        bound = lower_bound(run, metric)
        if bound is not None:
            return f"> {format_duration(bound)} (not reached)"
        return "unknown (not observed long enough)" if metric.key in (run.summary or {}) else "n/a"
    if value is None:
        count = float(len(raw)) if isinstance(raw, list) else number(raw)
        return "n/a" if count is None else f"{count:g} (duration unknown)"
    per_day = f"{value:.1f}/day" if value < 10 else f"{value:.0f}/day"
    if run.duration_s and abs(run.duration_s - DAY_S) > 1:
        count = len(raw) if isinstance(raw, list) else number(raw)
        per_day += f" ({count:g} in {format_duration(run.duration_s)})"
    return per_day
