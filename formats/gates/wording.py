"""Verdicts in words: numbers with their units, as an SRE reads them in a CI log or a report.

`70,688 HTTP 403s; gate == 0`, `p95 1h12m; gate >= 2h`, `96.7% of the level before the
restart; gate >= 98%`: never scientific notation, never a bare float whose unit the
reader must guess. The evidence (where in the run a gate failed, why one is unknown) is
sentences built from the verdict's provenance, so JUnit bodies, the verdict table and
the HTML report say the same thing in the same words.
"""
from __future__ import annotations

import re
from typing import Any

from formats.gates.verdict import UNKNOWN, Verdict
from system.units import format_duration, format_instant, human_number

# what one event of a counted metric is called (plural)
NOUNS = {
    "http_403": "HTTP 403s", "manual_refreshes": "manual refreshes", "lost_messages": "lost messages",
    "lost_user_messages": "typed messages lost", "duplicated_user_messages": "typed messages duplicated",
    "duplicates_displayed": "duplicates displayed", "duplicates": "duplicates displayed",
    "reordered_messages": "reordered messages", "unexpected_messages": "unexpected messages",
    "attempts": "connection attempts", "reconnects": "reconnects", "opens": "connections opened",
    "closes": "closes", "displayed": "messages displayed", "storms": "storms",
    "messages_sent": "messages sent", "connection_duration": "connections",
}
DURATION_METRICS = ("connection_duration", "ws_connection_duration_seconds", "agent_execution",
                    "agent_execution_seconds")
BYTE_METRICS = ("memory", "process_resident_memory_bytes")
COUNT_STATS = ("count", "max_window_count")
# provenance keys `evidence` words itself (or leaves to the machine-readable gates.json: `intervals`)
SAID = frozenset({"metric", "stat", "phase", "window_s", "baseline", "fleet", "where", "reason", "intervals",
                  "promql", "bucket", "caveat", "lower_bound", "source", "url"})


def noun(metric: str) -> str:
    """`closes{code="4401"}` -> `4401 closes`; `handshake_rejections{status="403"}` -> `HTTP 403s`."""
    m = re.fullmatch(r"(\w+)(?:\{(.*)\})?", metric)
    name, tags = (m.group(1), m.group(2) or "") if m else (metric, "")
    values = dict(re.findall(r'(\w+)="([^"]*)"', tags))
    if name in ("handshake_rejections", "ws_handshake_rejections_total"):
        return f"HTTP {values['status']}s" if "status" in values else "rejected handshakes"
    base = NOUNS.get(name, name.removesuffix("_total").replace("_", " "))
    if "code" in values:
        return f"{values['code']} {base}"
    rest = ", ".join(f"{k}={v}" for k, v in values.items())
    return f"{base} ({rest})" if rest else base


def _base(metric: str) -> str:
    return metric.split("{", 1)[0]


def quantity(metric: str, stat: str, value: Any, *, with_noun: bool = True) -> str:
    """One value of a gate's statistic with its unit."""
    if value is None:
        return "n/a"
    if isinstance(value, (list, tuple)):
        return " and ".join(quantity(metric, stat, v, with_noun=with_noun) for v in value)
    base = _base(metric)
    if stat == "min_fraction":
        return f"{value * 100:.1f}%".replace(".0%", "%")
    if stat == "growth":
        return f"{value * 100:+.1f}%"
    if stat in COUNT_STATS:
        return f"{human_number(value)} {noun(metric)}" if with_noun else human_number(value)
    if stat == "rate":
        return f"{human_number(value)}/s" + (f" {noun(metric)}" if with_noun else "")
    if base in DURATION_METRICS:
        return format_duration(float(value))
    if base in BYTE_METRICS:
        return f"{human_number(round(value / 2**20, 1))} MiB"
    return human_number(value)


def verdict_sentence(v: Verdict) -> str:
    """`70,688 HTTP 403s; gate == 0` — what was observed against what the gate asks."""
    metric, stat = str(v.provenance.get("metric", "")), str(v.provenance.get("stat", ""))
    stat_word = "" if not stat or stat in COUNT_STATS or stat in ("min_fraction", "growth", "value") else f"{stat} "
    observed = "not observed" if v.observed is None else f"{stat_word}{quantity(metric, stat, v.observed)}"
    return f"{observed}; gate {v.op} {quantity(metric, stat, v.threshold, with_noun=False)}"


def where(v: Verdict) -> str:
    """Where in the run a failed gate failed, or why an unknown one is unknown: one line."""
    p = v.provenance
    if v.verdict == UNKNOWN:
        return str(p.get("reason", ""))
    w = p.get("where", {})
    if "window" in w:
        win = w["window"]
        return (f"busiest window {format_instant(win['start_s'])}–{format_instant(win['end_s'])}: "
                f"{human_number(win['count'])}")
    if "connections_below_threshold" in w:
        return f"{human_number(w['connections_below_threshold'])} connections below the threshold"
    if "worst" in w:
        worst = w["worst"]
        return (f"{human_number(worst['connected_clients'])} of {human_number(worst['fleet_expected'])} clients "
                f"connected at {format_instant(worst['at_s'])}")
    if w.get("busiest_seconds"):
        t, n = w["busiest_seconds"][0]
        return f"busiest second {format_instant(t)}: {human_number(n)}"
    if "lower_bound" in p:
        return f"> {format_duration(p['lower_bound'])} (censored)"
    if "baseline" in p:
        return f"baseline {human_number(p['baseline']['value'])}"
    return ""


def evidence(v: Verdict) -> list[str]:
    """The provenance as sentences, for a JUnit failure body or a report's 'why'."""
    p = v.provenance
    lines = [f"{v.name}: {v.verdict} ({verdict_sentence(v)})"]
    if p.get("reason"):
        lines.append(f"why: {p['reason']}")
    phase = p.get("phase")
    if phase and phase != "run":
        lines.append(f"phase: {', '.join(f'{k} {val}' for k, val in phase.items())}")
    if p.get("window_s"):
        lines.append(f"window: {format_duration(p['window_s'])}")
    if "baseline" in p:
        b = p["baseline"]
        lines.append(f"baseline: {human_number(b['value'])} (x{human_number(b.get('factor') or 1)} is the threshold)")
    if "fleet" in p:
        lines.append(f"fleet: {human_number(p['fleet']['clients'])} clients")
    w = p.get("where", {})
    if w.get("busiest_seconds"):
        busiest = ", ".join(f"{format_instant(t)}: {human_number(n)}" for t, n in w["busiest_seconds"][:5])
        lines.append(f"busiest seconds: {busiest}")
    elif where(v) and v.verdict != UNKNOWN:
        lines.append(f"where: {where(v)}")
    for key in ("promql", "bucket", "caveat"):
        if key in p:
            lines.append(f"{key}: {p[key]}")
    for key, value in p.items():  # the evaluator's other facts (connections, censored, events, ...)
        if key not in SAID and isinstance(value, (int, float)) and not isinstance(value, bool):
            lines.append(f"{key.replace('_', ' ')}: {human_number(value)}")
    return lines
