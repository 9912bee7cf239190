"""The numbers behind each plot, computed from a run record without drawing anything.

Kept apart from the drawing so tests can check what a plot shows (where the storm
windows are, how many 4401 closes fell in a bin) without reading pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from formats.record.storms import StormRule, detect_storms, sampling_weight
from reports.record import Run, number
from formats.record.survival import Survival, kaplan_meier
from system.units import parse_duration

NICE_BINS_S = (1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)
#: the storm rule the report applies when a record does not list its storms: the one finalize uses
STORM_RULE = StormRule()


@dataclass(frozen=True)
class Span:
    """A stretch of scenario time [start, end]; end == start for an instant (a restart)."""

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class SurvivalData:
    label: str
    curve: Survival
    p50: float | None
    p95: float | None


@dataclass(frozen=True)
class GateLine:
    """A lifetime gate drawn on the survival plot: `stat` (p50/p95) `op` `seconds`."""

    stat: str
    op: str
    seconds: float

    @property
    def survival_level(self) -> float:
        return 1.0 - int(self.stat[1:]) / 100.0


@dataclass(frozen=True)
class Binned:
    """Counts per time bin: `starts[i]` is the bin's start, `bin_s` its width."""

    bin_s: float
    starts: np.ndarray
    counts: dict[str, np.ndarray]


def survival_of(run: Run) -> SurvivalData | None:
    lived = run.lifetimes
    if lived is None:
        return None
    curve = kaplan_meier(lived.durations, lived.ended, lived.weights)
    return SurvivalData(run.label, curve, curve.quantile(0.50), curve.quantile(0.95))


def lifetime_gate_lines(run: Run) -> list[GateLine]:
    """The scenario's p50/p95 gates on connection duration, as vertical lines for the survival plot."""
    lines = []
    for gate in run.scenario_gates:
        stat = str(gate.get("stat", "")).lower().replace("(", "").replace(")", "")
        if gate.get("metric") != "connection_duration" or stat not in ("p50", "p95", "p90", "p99"):
            continue
        try:
            seconds = parse_duration(gate.get("value"))
        except (ValueError, TypeError):
            continue  # e.g. a baseline-relative threshold: nothing to draw
        lines.append(GateLine(stat, str(gate.get("op", "")), seconds))
    return lines


def fault_spans(run: Run) -> list[Span]:
    spans = []
    for fault in run.faults or []:
        at = number(fault.get("at")) if isinstance(fault, dict) else None
        if at is None:
            continue
        length = number(fault.get("for")) or 0.0
        spans.append(Span(at, at + length, str(fault.get("kind", "fault"))))
    return spans


def storm_windows(run: Run) -> tuple[list[Span], str]:
    """The storms the record lists (summary `storm_windows`), else detected here by the same rule
    (`formats.record.storms`, on `reconnects`); and which of the two, or why there are none."""
    summary = run.summary or {}
    listed = summary.get("storm_windows")
    if isinstance(listed, list):
        spans = [s for s in (_as_span(item) for item in listed) if s is not None]
        if len(spans) == len(listed):
            return spans, "run record"
    ts = run.timeseries
    if ts is None or "reconnects" not in ts.columns:
        return [], "none (no reconnects column in timeseries.csv)"
    clients = run.clients if run.clients is not None else _fleet(run)
    if clients is None:
        return [], "none (fleet size unknown)"
    storms, _ = detect_storms(ts["reconnects"].fillna(0).to_numpy(float),
                              clients, STORM_RULE, weight=sampling_weight(run.meta or {}))
    return [Span(s.start_s, s.end_s, f"storm (peak {s.peak_per_s:.0f}/s)") for s in storms], "detected"


def _fleet(run: Run) -> int | None:
    """The fleet the run drove, from scenario.json (a simulation drives `sim_clients`)."""
    fleet = (run.scenario or {}).get("fleet") or {}
    keys = ("sim_clients", "clients") if run.engine == "simulate" else ("clients",)
    for key in keys:
        value = number(fleet.get(key)) if isinstance(fleet, dict) else None
        if value:
            return int(value)
    return None


