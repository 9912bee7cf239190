"""`finalize(run_dir)`: derive the tables an engine did not write, then `summary.json`.

Both engines end here, so a statistic means the same whichever engine produced
the run. A table an engine wrote (the simulation does at fleet scale) is kept as
it is; `summary.json` is always recomputed from the tables, keeping any extra
keys an engine put there.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from system.errors import UsageError
from formats.record import files, passes
from formats.record.derive import derive, ledger_table, read_events, timeseries_columns, write_csv
from formats.record.ledger import (
    LedgerSummary, UserLedgerSummary, check, check_user_messages, read_received, typed_messages,
)
from formats.record.presence import presence
from formats.record.run import RunRecord
from formats.record.storms import StormRule, detect_storms, sampling_weight
from formats.record.survival import kaplan_meier
from formats.record.writer import merge_meta, write_atomic

DAY = 86400.0


def in_flight_window(time_scale: float) -> float:
    """Scenario seconds before the end in which an undelivered message is indeterminate, not lost:
    at least 5 s, or half a wall second at the run's time scale."""
    return max(5.0, 0.5 * time_scale)


def finalize(run_dir: str | Path, *, storm_rule: StormRule = StormRule(), in_flight_s: float | None = None) -> dict:
    rec = RunRecord(run_dir)
    windows = _derive_missing_tables(rec)
    rec = RunRecord(run_dir)  # re-read what was just written
    summary = {**rec.summary, **summarize(rec, storm_rule=storm_rule, in_flight_s=in_flight_s)}
    pings = (rec.meta.get("heartbeat") or {}).get("pings")
    if pings is not None:  # the server's keepalive pings per hour of connection (120 at a 30 s heartbeat)
        hours = passes.counts(rec).open_s / 3600.0
        summary["pings_per_connection_hour"] = round(pings / hours, 2) if hours > 0 else None
    if windows is not None:
        summary["fault_windows"] = windows
    write_atomic(rec.dir / files.SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary


def _derive_missing_tables(rec: RunRecord) -> list[dict] | None:
    """Write the missing tables; returns the measured fault windows when events were read."""
    need_connections = not rec.has(files.CONNECTIONS)
    need_timeseries = not rec.has(files.TIMESERIES)
    need_ledger = not rec.has(files.LEDGER) and not rec.has(files.LEDGER_SUMMARY)
    if not (need_connections or need_timeseries or need_ledger):
        return None
    if not rec.has(files.EVENTS):
        missing = [n for n, need in ((files.CONNECTIONS, need_connections), (files.TIMESERIES, need_timeseries),
                                     (files.LEDGER, need_ledger)) if need]
        raise UsageError(f"{rec.dir}: cannot derive {missing}: {files.EVENTS} is missing")
    end = _observed_end(rec)
    derived = derive(read_events(rec.path(files.EVENTS)), end)
    if need_connections:
        write_csv(rec.path(files.CONNECTIONS), files.CONNECTION_COLUMNS, derived.connections)
    if need_timeseries:
        write_csv(rec.path(files.TIMESERIES), timeseries_columns(derived.timeseries), derived.timeseries)
    if need_ledger:
        write_csv(rec.path(files.LEDGER), files.LEDGER_COLUMNS, ledger_table(rec.dir, derived))
    return derived.fault_windows


def _observed_end(rec: RunRecord) -> float:
    """Where the tables end: the scenario's end, or, for a record that stopped early without
    saying where (an interrupted emulation), its last event, written to `meta.json` `end_s` so
    gates and reports read the same end: tables are never padded past the last observation."""
    if not rec.meta.get(files.META_INCOMPLETE) or rec.meta.get("end_s"):
        return rec.end
    last = max((float(e["t"]) for e in read_events(rec.path(files.EVENTS))), default=0.0)
    end = min(rec.end, math.floor(last) + 1.0)
    merge_meta(rec.dir, {"end_s": end})
    return end


def _opt(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def ledger_summary(rec: RunRecord, in_flight_s: float | None = None) -> LedgerSummary | None:
    if rec.ledger is not None:
        window = in_flight_window(rec.time_scale) if in_flight_s is None else in_flight_s
        return check(rec.ledger, passes.connected_at_end(rec), window)
    if rec.ledger_summary is not None:
        fields = {k: int(v) for k, v in rec.ledger_summary.items() if k in LedgerSummary.__dataclass_fields__}
        return LedgerSummary(**fields)
    return None


def user_ledger_summary(rec: RunRecord, in_flight_s: float | None = None) -> UserLedgerSummary | None:
    """User messages lost or duplicated on the way to the server; a model sampled above its exact
    size judged its message sample itself (`ledger_summary.json`); None without either."""
    judged = (rec.ledger_summary or {}).get(files.LEDGER_USER)
    if isinstance(judged, dict):
        return UserLedgerSummary(**judged)
    received = read_received(rec.path(files.RECEIVED))
    if received is None or not rec.has(files.EVENTS):
        return None
    window = in_flight_window(rec.time_scale) if in_flight_s is None else in_flight_s
    typed = typed_messages(read_events(rec.path(files.EVENTS), kinds=frozenset({"sent"})))
    return check_user_messages(typed, received, passes.connected_at_end(rec), window)


def lifetimes(rec: RunRecord):
    """The Kaplan–Meier estimate over connections that opened (failed handshakes have no lifetime)."""
    lived = passes.lifetimes(rec)
    return kaplan_meier(lived.durations, lived.ended, lived.weights)


def summarize(rec: RunRecord, *, storm_rule: StormRule = StormRule(), in_flight_s: float | None = None) -> dict:
    ts = rec.timeseries
    counted = passes.counts(rec)
    km = lifetimes(rec)
    mean, mean_exact = km.restricted_mean()
    storms, rise = detect_storms(ts["reconnects"].to_numpy(float), rec.clients, storm_rule,
                                 weight=sampling_weight(rec.meta))
    ledger = ledger_summary(rec, in_flight_s)
    user = user_ledger_summary(rec, in_flight_s)
    close_cols = sorted((c for c in ts.columns if c.startswith("closes_")), key=lambda c: int(c[7:]))
    closes_by_code = {c[7:]: int(ts[c].sum()) for c in close_cols if ts[c].sum() > 0}
    scale_to_day = DAY / rec.end if rec.end > 0 else 0.0
    counts = {  # rounded: a sampled model's message counts are scaled by a fractional factor
        "storms": len(storms),
        "http_403": round(float(ts["http_403"].sum())),
        "duplicates_displayed": round(float(ts["duplicates"].sum())),
        "manual_refreshes": round(float(ts["manual_refreshes"].sum())),
        "reconnect_attempts": round(float(ts["reconnects"].sum())),
    }
    out: dict[str, Any] = {
        "engine": rec.engine,
        "scenario": rec.scenario.get("name"),
        "seed": rec.scenario.get("seed"),
        "duration_s": rec.end,
        "clients": rec.clients,
        "connections": counted.opened,
        "censored_connections": counted.censored,
        "handshake_failures": counted.failed,
        "duration_p50_s": _opt(km.quantile(0.50)),
        "duration_p95_s": _opt(km.quantile(0.95)),
        "duration_p99_s": _opt(km.quantile(0.99)),
        "duration_mean_s": _opt(mean) if mean_exact else None,
        "duration_observed_max_s": _opt(km.t_max),
        "attempts": int(ts["attempts"].sum()),
        **counts,
        "closes_by_code": closes_by_code,
        "lost_messages": None if ledger is None else ledger.lost,
        "messages_sent": None if ledger is None else ledger.sent,
        "messages_displayed": None if ledger is None else ledger.displayed,
        "messages_indeterminate": None if ledger is None else ledger.indeterminate,
        "reordered_messages": None if ledger is None else ledger.reordered,
        "unexpected_messages": None if ledger is None else ledger.unexpected,
        "user_messages_sent": None if user is None else user.sent,
        "lost_user_messages": None if user is None else user.lost,
        "duplicated_user_messages": None if user is None else user.duplicated,
        "user_messages_indeterminate": None if user is None else user.indeterminate,
        "storm_windows": [s.to_dict() for s in storms],
        "storm_rule": storm_rule.describe(),
        "storm_rise_per_bin": rise,
        "storm_bin_s": storm_rule.bin_s,
        "peak_reconnects_per_s": int(ts["reconnects"].max()) if len(ts) else 0,
        "peak_reconnects_per_s_5s": rolling_peak(ts["reconnects"], PEAK_WINDOW_S),
        "peak_active": int(ts["active"].max()) if len(ts) else 0,
        **_served(rec, closes_by_code),
        "per_day": {k: round(v * scale_to_day, 3) for k, v in counts.items()},
    }
    return {**out, **_scaled(rec)}


#: summary figures counted on weighted agents (each agent's connection stands for `weight` clients'),
#: and those measured on the message sample (scaled by fleet clients per sampled client)
WEIGHTED_FIGURES = ("connections", "censored_connections", "handshake_failures", "duration_p50_s", "duration_p95_s",
                    "duration_p99_s", "duration_mean_s", "attempts", "storms", "http_403", "manual_refreshes",
                    "reconnect_attempts", "closes_by_code", "peak_reconnects_per_s", "peak_reconnects_per_s_5s",
                    "peak_active", "clients_never_connected", "clients_connected_at_end", "turned_away", "per_day")
MESSAGE_FIGURES = ("duplicates_displayed", "lost_messages", "messages_sent", "messages_displayed",
                   "messages_indeterminate", "reordered_messages", "unexpected_messages", "user_messages_sent",
                   "lost_user_messages", "duplicated_user_messages", "user_messages_indeterminate")


def _scaled(rec: RunRecord) -> dict[str, Any]:
    """A model run that did not follow every client says, next to its figures, which ones it scaled
    and by what: `scaled.weight` (clients per agent) and `scaled.message_sample` (the clients whose
    chat it followed); nothing for a run that followed every client."""
    sampling = rec.meta.get("sampling") or {}
    weight = int(sampling_weight(rec.meta))
    sample = sampling.get("ledger_clients")
    scaled: dict[str, Any] = {}
    if weight > 1:
        scaled["weight"] = {"clients_per_agent": weight, "figures": list(WEIGHTED_FIGURES)}
    if sample and sample < int(sampling.get("agents") or rec.clients):
        scaled["message_sample"] = {"clients": int(sample), "scale": round(rec.clients / sample, 6),
                                    "figures": list(MESSAGE_FIGURES)}
    return {"scaled": scaled} if scaled else {}


def _served(rec: RunRecord, closes_by_code: dict[str, int]) -> dict[str, Any]:
    """Whether the fleet was served, for the capacity rule: clients of the fleet that never had a
    connection open, those connected at the end, and the handshakes turned away (1013 sheds and
    refused handshakes; a shed client that came back later was still turned away then). Every
    count is for the whole fleet; `sampling_weight` says how many clients each simulated agent
    stood for (1 when every client was followed)."""
    seen = presence(rec)
    return {"clients_never_connected": seen.never_connected(),
            "clients_connected_at_end": int(seen.connected[-1]) if len(seen.connected) else 0,
            "turned_away": int(closes_by_code.get("1013", 0)) + passes.counts(rec).failed,
            "sampling_weight": int(sampling_weight(rec.meta))}


#: the window of `peak_reconnects_per_s_5s`: longer than the order in which one server queue serves a
#: herd (what a 1-s bin resolves at an emulation's time scale, and Poisson noise at a few hundred
#: clients), shorter than the herds the client spreads on purpose (1 s backoff base, 10 s restart window)
PEAK_WINDOW_S = 5


def rolling_peak(per_second: pd.Series, window: int) -> float:
    """The highest mean rate over `window` consecutive scenario seconds (a shorter run: its mean)."""
    if not len(per_second):
        return 0.0
    rolled = per_second.rolling(min(window, len(per_second))).mean()
    return round(float(rolled.max()), 3)
