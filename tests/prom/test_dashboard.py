"""The Grafana dashboard: schema-valid, a panel per exported metric titled in words with a unit, a panel
per staging gate with its threshold, queries naming only exported series; `stormbench dashboard`."""
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema

from formats.gates import load_gates
from harness.prom.dashboard import dashboard, write_dashboard
from system.server.metrics import EXPORTED as METRICS

SCHEMA = Path(__file__).with_name("grafana_dashboard.schema.json")
STAGING = Path(__file__).resolve().parents[2] / "scenarios" / "gates" / "staging.yaml"

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
    described = [p["description"] for p in data["panels"]]
    assert all(any(f"`{m.name}`" in d for d in described) for m in METRICS)
    assert len({p["id"] for p in data["panels"]}) == len(data["panels"]) == len(METRICS)
    for panel in data["panels"]:
        assert panel["targets"]
        assert "_" not in panel["title"] and re.search(r"\((count|per second|seconds|bytes|cores busy)\)$",
                                                       panel["title"]), panel["title"]


def test_dashboard_matches_grafanas_schema_and_the_check_catches_the_old_current(tmp_path):
    schema = json.loads(SCHEMA.read_text())
    doc = dashboard(gates=load_gates(STAGING))
    jsonschema.validate(doc, schema)
    doc["templating"]["list"][0]["current"] = {}  # what the generator wrote before: not a VariableOption
    try:
        jsonschema.validate(doc, schema)
    except jsonschema.ValidationError as exc:
        assert "text" in exc.message
    else:
        raise AssertionError("an empty templating current passed the schema")


def test_a_panel_per_staging_gate_showing_its_threshold():
    gates = load_gates(STAGING)
    panels = {p["title"].split(" (")[0].removeprefix("Gate: "): p for p in dashboard(gates=gates)["panels"]
              if p["title"].startswith("Gate: ")}
    assert list(panels) == [g.name for g in gates]
    p95 = panels["p95 connection duration"]
    assert ">= 2h" in p95["title"]
    assert p95["fieldConfig"]["defaults"]["thresholds"]["steps"] == [{"color": "red", "value": None},
                                                                     {"color": "green", "value": 7200.0}]
    spikes = panels["no 4401 spikes"]
    assert "3x baseline" in spikes["title"] and any("offset" in t["expr"] for t in spikes["targets"])
    assert "run records only" in panels["nothing lost"]["title"]
    assert "measured by the clients" in panels["nothing lost"]["options"]["content"]


def test_stormbench_dashboard_subcommand_writes_the_file(tmp_path):
    out = tmp_path / "d.json"
    done = subprocess.run([sys.executable, "-m", "commands.cli", "dashboard", "--out", str(out)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["uid"] == "stormbench-chat-server" and f"wrote {out}" in done.stdout
    helped = subprocess.run([sys.executable, "-m", "commands.cli", "dashboard", "--help"], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert helped.returncode == 0 and "--out FILE" in helped.stdout
    assert not (tmp_path / "--help").exists()


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
