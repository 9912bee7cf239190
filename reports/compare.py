"""The before/after table in the seed system's form, filled with measured values.

Storms are counted by one rule (`formats.record.storms`); the row names it, and a pair
counted by two different rules (records finalized by different versions) shows no change.

Which run is "before": when the runs include exactly one legacy and one fixed run of the
same scenario, engine and fleet size, legacy is before and fixed after (the seed's question:
what did the fixes buy?). Otherwise runs are compared pairwise in the order given, side by
side and never as before/after; when their engines or fleet sizes differ, counts are per
1000 clients (a 300-client emulation beside a 100k-client simulation).

Counts are what the run record's summary says (the numbers the gates judged), shown per
day only for runs of a day or longer; a shorter run shows its count over its length.
The seed's expectations live in `scenarios/expectations/seed.yaml`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from itertools import groupby
from pathlib import Path

import yaml

from reports.record import Run, number
from system.units import format_duration

DAY_S = 86400.0
PER_CLIENTS = 1000
SEED_FILE = "expectations/seed.yaml"  # under scenarios/, outside the library of scenario files


@dataclass(frozen=True)
class Metric:
    key: str          # summary.json key
    label: str
    per_day: bool     # a count (rates compare across run lengths); else a duration
    seed_before: str = ""  # the seed system's expectation (scenarios/expectations/seed.yaml)
    seed_after: str = ""


@lru_cache(maxsize=1)
def seed_expectations() -> dict[str, tuple[str, str]]:
    """key -> (before, after), from the repository's scenarios/expectations/seed.yaml."""
    path = Path(str(resources.files("scenarios"))) / SEED_FILE
    rows = yaml.safe_load(path.read_text(encoding="utf-8"))["rows"]
    return {row["key"]: (str(row["before"]), str(row["after"])) for row in rows}


def _metric(key: str, label: str, per_day: bool) -> Metric:
    before, after = seed_expectations().get(key, ("", ""))
    return Metric(key, label, per_day, before, after)


METRICS = (
    _metric("storms", "reconnection storms", True),
    _metric("http_403", "403 auth errors", True),
    _metric("duration_p95_s", "connection duration p95", False),
    _metric("duplicates_displayed", "duplicate messages", True),
    _metric("manual_refreshes", "manual refreshes", True),
    _metric("lost_messages", "lost messages", True),
    _metric("lost_user_messages", "typed messages lost (client to server)", True),
    _metric("messages_indeterminate", "messages indeterminate (fate unknown at the end)", True),
    _metric("reconnect_attempts", "reconnect attempts", True),
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
    before: Run       # with `legacy_vs_fixed`; otherwise just the first of the two
    after: Run
    legacy_vs_fixed: bool
    rows: list[Row]
    per_client: bool = False  # engines or fleet sizes differ: counts per PER_CLIENTS clients


def per_client(a: Run, b: Run) -> bool:
    return a.engine != b.engine or a.clients != b.clients


def pairs(runs: list[Run]) -> tuple[list[tuple[Run, Run]], bool]:
    """(before, after) pairs, and whether they are legacy-vs-fixed pairs."""
    runs = [r for r in runs if r.summary is not None]
    key = lambda r: (r.scenario_name, r.engine, r.clients or 0)  # noqa: E731
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
    out = []
    for b, a in chosen:
        scaled = per_client(b, a)
        out.append(Comparison(b, a, legacy_vs_fixed, [_row(m, b, a, scaled) for m in METRICS], scaled))
    return out


def storm_rule(before: Run, after: Run) -> str | None:
    """The storm rule both runs were counted by (summary `storm_rule`); "" when they differ, None when unnamed."""
    rules = {(r.summary or {}).get("storm_rule") for r in (before, after)}
    if rules == {None}:
        return None
    return rules.pop() if len(rules) == 1 else ""


def count_of(run: Run, metric: Metric) -> float | None:
    raw = (run.summary or {}).get(metric.key)
    return float(len(raw)) if isinstance(raw, list) else number(raw)


def metric_value(run: Run, metric: Metric, scaled: bool = False) -> float | None:
    """Per day for counts (None when the run's duration is unknown; per PER_CLIENTS clients
    too with `scaled`), seconds for durations."""
    value = count_of(run, metric)
    if value is None or not metric.per_day:
        return value
    if not run.duration_s or (scaled and not run.clients):
        return None
    return value * DAY_S / run.duration_s * (PER_CLIENTS / run.clients if scaled else 1.0)


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


def _row(metric: Metric, before: Run, after: Run, scaled: bool = False) -> Row:
    b, a = metric_value(before, metric, scaled), metric_value(after, metric, scaled)
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
    return Row(metric, b, a, _text(metric, before, b, scaled), _text(metric, after, a, scaled), change)


def count_text(count: float) -> str:
    return f"{count:,.0f}" if float(count).is_integer() else f"{count:,.1f}"


def _text(metric: Metric, run: Run, value: float | None, scaled: bool = False) -> str:
    """A count over the run's own length ("757 in 30m"), per day only for a run of a day or
    longer ("36,336/day"); per 1000 clients and day when two unlike runs are compared."""
    if not metric.per_day:
        if value is not None:
            return format_duration(value)
        bound = lower_bound(run, metric)
        if bound is not None:
            return f"> {format_duration(bound)} (not reached)"
        return "unknown (not observed long enough)" if metric.key in (run.summary or {}) else "n/a"
    count = count_of(run, metric)
    if count is None:
        return "n/a"
    if not run.duration_s:
        return f"{count_text(count)} (duration unknown)"
    over = f"{count_text(count)} in {format_duration(run.duration_s)}"
    if scaled and value is not None:
        return f"{value:,.1f} per {PER_CLIENTS:,} clients per day ({over}, {run.clients:,} clients)"
    if run.duration_s < DAY_S - 1:
        return over
    per_day = f"{value:,.1f}/day" if value < 10 else f"{value:,.0f}/day"
    return per_day if abs(run.duration_s - DAY_S) <= 1 else f"{per_day} ({over})"
