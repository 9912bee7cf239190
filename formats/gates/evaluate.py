"""Judging gates against a run record.

Where each metric comes from (every time in scenario seconds):
- `connection_duration`: connections.csv, Kaplan–Meier over the connections opened in
  the phase. A quantile or mean the estimate never reaches lies beyond the longest
  observation; the gate is decided from that lower bound when it can be (p95 ≥ 2h
  passes when 2h was observed and fewer than 5% ended by then), else unknown.
- counters, per second from timeseries.csv: `attempts`, `reconnects`, `opens`, `closes`,
  `closes{code="N"}`, `http_403`, `handshake_rejections{status="N"}` (any status, from
  connections.csv), `manual_refreshes`, `displayed`, `duplicates_displayed`.
- gauge, per second: `active_connections` (timeseries `active`).
- `storms`: reconnect storms (`formats.record.storms`) whose busiest second is in the phase; count or rate
  (a rate threshold may be written per day: `2/d`).
- delivery, whole run only: `lost_messages`, `reordered_messages`, `unexpected_messages`,
  `messages_sent` (the ledger); the other direction, `lost_user_messages`,
  `duplicated_user_messages`, `user_messages_sent` (what clients typed against `received.csv`).
- server metrics from scrapes.jsonl: `agent_execution` (the `agent_execution_seconds`
  histogram; quantiles interpolated within buckets as Prometheus' histogram_quantile
  does), `memory` (`process_resident_memory_bytes`), `harness.prom`'s aliases (`tokens_issued`,
  `connections_opened`, ...), and any other scraped metric by name (counters: increase over
  the phase; gauges: the scraped values). Absent → unknown.

Phases: `run` is [0, end); `before: K` is [0, first K fault); `during: K` covers each K
fault's time in force (at least one second); `after: K, within: T` covers [fault end,
fault end + T). `*` matches any fault kind. Times in force are the engine's measured ones
when the record has them (`RunRecord.fault_windows`: a restart lasts until the server is
back), else the schedule's `at` / `for`.

Stats: count, rate (per second), mean, min, max, value (the last), pN, growth
(median of the last quarter over the first, minus one), max_window_count (the most
events in any rolling `window` inside the phase), min_fraction (distinct clients connected
over the fleet whose arrival has come, `formats.record.presence`: fault-tied phases at the end
of each phase interval, the smallest over occurrences; otherwise the smallest second after the
arrival ramp; a client turned away counts against the fleet, and the fraction is at most 1).

`Nx fleet` / `N% of fleet`: that share of the fleet the run drove (`RunRecord.clients`: the
simulated fleet in a simulation).

`Nx baseline`: N times the same metric and stat over the baseline phase (default: before
the first fault; the whole run when there is none). For max_window_count the baseline
is the mean count per window at the baseline phase's rate, floored at one event, so
"3x baseline" means "no window with more than three times the usual number of events, and
never fewer than three" (a single event in a quiet run is not a spike).
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import pandas as pd

from system.errors import UsageError
from formats.gates.names import ALIASES
from formats.record import files, passes
from formats.record.presence import presence
from formats.gates.spec import Gate, Phase
from formats.gates.verdict import FAIL, PASS, UNKNOWN, Verdict
from formats.record.finalize import ledger_summary, user_ledger_summary
from formats.record.run import RunRecord
from formats.record.storms import StormRule, detect_storms, sampling_weight
from formats.record.survival import kaplan_meier

Intervals = list[tuple[float, float]]
MAX_EXAMPLES = 10

COUNTERS = {
    "attempts": "attempts", "reconnects": "reconnects", "opens": "opens", "closes": "closes",
    "http_403": "http_403", "manual_refreshes": "manual_refreshes", "displayed": "displayed",
    "duplicates_displayed": "duplicates", "duplicates": "duplicates",
}
GAUGES = {"active_connections": "active", "active": "active"}
LEDGER = {"lost_messages": "lost", "reordered_messages": "reordered", "unexpected_messages": "unexpected",
          "messages_sent": "sent", "messages_displayed": "displayed"}
USER_LEDGER = {"lost_user_messages": "lost", "duplicated_user_messages": "duplicated",
               "user_messages_sent": "sent"}
SCRAPE_ALIASES = {"agent_execution": "agent_execution_seconds", "memory": "process_resident_memory_bytes"}
RECORD_METRICS = frozenset(COUNTERS) | frozenset(GAUGES) | frozenset(LEDGER) | frozenset(USER_LEDGER) | frozenset(SCRAPE_ALIASES) | {
    "connection_duration", "storms", "handshake_rejections"}


def scraped_metric_names() -> frozenset[str]:
    """Every sample name a scrape of the server can hold (`scrapes.jsonl`), and the harness's RSS."""
    from system.server.metrics import EXPORTED

    names = set()
    for spec in EXPORTED:
        names.add(spec.name)
        if spec.type == "histogram":
            names.update(f"{spec.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return frozenset(names)


def check_metrics(gates: list[Gate], source: str) -> None:
    """Refuse, before a run, a gate whose metric no run record can hold (a typo would otherwise
    cost a whole run and come back `unknown`). A gate with its own `promql` may name anything:
    it is meant for a Prometheus. The aliases of `formats.gates.names` pass too (judged from
    the scrapes as Prometheus would), so one gate file serves a run record and a staging Prometheus."""
    from system.server.metrics import METRICS

    known = RECORD_METRICS | scraped_metric_names() | frozenset(ALIASES)
    for i, gate in enumerate(gates):
        if gate.promql or gate.metric in known:
            continue
        close = difflib.get_close_matches(gate.metric, sorted(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(
            f"{source}: $[{i}].metric: expected a metric a run record holds, got {gate.metric!r}{hint}. "
            f"Run-record metrics: {', '.join(sorted(RECORD_METRICS))}; server metrics: "
            f"{', '.join(m.name for m in METRICS)}. A gate on another system's metric needs its own `promql`.")


class Undecidable(Exception):
    """The run cannot decide this gate; the message says why (the verdict's provenance)."""


@dataclass
class Observation:
    value: float | None
    lower_bound: float | None = None     # set when the true value is known only to exceed this
    provenance: dict[str, Any] = field(default_factory=dict)
    failing: Callable[[float], dict[str, Any]] | None = None  # where it failed, given the threshold


# ---------------------------------------------------------------- phases

def matching_faults(phase: Phase, rec: RunRecord) -> list[dict]:
    """The faults a phase is tied to, in time order, with their `start_s` / `end_s` in force. In a
    record that stopped early, a fault that had not started by its end never happened: the phase
    is undecidable, not empty."""
    faults = [f for f in rec.fault_windows if phase.fault == "*" or f["kind"] == phase.fault]
    if not faults:
        raise Undecidable(f"no {phase.fault!r} fault in this run, so the phase {phase.to_dict()} is empty")
    faults = sorted(faults, key=lambda f: f["start_s"])
    why = rec.truncated
    if why and any(f["start_s"] >= rec.end for f in faults):
        late = next(f for f in faults if f["start_s"] >= rec.end)
        raise Undecidable(f"the {late['kind']} fault due at {late['start_s']:g}s never started: the record ends at "
                          f"{rec.end:g}s ({why})")
    return faults


def phase_intervals(phase: Phase, rec: RunRecord) -> Intervals:
    end = rec.end
    if phase.when == "run":
        return [(0.0, end)]
    faults = matching_faults(phase, rec)
    if phase.when == "before":
        return [(0.0, faults[0]["start_s"])]
    spans = []
    for f in faults:
        if phase.when == "during":
            spans.append((f["start_s"], max(f["end_s"], f["start_s"] + 1.0)))
        else:
            spans.append((f["end_s"], f["end_s"] + float(phase.within or 0.0)))
    why = rec.truncated
    beyond = [(a, b) for a, b in spans if b > end]
    if why and beyond:  # a window the record stopped inside: what it would have seen is unknown
        a, b = beyond[0]
        raise Undecidable(f"the phase {phase.to_dict()} runs to {b:g}s, beyond the end of the record at "
                          f"{end:g}s ({why})")
    return [(max(0.0, a), min(b, end)) for a, b in spans if a < end]


def _length(intervals: Intervals) -> float:
    return sum(b - a for a, b in intervals)


def _slices(series: np.ndarray, intervals: Intervals) -> list[np.ndarray]:
    return [series[int(math.floor(a)):max(int(math.ceil(b)), int(math.floor(a)) + 1)] for a, b in intervals]


# ---------------------------------------------------------------- sources

def _tags(gate: Gate) -> dict[str, str]:
    return dict(gate.tags)


def counter_series(gate: Gate, rec: RunRecord) -> np.ndarray:
    ts = rec.timeseries
    tags = _tags(gate)
    if gate.metric == "closes" and "code" in tags:
        col = f"closes_{tags['code']}"
        return ts[col].to_numpy(float) if col in ts.columns else np.zeros(len(ts))
    if gate.metric in ("handshake_rejections", "http_403"):
        status = int(tags.get("status", 403))
        if gate.metric == "http_403" or status == 403:
            return ts["http_403"].to_numpy(float)
        out = np.zeros(len(ts))
        for chunk in rec.connection_chunks(("opened_s", "http_status", files.WEIGHT)):
            rejected = chunk[(chunk["http_status"] == status).fillna(False).to_numpy(bool)]
            times = rejected["opened_s"].to_numpy(float)
            np.add.at(out, np.clip(times.astype(int), 0, max(len(ts) - 1, 0)), rejected[files.WEIGHT].to_numpy(float))
        return out
    return ts[COUNTERS[gate.metric]].to_numpy(float)


#: client-side counts whose zero is evidence only once a handshake was answered, and the ones
#: whose zero needs a displayed message
NEEDS_ANSWERS = frozenset(COUNTERS) - {"attempts"} | {"closes", "handshake_rejections", "storms"}
NEEDS_DISPLAYS = frozenset({"duplicates_displayed", "duplicates"})


def require_observed(gate: Gate, rec: RunRecord, total: float) -> None:
    """A count of zero from clients that never reached the system is no evidence: with no handshake
    answered in the whole run (or, for duplicates, no message displayed) such a gate is unknown.
    A non-zero count is evidence whatever else happened (a refused fleet's manual refreshes)."""
    if total:
        return
    if gate.metric in NEEDS_ANSWERS and not passes.counts(rec).rows:
        raise Undecidable("no connection attempt got an answer in this run: nothing was observed")
    if gate.metric in NEEDS_DISPLAYS and not rec.timeseries["displayed"].sum():
        raise Undecidable("no message was displayed in this run: duplicates cannot be observed")


def _observe_counter(gate: Gate, rec: RunRecord, intervals: Intervals) -> Observation:
    series = counter_series(gate, rec)
    parts = _slices(series, intervals)
    total = float(sum(p.sum() for p in parts))
    require_observed(gate, rec, float(series.sum()))
    prov: dict[str, Any] = {"events": int(total)}
    busiest = sorted(((int(a) + i, int(v)) for (a, _), p in zip(intervals, parts) for i, v in enumerate(p) if v),
                     key=lambda x: -x[1])[:MAX_EXAMPLES]
    if gate.stat == "count":
        return Observation(total, provenance=prov, failing=lambda _t: {"busiest_seconds": busiest})
    if gate.stat == "rate":
        length = _length(intervals)
        if length <= 0:
            raise Undecidable("the phase has no duration")
        return Observation(total / length, provenance=prov, failing=lambda _t: {"busiest_seconds": busiest})
    if gate.stat == "max_window_count":
        width = max(1, int(math.ceil(gate.window or 1)))
        best, where = -1.0, (0.0, 0.0)
        for (a, b), p in zip(intervals, parts):
            sums = np.convolve(p, np.ones(width), mode="valid") if p.size >= width else np.array([p.sum()])
            i = int(np.argmax(sums))
            if sums[i] > best:
                best, where = float(sums[i]), (float(int(a) + i), float(min(int(a) + i + width, b)))
        prov["window_s"] = float(width)
        return Observation(best, provenance=prov,
                           failing=lambda _t: {"window": {"start_s": where[0], "end_s": where[1], "count": int(best)}})
    return _observe_values(gate, np.concatenate(parts) if parts else np.empty(0), prov)


def _observe_storms(gate: Gate, rec: RunRecord, intervals: Intervals) -> Observation:
    """Reconnect storms (`formats.record.storms`, the rule finalize uses) whose busiest second is in the phase."""
    rule = StormRule()
    storms, rise = detect_storms(rec.timeseries["reconnects"].to_numpy(float), rec.clients, rule,
                                 weight=sampling_weight(rec.meta))
    require_observed(gate, rec, float(len(storms)))
    inside = [s for s in storms if any(a <= s.peak_s < b for a, b in intervals)]
    prov = {"storms": [s.to_dict() for s in inside], "rule": rule.describe(), "rise_per_bin": rise}
    if gate.stat == "count":
        return Observation(float(len(inside)), provenance=prov)
    if gate.stat == "rate":
        return Observation(len(inside) / _length(intervals), provenance=prov)
    raise Undecidable(f"stat {gate.stat_label!r} does not apply to storms (use count or rate)")


def _observe_values(gate: Gate, values: np.ndarray, prov: dict[str, Any]) -> Observation:
    """Aggregations of a plain series of values (per-second counts or gauge levels)."""
    if values.size == 0:
        raise Undecidable("no values in the phase")
    stat = gate.stat
    if stat == "quantile":
        return Observation(float(np.quantile(values, gate.quantile)), provenance=prov)
    if stat in ("mean", "min", "max"):
        return Observation(float(getattr(np, stat)(values)), provenance=prov)
    if stat == "value":
        return Observation(float(values[-1]), provenance=prov)
    if stat == "count":
        return Observation(float(values.sum()), provenance=prov)
    if stat == "growth":
        q = max(1, values.size // 4)
        first, last = float(np.median(values[:q])), float(np.median(values[-q:]))
        if first <= 0:
            raise Undecidable("the first quarter of the series is zero; growth is undefined")
        prov.update(first_quarter_median=first, last_quarter_median=last)
        return Observation(last / first - 1.0, provenance=prov)
    raise Undecidable(f"stat {gate.stat_label!r} does not apply to {gate.selector}")


def _observe_gauge(gate: Gate, rec: RunRecord, intervals: Intervals) -> Observation:
    series = rec.timeseries[GAUGES[gate.metric]].to_numpy(float)
    if gate.stat != "min_fraction":
        return _observe_values(gate, np.concatenate(_slices(series, intervals)), {})
    return _observe_min_fraction(gate, rec, intervals, series)


def _observe_min_fraction(gate: Gate, rec: RunRecord, intervals: Intervals, sockets: np.ndarray) -> Observation:
    """Distinct clients connected over the fleet that should be connected (`formats.record.presence`):
    at the end of each fault-tied interval, the smallest over occurrences; over a plain phase, the
    smallest second after the arrival ramp. Clients turned away count against the fleet."""
    if not rec.timeseries["attempts"].sum():  # a fleet turned away still tried: this is a record of nothing
        raise Undecidable("no client attempted a connection in this record: nothing was observed")
    seen = presence(rec)
    last = len(sockets) - 1

    def at(second: int) -> dict[str, Any] | None:
        fraction = seen.fraction(second)
        if fraction is None:
            return None
        return {"at_s": float(second), "connected_clients": float(seen.connected[second]),
                "fleet_expected": float(seen.expected[second]), "sockets": float(sockets[second]),
                "fraction": fraction}

    if gate.phase.when in ("during", "after"):
        ratios = []
        for f, (a, b) in zip(matching_faults(gate.phase, rec), intervals):
            level = at(min(max(int(math.ceil(b)) - 1, 0), last))
            if level is None:
                raise Undecidable(f"no client of the fleet had arrived by the end of the phase of the "
                                  f"{f['kind']} fault at {f['start_s']:g}s")
            ratios.append({"fault_at_s": f["start_s"], **level})
        worst = min(ratios, key=lambda r: r["fraction"])
        return Observation(worst["fraction"], provenance={"occurrences": ratios, "never_connected":
                                                          seen.never_connected()},
                           failing=lambda _t: {"worst": worst})
    ramp = float(rec.scenario.get("fleet", {}).get("arrival", {}).get("ramp", 0) or 0)
    levels = [at(s) for a, b in intervals if b > ramp
              for s in range(int(max(a, ramp)), min(max(int(math.ceil(b)), int(max(a, ramp)) + 1), last + 1))]
    levels = [lv for lv in levels if lv is not None]
    if not levels:
        raise Undecidable("no client of the fleet had arrived after the arrival ramp in the phase")
    worst = min(levels, key=lambda r: r["fraction"])
    return Observation(worst["fraction"], provenance={"worst": worst, "never_connected": seen.never_connected()},
                       failing=lambda _t: {"worst": worst})


def _observe_duration(gate: Gate, rec: RunRecord, intervals: Intervals) -> Observation:
    lived = passes.lifetimes(rec, intervals, with_rows=True)
    durations, ended, weights = lived.durations, lived.ended, lived.weights
    km = kaplan_meier(durations, ended, weights)
    prov = {"connections": km.n, "censored": km.n - km.events, "observed_max_s": km.t_max}
    if km.n == 0:
        raise Undecidable("no connection opened in the phase")

    def failing(threshold: float) -> dict[str, Any]:
        below = durations < threshold
        shortest = pd.Series(durations[below]).sort_values().index[:MAX_EXAMPLES]
        examples = rec.connection_rows(lived.rows[below][shortest])
        return {"connections_below_threshold": int(weights[below].sum()),
                "examples": examples[["client", "conn", "opened_s", "duration_s", "close_code"]].to_dict("records")}

    if gate.stat == "quantile":
        value = km.quantile(gate.quantile)
        return Observation(value, None if value is not None else km.t_max, prov, failing)
    if gate.stat == "mean":
        mean, exact = km.restricted_mean()
        return Observation(mean if exact else None, None if exact else mean, prov, failing)
    if gate.stat == "count":
        return Observation(float(km.n), provenance=prov)
    if gate.stat == "min":
        return Observation(float(durations[ended].min()) if ended.any() else None,
                           None if ended.any() else km.t_max, prov, failing)
    if gate.stat == "max":
        return Observation(km.t_max if ended[durations == km.t_max].all() else None,
                           None if ended[durations == km.t_max].all() else km.t_max, prov)
    raise Undecidable(f"stat {gate.stat_label!r} does not apply to connection_duration")


def _observe_ledger(gate: Gate, rec: RunRecord, intervals: Intervals) -> Observation:
    if gate.phase.when != "run":
        raise Undecidable(f"{gate.metric} is judged over the whole run only (a message's fate is known at the end)")
    if gate.metric in USER_LEDGER:
        ledger = rec.memo("user_ledger", lambda: user_ledger_summary(rec))
        if ledger is None:
            raise Undecidable("the run record has no log of user messages received (received.csv) "
                              "or no client events")
        value = float(getattr(ledger, USER_LEDGER[gate.metric]))
    else:
        ledger = rec.memo("ledger", lambda: ledger_summary(rec))
        if ledger is None:
            raise Undecidable("the run record has no message ledger (ledger.csv or ledger_summary.json)")
        value = float(getattr(ledger, LEDGER[gate.metric]))
    if gate.stat not in ("count", "value"):
        raise Undecidable(f"stat {gate.stat_label!r} does not apply to {gate.metric} (use count)")
    if gate.metric in ("lost_messages", "reordered_messages", "lost_user_messages") and ledger.judged <= 0:
        # zero lost out of zero judged is no evidence: a fleet that never connected loses nothing
        raise Undecidable(f"no message's fate could be judged ({ledger.sent} sent, "
                          f"{ledger.indeterminate} indeterminate)")
    return Observation(value, provenance={"ledger": ledger.to_dict()})


def _scrape_series(name: str, tags: dict[str, str], rec: RunRecord) -> tuple[np.ndarray, list[dict]]:
    """(times, per-scrape samples of `name` matching the tags)."""
    times, rows = [], []
    for scrape in rec.scrapes:
        samples = [s for s in scrape.get("samples", []) if s.get("name") == name
                   and all(str(s.get("labels", {}).get(k)) == v for k, v in tags.items())]
        if samples:
            times.append(float(scrape["t"]))
            rows.append(samples)
    return np.asarray(times), rows


def _value(sample: dict) -> float:
    return float(sample["value"])  # "inf"/"nan" strings parse too


def _at_bounds(times: np.ndarray, rows: list, intervals: Intervals) -> list[tuple[Any, Any]]:
    """For each interval, the scrape rows nearest its start (or None: from zero) and end."""
    pairs = []
    for a, b in intervals:
        before = np.nonzero(times <= a)[0]
        upto = np.nonzero(times <= b)[0]
        if upto.size == 0:
            continue
        pairs.append((rows[before[-1]] if before.size else None, rows[upto[-1]]))
    return pairs


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over cumulative (upper bound, count) buckets."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return buckets[-1][0]


def _scrape_name(gate: Gate) -> tuple[str, dict[str, str]]:
    """The exported metric a gate names and its tags: run-record aliases (`memory`), then the ones
    `harness.prom` uses (`tokens_issued` -> `auth_tokens_issued_total`), so a gate reads the same
    metric in a run record's scrapes as in a Prometheus."""

    if gate.metric in SCRAPE_ALIASES:
        return SCRAPE_ALIASES[gate.metric], _tags(gate)
    if gate.metric in ALIASES:
        name, implied = ALIASES[gate.metric]
        return name, {**dict(implied), **_tags(gate)}
    return gate.metric, _tags(gate)


def _observe_scrapes(gate: Gate, rec: RunRecord, intervals: Intervals) -> Observation:
    name, tags = _scrape_name(gate)
    times, rows = _scrape_series(f"{name}_bucket", tags, rec)
    if rows:  # a histogram: quantile, mean and count over the phase, from bucket increases
        buckets: dict[float, float] = {}
        total_sum = total_count = 0.0
        for start, stop in _at_bounds(times, rows, intervals):
            for s in stop:
                le = float(s["labels"]["le"])
                buckets[le] = buckets.get(le, 0.0) + _value(s)
            for s in start or []:
                le = float(s["labels"]["le"])
                buckets[le] = buckets.get(le, 0.0) - _value(s)
        for suffix in ("sum", "count"):
            t2, r2 = _scrape_series(f"{name}_{suffix}", tags, rec)
            inc = sum(sum(_value(s) for s in stop) - sum(_value(s) for s in (start or []))
                      for start, stop in _at_bounds(t2, r2, intervals))
            if suffix == "sum":
                total_sum = inc
            else:
                total_count = inc
        prov = {"source": f"{name} histogram in scrapes.jsonl", "observations": total_count}
        if total_count <= 0:
            raise Undecidable(f"{name}: no observations in the phase")
        if gate.stat == "quantile":
            return Observation(histogram_quantile(gate.quantile, list(buckets.items())), provenance=prov)
        if gate.stat == "mean":
            return Observation(total_sum / total_count, provenance=prov)
        if gate.stat == "count":
            return Observation(total_count, provenance=prov)
        raise Undecidable(f"stat {gate.stat_label!r} does not apply to the histogram {name}")
    times, rows = _scrape_series(name, tags, rec)
    if not rows:
        raise Undecidable(f"metric {gate.selector} is not in this run record (no scrapes of {name})")
    prov = {"source": f"{name} in scrapes.jsonl", "scrapes": len(rows)}
    if name.endswith("_total") and gate.stat in ("count", "rate"):
        inc = sum(sum(_value(s) for s in stop) - sum(_value(s) for s in (start or []))
                  for start, stop in _at_bounds(times, rows, intervals))
        return Observation(inc if gate.stat == "count" else inc / max(_length(intervals), 1e-9), provenance=prov)
    levels = np.asarray([sum(_value(s) for s in row) for row in rows])
    mask = np.zeros(len(times), dtype=bool)
    for a, b in intervals:
        mask |= (times >= a) & (times <= b)
    return _observe_values(gate, levels[mask], prov)


#: a wall-clock emulation resolves a windowed gate only where its loop lag (in scenario time) stays
#: below this share of the window: a record stamped that late can move an event across the window
RESOLUTION_SHARE = 0.1


def require_resolved(gate: Gate, rec: RunRecord, intervals: Intervals) -> None:
    """On the wall clock every record is stamped when a worker's loop gets to it: where the loop
    lagged (times `time_scale`) by more than RESOLUTION_SHARE of the window a gate needs (`within`
    of its phase, or its rolling `window`), the run could not resolve it and the gate is unknown.
    The virtual clock and the model stamp every event at its time."""
    from formats.record.resolution import time_resolution

    need = gate.phase.within or gate.window
    if not need or rec.engine != "emulate" or (rec.meta.get("clock") or {}).get("kind") == "virtual":
        return
    check = rec.meta.get("self_check") or {}
    for a, b in intervals:
        lag = time_resolution(check, rec.time_scale, (a - need, b))
        if lag is not None and lag > RESOLUTION_SHARE * need:
            raise Undecidable(f"not resolved on the wall clock: around {a:.0f}-{b:.0f} s the emulation's loops ran "
                              f"up to {lag:.1f} s of scenario time late (x{rec.time_scale:g}), more than "
                              f"{RESOLUTION_SHARE:.0%} of the {need:g}-s window; run it on the virtual clock")


def observe(gate: Gate, rec: RunRecord, phase: Phase | None = None) -> Observation:
    intervals = phase_intervals(phase or gate.phase, rec)
    if not intervals or _length(intervals) <= 0:
        raise Undecidable("the phase is empty in this run")
    gate = replace(gate, phase=phase or gate.phase)
    require_resolved(gate, rec, intervals)
    if gate.metric == "connection_duration":
        return _observe_duration(gate, rec, intervals)
    if gate.metric in LEDGER or gate.metric in USER_LEDGER:
        return _observe_ledger(gate, rec, intervals)
    if gate.metric in GAUGES:
        return _observe_gauge(gate, rec, intervals)
    if gate.metric == "storms":
        return _observe_storms(gate, rec, intervals)
    if gate.metric in COUNTERS or gate.metric == "handshake_rejections" or gate.metric == "closes":
        return _observe_counter(gate, rec, intervals)
    return _observe_scrapes(gate, rec, intervals)


# ---------------------------------------------------------------- judging

def compare(op: str, x: float, threshold: float | tuple[float, ...]) -> bool:
    if op == "between":
        lo, hi = threshold
        return lo <= x <= hi
    if op == "in":
        return any(math.isclose(x, t, rel_tol=1e-9, abs_tol=1e-12) for t in threshold)
    return {"<": x < threshold, "<=": x <= threshold, ">": x > threshold, ">=": x >= threshold,
            "==": math.isclose(x, threshold, rel_tol=1e-9, abs_tol=1e-12),
            "!=": not math.isclose(x, threshold, rel_tol=1e-9, abs_tol=1e-12)}[op]


def _from_lower_bound(op: str, bound: float, threshold: float | tuple[float, ...]) -> str | None:
    """Decide from `true value > bound` when the comparison's outcome is the same for every such value."""
    if op in (">", ">="):
        return PASS if bound >= threshold else None
    if op in ("<", "<=", "=="):
        return FAIL if bound >= threshold else None
    if op == "between":
        return FAIL if bound >= threshold[1] else None
    return None


def _baseline_threshold(gate: Gate, rec: RunRecord, prov: dict[str, Any]) -> float:
    phase = gate.baseline
    matching = [f for f in rec.faults if phase.fault == "*" or f["kind"] == phase.fault]
    if phase.when == "before" and not matching:
        phase = Phase()  # no fault: the whole run is the baseline
    intervals = phase_intervals(phase, rec)
    length = _length(intervals)
    if length <= 0:
        raise Undecidable(f"the baseline phase {phase.to_dict()} is empty (a fault at 0s?)")
    if gate.stat == "max_window_count":
        count = observe(replace(gate, stat="count", baseline_factor=None), rec, phase).value
        per_window = count / length * (gate.window or 1.0)
        prov["baseline_events_per_window"] = per_window
        base = max(per_window, 1.0)  # a window may always hold one event: a spike needs more than N
    else:
        base = observe(replace(gate, baseline_factor=None), rec, phase).value
    if base is None:
        raise Undecidable(f"the baseline ({phase.to_dict() or 'whole run'}) is unknown")
    prov["baseline"] = {"phase": phase.to_dict() or "run", "value": base, "factor": gate.baseline_factor}
    return gate.baseline_factor * base


def _fleet_threshold(gate: Gate, rec: RunRecord, prov: dict[str, Any]) -> float:
    """`0.3x fleet`: the share of the fleet this run drove (`RunRecord.clients`: the simulated
    fleet in a simulation), so the gate means the same at any size."""
    clients = rec.clients
    if clients <= 0:
        raise Undecidable("the run record does not say how many clients the fleet had")
    prov["fleet"] = {"clients": clients, "share": gate.fleet_factor}
    return gate.fleet_factor * clients


def evaluate_gate(gate: Gate, rec: RunRecord) -> Verdict:
    prov: dict[str, Any] = {"metric": gate.selector, "stat": gate.stat_label, "phase": gate.phase.to_dict() or "run"}
    if gate.window:
        prov["window_s"] = gate.window
    threshold: Any = gate.value
    try:
        prov["intervals"] = [[a, b] for a, b in phase_intervals(gate.phase, rec)]
        if gate.baseline_factor is not None:
            threshold = _baseline_threshold(gate, rec, prov)
        if gate.fleet_factor is not None:
            threshold = _fleet_threshold(gate, rec, prov)
        obs = observe(gate, rec)
    except Undecidable as why:
        prov["reason"] = str(why)
        return Verdict(gate.name, UNKNOWN, gate.strict, None, gate.op, _plain(threshold), prov)
    prov.update(obs.provenance)
    if obs.value is None or (isinstance(obs.value, float) and math.isnan(obs.value)):
        verdict = _from_lower_bound(gate.op, obs.lower_bound, threshold) if obs.lower_bound is not None else None
        if obs.lower_bound is not None:
            prov["lower_bound"] = obs.lower_bound
            prov["reason"] = (f"not reached within the longest observation ({obs.lower_bound:g}s): "
                              f"the true value exceeds it")
        else:
            prov.setdefault("reason", "no value observed")
        verdict = verdict or UNKNOWN
    else:
        verdict = PASS if compare(gate.op, obs.value, threshold) else FAIL
    if verdict == FAIL and obs.failing is not None and not isinstance(threshold, tuple):
        prov["where"] = obs.failing(threshold)
    return Verdict(gate.name, verdict, gate.strict, obs.value, gate.op, _plain(threshold), prov)


def _plain(threshold: Any) -> Any:
    return list(threshold) if isinstance(threshold, tuple) else threshold


def evaluate(gates: list[Gate], rec: RunRecord | str) -> list[Verdict]:
    rec = rec if isinstance(rec, RunRecord) else RunRecord(rec)
    return [evaluate_gate(g, rec) for g in gates]
