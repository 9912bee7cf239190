"""`stormbench dashboard`: a Grafana dashboard for the chat server and its staging gates.

Generated rather than hand-kept so that a metric added to the server appears on the
dashboard, and a renamed one can not leave a panel querying nothing. Two rows: one panel
per gate Prometheus can judge (the same PromQL as `stormbench gates --prometheus` and the
alert rules, with the gate's threshold drawn as a line and a red/green threshold band),
then one panel per exported metric. Titles are words with their unit; the metric's name is
in the description, where an SRE looks it up.
"""
from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from system.server.metrics import EXPORTED, MetricSpec

HELP = "write the Grafana dashboard (server metrics and a panel per gate, with its threshold)"
RATE_WINDOW = "$__rate_interval"
PANEL_W, PANEL_H = 12, 8
DEFAULT_GATES = "the library's staging gates (scenarios/gates/staging.yaml)"
DEFAULT_WINDOW = "24h"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# exposed name -> (title in words, Grafana unit)
TITLES: dict[str, tuple[str, str]] = {
    "ws_connections_active": ("Open WebSocket sessions (count)", "short"),
    "ws_connections_opened_total": ("WebSocket sessions opened (per second)", "ops"),
    "ws_closes_total": ("WebSocket closes by close code (per second)", "ops"),
    "ws_connection_duration_seconds": ("WebSocket session lifetime, p50/p95/p99 (seconds)", "s"),
    "ws_handshake_rejections_total": ("Handshakes rejected by HTTP status (per second)", "ops"),
    "ws_messages_total": ("WebSocket frames by direction and type (per second)", "ops"),
    "auth_tokens_issued_total": ("Access tokens issued (per second)", "ops"),
    "auth_refresh_total": ("Token refreshes by result (per second)", "ops"),
    "agent_requests_total": ("Agent requests by agent, tenure and outcome (per second)", "ops"),
    "agent_execution_seconds": ("Agent answer time, p50/p95/p99 (seconds)", "s"),
    "agent_results_returned": ("Results per agent answer, p50/p95/p99 (count)", "short"),
    "agent_errors_total": ("Agent errors (per second)", "ops"),
    "process_resident_memory_bytes": ("Server resident memory (bytes)", "bytes"),
    "process_cpu_seconds_total": ("Server CPU (cores busy)", "short"),
    "process_open_fds": ("Server open file descriptors (count)", "short"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="FILE", default="stormbench-dashboard.json",
                        help="where to write the dashboard JSON (default: stormbench-dashboard.json; - for stdout)")
    parser.add_argument("--gates", metavar="FILE",
                        help=f"gate file whose gates get a panel each with their threshold (default: {DEFAULT_GATES})")
    parser.add_argument("--window", default=DEFAULT_WINDOW, metavar="DURATION",
                        help=f"the window each gate panel judges over, as the alert rules do (default {DEFAULT_WINDOW})")


def queries(spec: MetricSpec) -> list[tuple[str, str]]:
    """(PromQL, legend) per panel target; labels stay split so a 4401 spike stands out."""
    by = f" by ({', '.join(spec.labels)})" if spec.labels else ""
    legend = " ".join(f"{{{{{label}}}}}" for label in spec.labels) or TITLES[spec.name][0].split(" (")[0]
    if spec.type == "counter":
        return [(f"sum{by} (rate({spec.name}[{RATE_WINDOW}]))", legend)]
    if spec.type == "gauge":
        return [(f"sum{by} ({spec.name})", legend)]
    le_by = f" by (le, {', '.join(spec.labels)})" if spec.labels else " by (le)"
    return [(f"histogram_quantile({q}, sum{le_by} (rate({spec.name}_bucket[{RATE_WINDOW}])))",
             f"p{round(q * 100)} {legend}".strip()) for q in (0.5, 0.95, 0.99)]


def _panel(pid: int, slot: int, title: str, description: str, unit: str, targets: list[tuple[str, str]],
           thresholds: dict | None = None, y0: int = 0) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit}
    if thresholds is not None:
        defaults["thresholds"] = thresholds
        defaults["custom"] = {"thresholdsStyle": {"mode": "line+area"}}
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": (slot % 2) * PANEL_W, "y": y0 + (slot // 2) * PANEL_H, "w": PANEL_W, "h": PANEL_H},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [{"refId": chr(ord("A") + j), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}
                    for j, (expr, legend) in enumerate(targets)],
    }


def _steps(op: str, threshold: float) -> dict[str, Any]:
    """Grafana threshold steps: red on the failing side of the gate's threshold, green on the other."""
    passing_above = op in (">", ">=")
    below, above = ("red", "green") if passing_above else ("green", "red")
    return {"mode": "absolute", "steps": [{"color": below, "value": None}, {"color": above, "value": threshold}]}