def reconnects_per_second(run: Run) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Reconnects (attempts after a client's first) per second, which is what a storm is made of;
    a record without that column falls back to all attempts, and says so in the third item."""
    ts = run.timeseries
    column = "reconnects" if ts is not None and "reconnects" in ts.columns else _attempts_column(ts)
    if column is None:
        return None
    return ts["t"].to_numpy(float), ts[column].to_numpy(float), column


def arrival_ramp(run: Run) -> Span | None:
    """The scenario's arrival ramp: the fleet's first connects, which are not a storm."""
    fleet = (run.scenario or {}).get("fleet") or {}
    arrival = fleet.get("arrival") if isinstance(fleet, dict) else None
    ramp = number(arrival.get("ramp")) if isinstance(arrival, dict) else None
    return Span(0.0, ramp, "arrival ramp") if ramp else None


def failure_timeline(run: Run, max_bins: int = 240) -> Binned | None:
    """Per bin: handshakes refused with HTTP 403, manual refreshes, and closes by code: what an
    engineer reproducing the 403 bug looks for (a 403 is a failed handshake, never a close)."""
    ts = run.timeseries
    if ts is None:
        return None
    columns = {label: col for label, col in (("HTTP 403 (handshake refused)", "http_403"),
                                             ("manual refreshes", "manual_refreshes")) if col in ts.columns}
    closes = sorted((c for c in ts.columns if c.startswith("closes_")), key=_code_order)
    columns |= {f"close {c.removeprefix('closes_')}": c for c in closes}
    return _binned(ts, columns, max_bins) if columns else None


def bin_width(duration_s: float, max_bins: int = 240) -> float:
    for width in NICE_BINS_S:
        if duration_s / width <= max_bins:
            return float(width)
    return float(math.ceil(duration_s / max_bins))


def closes_by_code(run: Run, max_bins: int = 240) -> Binned | None:
    ts = run.timeseries
    if ts is None:
        return None
    columns = sorted((c for c in ts.columns if c.startswith("closes_")), key=_code_order)
    if not columns:
        return None
    return _binned(ts, {c.removeprefix("closes_"): c for c in columns}, max_bins)


def rate_per_1000(run: Run, max_bins: int = 240) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean attempts per second per 1000 clients, per bin: comparable across fleet sizes."""
    column = _attempts_column(run.timeseries)
    if column is None or not run.clients:
        return None
    binned = _binned(run.timeseries, {"attempts": column}, max_bins)
    return binned.starts, binned.counts["attempts"] / binned.bin_s / run.clients * 1000.0


def active_connections(run: Run) -> tuple[np.ndarray, np.ndarray] | None:
    ts = run.timeseries
    if ts is None or "active" not in ts.columns:
        return None
    return ts["t"].to_numpy(float), ts["active"].to_numpy(float)


DELIVERY_KEYS = ("sent", "displayed", "lost", "indeterminate", "duplicates", "reordered")
# delivery key -> summary.json key: the numbers the gates judged (`lost_messages`, `duplicates_displayed`, ...)
SUMMARY_DELIVERY = {"sent": "messages_sent", "displayed": "messages_displayed", "lost": "lost_messages",
                    "indeterminate": "messages_indeterminate", "duplicates": "duplicates_displayed",
                    "reordered": "reordered_messages"}


def delivery(run: Run) -> tuple[dict[str, float], str] | None:
    """{sent, displayed, lost, indeterminate, duplicates, reordered} and the file they came from.

    From summary.json first, the one place the gates read too: a sampled simulation's
    `ledger_summary.json` is a sample of the fleet, and counting it again here would print a
    second, different number for the same thing. The ledger is read only for a record
    finalized without these keys."""
    if run.summary is not None:
        counts = {k: number(run.summary.get(key)) for k, key in SUMMARY_DELIVERY.items()}
        counts = {k: v for k, v in counts.items() if v is not None}
        if counts:
            return counts, "summary.json (the gates' numbers)"
    if run.ledger_summary is not None:
        counts = {k: number(run.ledger_summary.get(k)) for k in DELIVERY_KEYS}
        return {k: v for k, v in counts.items() if v is not None}, "ledger_summary.json"
    if run.ledger is not None:
        return ledger_counts(run.ledger), "ledger.csv"
    return None


def ledger_counts(ledger: pd.DataFrame) -> dict[str, float]:
    """Jepsen-style: lost = sent but never displayed; duplicate = displayed again by the same client;
    reordered = displayed after a higher seq of the same conversation on the same client."""
    sent = ledger[ledger["kind"] == "sent"]
    shown = ledger[ledger["kind"] == "displayed"].sort_values("t", kind="stable")
    sent_keys = set(zip(sent["conversation"], sent["msg_id"]))
    shown_keys = set(zip(shown["conversation"], shown["msg_id"]))
    distinct_shown = shown.drop_duplicates(["client", "conversation", "msg_id"])
    keys = [distinct_shown["client"], distinct_shown["conversation"]]
    highest_before = distinct_shown["seq"].groupby(keys).cummax().groupby(keys).shift(1)
    reordered = int((distinct_shown["seq"] < highest_before).sum())
    return {
        "sent": float(len(sent_keys)),
        "displayed": float(len(distinct_shown)),
        "lost": float(len(sent_keys - shown_keys)),
        "duplicates": float(len(shown) - len(distinct_shown)),
        "reordered": float(reordered),
    }


def _binned(ts: pd.DataFrame, columns: dict[str, str], max_bins: int) -> Binned:
    t = ts["t"].to_numpy(float)
    width = bin_width(float(t.max()) + 1.0 if len(t) else 1.0, max_bins)
    index = np.floor(t / width).astype(int)
    n = int(index.max()) + 1 if len(index) else 0
    counts = {
        name: np.bincount(index, weights=ts[col].fillna(0).to_numpy(float),
                          minlength=n)
        for name, col in columns.items()
    }
    return Binned(width, np.arange(n) * width, counts)


def _attempts_column(ts: pd.DataFrame | None) -> str | None:
    if ts is None:
        return None
    return next((c for c in ("attempts", "reconnects") if c in ts.columns), None)


def _code_order(column: str) -> tuple[int, str]:
    code = column.removeprefix("closes_")
    return (int(code), code) if code.isdigit() else (1 << 30, code)


def _as_span(item: Any) -> Span | None:
    if isinstance(item, dict):
        start = number(item.get("start_s", item.get("start")))
        end = number(item.get("end_s", item.get("end")))
        peak = number(item.get("peak_per_s", item.get("peak")))
        label = f"storm (peak {peak:.0f}/s)" if peak is not None else "storm"
    elif isinstance(item, (list, tuple)) and len(item) == 2:
        start, end, label = number(item[0]), number(item[1]), "storm"
    else:
        return None
    if start is None or end is None:
        return None
    return Span(start, end, label)
