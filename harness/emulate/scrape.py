"""Periodic `/metrics` scrapes of the server, parsed with prometheus_client's own parser.

Each scrape becomes one `scrapes.jsonl` line `{"t", "samples": [{"name","labels","value"}]}`
with `t` in scenario seconds, so gates on server metrics (agent latency, closes by
code) read the same numbers Prometheus would have.
"""
from __future__ import annotations

import math
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def parse_metrics(text: str) -> list[dict[str, Any]]:
    """Every sample of a Prometheus text exposition as plain dicts (NaN/inf kept as strings
    so the line stays valid JSON)."""
    out = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            v = float(s.value)
            out.append({"name": s.name, "labels": dict(s.labels),
                        "value": v if math.isfinite(v) else str(v)})
    return out
