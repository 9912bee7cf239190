"""The Grafana dashboard: valid JSON, one panel per exported metric, queries naming only exported series."""
import json
import re

from harness.prom.dashboard import dashboard, write_dashboard
from system.server.metrics import METRICS

PROMQL_WORDS = {"sum", "by", "rate", "histogram_quantile", "le", "without", "on", "ignoring"}


def exported_series() -> set[str]:
    names = set()
    for spec in METRICS:
        names.add(spec.name)
        if spec.type == "histogram":
            names |= {f"{spec.name}_bucket", f"{spec.name}_sum", f"{spec.name}_count"}
    return names


def referenced_metrics(expr: str) -> set[str]:
    """Series names in a PromQL expression: identifiers that are not functions, keywords or labels."""
    expr = re.sub(r'"[^"]*"', "", expr)                           # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)                         # matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)                        # ranges ($__rate_interval)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        is_call = expr[m.end():].lstrip().startswith("(")
        if not is_call and m.group() not in PROMQL_WORDS:
            names.add(m.group())
    return names


def test_dashboard_is_json_with_a_panel_per_metric(tmp_path):
    path = write_dashboard(tmp_path / "dashboard.json")
    data = json.loads(path.read_text())
    assert [p["title"] for p in data["panels"]] == [m.name for m in METRICS]
    assert len({p["id"] for p in data["panels"]}) == len(METRICS)
    assert all(p["targets"] for p in data["panels"])


def test_queries_reference_only_exported_metrics():
    exported = exported_series()
    seen = set()
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            names = referenced_metrics(target["expr"])
            assert names and names <= exported, (target["expr"], names - exported)
            seen |= names
    assert {m.name if m.type != "histogram" else f"{m.name}_bucket" for m in METRICS} <= seen


def test_the_reference_check_catches_a_wrong_name():
    assert referenced_metrics('sum by (code) (rate(ws_closed_total{code="4401"}[$__rate_interval]))') == \
        {"ws_closed_total"}
