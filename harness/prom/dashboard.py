"""A Grafana dashboard for the chat server, generated from `system.server.metrics.METRICS`.

Generated rather than hand-kept so that a metric added to the server appears on the
dashboard, and a renamed one can not leave a panel querying nothing.
`python -m harness.prom.dashboard FILE` writes it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterable

from system.server.metrics import METRICS, MetricSpec

RATE_WINDOW = "$__rate_interval"
UNITS = {"seconds": "s", "bytes": "bytes"}
PANEL_W, PANEL_H = 12, 8


def queries(spec: MetricSpec) -> list[tuple[str, str]]:
    """(PromQL, legend) per panel target; labels stay split so a 4401 spike stands out."""
    by = f" by ({', '.join(spec.labels)})" if spec.labels else ""
    legend = " ".join(f"{{{{{label}}}}}" for label in spec.labels) or spec.name
    if spec.type == "counter":
        return [(f"sum{by} (rate({spec.name}[{RATE_WINDOW}]))", legend)]
    if spec.type == "gauge":
        return [(f"sum{by} ({spec.name})", legend)]
    le_by = f" by (le, {', '.join(spec.labels)})" if spec.labels else " by (le)"
    return [(f"histogram_quantile({q}, sum{le_by} (rate({spec.name}_bucket[{RATE_WINDOW}])))",
             f"p{round(q * 100)} {legend}".strip()) for q in (0.5, 0.95, 0.99)]


def dashboard(metrics: Iterable[MetricSpec] = METRICS) -> dict[str, Any]:
    panels = []
    for i, spec in enumerate(metrics):
        unit = next((u for suffix, u in UNITS.items() if spec.name.endswith(suffix)), "short")
        if spec.type == "counter":
            unit = "ops"
        panels.append({
            "id": i + 1,
            "type": "timeseries",
            "title": spec.name,
            "description": spec.help,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"x": (i % 2) * PANEL_W, "y": (i // 2) * PANEL_H, "w": PANEL_W, "h": PANEL_H},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
            "targets": [{"refId": chr(ord("A") + j), "expr": expr, "legendFormat": legend,
                         "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                        for j, (expr, legend) in enumerate(queries(spec))],
        })
    return {
        "title": "stormbench — chat server",
        "uid": "stormbench-chat-server",
        "tags": ["stormbench", "websocket"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus", "current": {}}]},
        "panels": panels,
    }


def write_dashboard(path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(dashboard(), indent=2) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m harness.prom.dashboard FILE")
    print(write_dashboard(sys.argv[1]))