def _text_panel(pid: int, slot: int, gate, threshold: str, why: str) -> dict[str, Any]:
    """A gate Prometheus can not judge still gets its place, its threshold and the reason."""
    content = (f"**{gate.stat_label} of `{gate.selector}` {gate.op} {threshold}**\n\n"
               f"Judged on run records only (`stormbench gates RUN_DIR`): {why}.")
    return {"id": pid, "type": "text", "title": f"Gate: {gate.name} ({gate.op} {threshold}, run records only)",
            "description": gate.description, "gridPos": {"x": (slot % 2) * PANEL_W, "y": (slot // 2) * PANEL_H,
                                                         "w": PANEL_W, "h": PANEL_H // 2},
            "options": {"mode": "markdown", "content": content}}


def gate_panels(gates: list, window_s: float, first_id: int) -> tuple[list[dict], list[tuple[str, str]]]:
    """A panel per gate Prometheus can judge, and the gates left out with the reason."""
    from formats.gates.wording import quantity
    from harness.prom.promql import NotDerivable, query_for
    from system.units import format_duration

    panels, left_out = [], []
    for gate in gates:
        threshold = (f"{gate.baseline_factor:g}x baseline" if gate.baseline_factor is not None
                     else quantity(gate.selector, gate.stat, gate.value, with_noun=False))
        try:
            query = query_for(gate, window_s, trailing_baseline=True)
        except NotDerivable as why:
            left_out.append((gate.name, str(why)))
            panels.append(_text_panel(first_id + len(panels), len(panels), gate, threshold, str(why)))
            continue
        unit = "s" if query.spec is not None and query.spec.name.endswith("_seconds") else "short"
        if gate.stat == "min_fraction" or gate.stat == "growth":
            unit = "percentunit"
        targets = [(query.expr, gate.stat_label)]
        thresholds = None
        if query.baseline_expr is not None:
            targets.append((f"{gate.baseline_factor!r} * ({query.baseline_expr})",
                            f"threshold: {gate.baseline_factor:g}x baseline"))
        elif isinstance(gate.value, (int, float)):
            thresholds = _steps(gate.op, float(gate.value))
        title = f"Gate: {gate.name} ({gate.op} {threshold}, over {format_duration(window_s)})"
        description = (f"{gate.description} " if gate.description else "") + (
            f"{gate.stat_label} of {gate.selector}; {query.note}. Red is the failing side.")
        panels.append(_panel(first_id + len(panels), len(panels), title, description, unit, targets, thresholds))
    return panels, left_out


def dashboard(metrics: Iterable[MetricSpec] = EXPORTED, gates: list | None = None,
              window_s: float = 86400.0) -> dict[str, Any]:
    panels, left_out = gate_panels(gates or [], window_s, 1)
    gate_rows = (len(panels) + 1) // 2 * PANEL_H
    for i, spec in enumerate(metrics):
        title, unit = TITLES[spec.name]
        panels.append(_panel(len(panels) + 1, i, title, f"{spec.help} (`{spec.name}`)", unit, queries(spec),
                             y0=gate_rows))
    description = "Chat server metrics and stormbench gates, generated by `stormbench dashboard`."
    if left_out:
        description += " Gates judged on run records only: " + "; ".join(f"{n} ({why})" for n, why in left_out)
    return {
        "title": "stormbench — chat server",
        "description": description,
        "uid": "stormbench-chat-server",
        "tags": ["stormbench", "websocket"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus", "hide": 0,
                                 "current": {"selected": False, "text": "default", "value": "default"}}]},
        "annotations": {"list": []},
        "panels": panels,
    }


def write_dashboard(path: str | Path, gates: list | None = None, window_s: float = 86400.0) -> Path:
    path = Path(path)
    path.write_text(json.dumps(dashboard(gates=gates, window_s=window_s), indent=2) + "\n", encoding="utf-8")
    return path


def run(args: argparse.Namespace) -> int:
    from system.errors import UsageError
    from formats.gates.spec import load_gates
    from system.units import parse_duration

    try:
        window = parse_duration(args.window)
    except ValueError as exc:
        raise UsageError(f"--window: {exc}") from None
    gates = load_gates(args.gates or Path(str(resources.files("scenarios"))) / "gates" / "staging.yaml")
    if args.out == "-":
        sys.stdout.write(json.dumps(dashboard(gates=gates, window_s=window), indent=2) + "\n")
        return 0
    try:
        path = write_dashboard(args.out, gates, window)
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot write the dashboard there ({exc.strerror or exc})") from None
    doc = json.loads(path.read_text())
    gate_panels_n = sum(1 for p in doc["panels"] if p["title"].startswith("Gate: "))
    print(f"wrote {path}: {len(doc['panels'])} panels ({gate_panels_n} gates of {len(gates)}); import it in Grafana "
          "(Dashboards > New > Import) and pick the Prometheus data source")
    return 0
