"""PromQL for a gate: the gate's own `promql`, or one derived from the server's metric list.

Gate files speak the run record's vocabulary (`connection_duration`, `closes{code="4401"}`);
the server exports `ws_connection_duration_seconds`, `ws_closes_total{code}`. This module
maps one onto the other through `system.server.metrics.METRICS`, so a gate file judges an
emulated run, a simulated day and a live staging Prometheus alike. What Prometheus can not
know (client-side counts such as lost messages, phases of a fault timeline) is refused
with the reason, and the verdict is `unknown`, never a guess.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

from formats.gates.names import ALIASES, CLIENT_SIDE
from formats.gates.spec import Gate
from system.server.metrics import EXPORTED, MetricSpec

BY_NAME: dict[str, MetricSpec] = {m.name: m for m in EXPORTED}
WINDOW_PLACEHOLDER = "$window"


class NotDerivable(ValueError):
    """Prometheus can not answer this gate; the message says why (it becomes the verdict's reason)."""


@dataclass(frozen=True)
class Query:
    expr: str
    baseline_expr: str | None = None      # for `Nx baseline` gates
    spec: MetricSpec | None = None        # the exported metric, when derived
    note: str = ""                        # how the query reads the gate, for provenance


def duration(seconds: float) -> str:
    """A PromQL duration literal: whole seconds when possible, else milliseconds."""
    if seconds <= 0 or not math.isfinite(seconds):
        raise ValueError(f"expected a positive window, got {seconds!r}")
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{max(1, round(seconds * 1000))}ms"


def resolve(metric: str) -> tuple[MetricSpec, tuple[tuple[str, str], ...]]:
    """The exported metric behind a gate's metric name (aliases, exported names, counters without _total)."""
    if metric in ALIASES:
        name, implied = ALIASES[metric]
        return BY_NAME[name], implied
    for name in (metric, f"{metric}_total"):
        if name in BY_NAME:
            return BY_NAME[name], ()
    if metric in CLIENT_SIDE:
        raise NotDerivable(f"{metric} is measured by the clients and exists only in a run record; "
                           "the server does not export it")
    raise NotDerivable(f"metric {metric!r} is not exported by the server (it exports {', '.join(BY_NAME)}); "
                       "state the query in the gate's `promql` field")


def query_for(gate: Gate, window_s: float, *, trailing_baseline: bool = False) -> Query:
    """The gate's PromQL over the last `window_s`. With `trailing_baseline` (alert rules, which
    judge continuously) a baseline is the rate in the window *before* this one, never one that
    includes it: otherwise a steady rate looks like a spike while history is short, and a real
    spike raises its own baseline."""
    if gate.fleet_factor is not None:
        raise NotDerivable("the threshold is a share of the fleet, and the fleet's size is the clients' "
                           "(the server does not export it); judge it on the run record")
    window = duration(window_s)
    if gate.promql:
        try:
            spec = resolve(gate.metric)[0]  # for bucket resolution and caveats, when it names a server metric
        except NotDerivable:
            spec = None
        return Query(gate.promql.replace(WINDOW_PLACEHOLDER, window), spec=spec,
                     note=f"the gate's own promql ({WINDOW_PLACEHOLDER} = {window})")
    if gate.phase.when != "run":
        raise NotDerivable(f"phase {gate.phase.to_dict()} follows the run's fault timeline, which Prometheus "
                           "does not have; state the query in the gate's `promql` field")
    spec, implied = resolve(gate.metric)
    labels = dict(implied)
    for key, value in gate.tags:
        if key not in spec.labels:
            raise NotDerivable(f"{spec.name} has no label {key!r} (its labels: {', '.join(spec.labels) or 'none'})")
        labels[key] = value
    # the other baselines (count, rate, gauge and histogram stats) are the window before already
    builder = {"counter": partial(_counter, trailing=trailing_baseline), "gauge": _gauge,
               "histogram": _histogram}[spec.type]
    expr, baseline, note = builder(gate, spec, labels, window_s)
    if gate.baseline_factor is not None and baseline is None:
        raise NotDerivable(f"a baseline-relative threshold on {gate.stat_label} of a {spec.type} is not derivable")
    return Query(expr, baseline if gate.baseline_factor is not None else None, spec, note)


def selector(name: str, labels: dict[str, str]) -> str:
    if not labels:
        return name
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _step(range_s: float, finest: float = 1.0) -> str:
    """Subquery resolution: at most ~1000 points over the range, never finer than `finest`."""
    return duration(max(1.0, math.ceil(finest), math.ceil(range_s / 1000)))


def _counter(gate: Gate, spec: MetricSpec, labels: dict[str, str], w: float, trailing: bool = False):
    sel, window = selector(spec.name, labels), duration(w)
    if gate.stat == "count":
        expr = f"sum(increase({sel}[{window}]))"
        return expr, f"sum(increase({sel}[{window}] offset {window}))", f"increase over {window}"
    if gate.stat == "rate":
        expr = f"sum(rate({sel}[{window}]))"
        return expr, f"sum(rate({sel}[{window}] offset {window}))", f"per-second rate over {window}"
    if gate.stat == "max_window_count":
        inner = duration(gate.window)
        expr = f"max_over_time(sum(increase({sel}[{inner}]))[{window}:{_step(w, gate.window / 10)}])"
        before = f" offset {window}" if trailing else ""
        # at least one event per window, as the run record's gate: a spike needs more than N events
        baseline = f"clamp_min(sum(increase({sel}[{window}]{before})) * {gate.window / w!r}, 1)"
        over = f"the {window} before" if trailing else f"the same {window}"
        return expr, baseline, (f"largest increase in any {inner} window within {window} (windows sampled every "
                                f"{_step(w, gate.window / 10)}); baseline: the mean per {inner} over {over}, "
                                f"at least 1")
    raise NotDerivable(f"stat {gate.stat_label} is not defined for the counter {spec.name} "
                       "(use count, rate or max_window_count)")


def _gauge(gate: Gate, spec: MetricSpec, labels: dict[str, str], w: float):
    sel, window, step = selector(spec.name, labels), duration(w), _step(w)
    if gate.stat == "value":
        return f"sum({sel})", None, "the value at the end of the window"
    if gate.stat in ("min", "max", "mean"):
        fn = {"min": "min_over_time", "max": "max_over_time", "mean": "avg_over_time"}[gate.stat]
        expr = f"{fn}(sum({sel})[{window}:{step}])"
        return expr, f"{fn}(sum({sel})[{window}:{step}] offset {window})", f"{gate.stat} over {window}"
    if gate.stat == "growth":
        quarter = duration(w / 4)
        last = f"avg_over_time(sum({sel})[{quarter}:{_step(w)}])"
        first = f"avg_over_time(sum({sel})[{quarter}:{_step(w)}] offset {duration(w * 3 / 4)})"
        return f"{last} / {first} - 1", None, "mean of the last quarter of the window over the first, minus 1"
    raise NotDerivable(f"stat {gate.stat_label} is not defined for the gauge {spec.name} "
                       "(use value, min, max, mean or growth)")


def _histogram(gate: Gate, spec: MetricSpec, labels: dict[str, str], w: float):
    window = duration(w)
    if gate.stat == "quantile":
        buckets = f"sum by (le) (increase({selector(spec.name + '_bucket', labels)}[{window}]))"
        return (f"histogram_quantile({gate.quantile!r}, {buckets})", None,
                f"{gate.stat_label} over {window}, interpolated inside its histogram bucket")
    count = f"sum(increase({selector(spec.name + '_count', labels)}[{window}]))"
    if gate.stat == "count":
        return count, count.replace(f"[{window}]", f"[{window}] offset {window}"), f"observations in {window}"
    if gate.stat == "mean":
        total = f"sum(increase({selector(spec.name + '_sum', labels)}[{window}]))"
        return f"{total} / {count}", None, f"mean over {window}"
    raise NotDerivable(f"stat {gate.stat_label} is not defined for the histogram {spec.name} "
                       "(use pN, mean or count)")
