"""Gates as Prometheus rules, checked by the real `promtool` (check rules, test rules)."""
import shutil
import subprocess

import pytest
import yaml

from formats.gates import parse_gates
from harness.prom.rules import alert_name, build_rules, emit_rules, record_name

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`)")

GATES = parse_gates([
    {"name": "no 4401 closes", "metric": 'closes{code="4401"}', "stat": "count", "op": "==", "value": 0},
    {"name": "p95 connection duration", "metric": "connection_duration", "stat": "p95", "op": ">=", "value": "2h"},
    {"name": "active in range", "metric": "active_connections", "stat": "value", "op": "between",
     "value": [10, 100], "strict": False},
    {"name": "no 4401 spikes", "metric": 'closes{code="4401"}', "stat": "max_window_count", "window": "2m",
     "op": "<=", "value": "3x baseline"},
    {"name": "nothing lost {{ $value }}", "metric": "lost_messages", "stat": "count", "op": "==", "value": 0},
])


def test_rules_per_gate_and_the_left_out_ones_with_reasons():
    doc, skipped = build_rules(GATES, window=600, for_="2m")
    rules = doc["groups"][0]["rules"]
    records = {r["record"]: r["expr"] for r in rules if "record" in r}
    alerts = {r["alert"]: r for r in rules if "alert" in r}
    assert records["stormbench:gate:no_4401_closes"] == 'sum(increase(ws_closes_total{code="4401"}[600s]))'
    assert alerts["StormbenchGateNo4401Closes"]["expr"] == "stormbench:gate:no_4401_closes != 0.0"
    assert alerts["StormbenchGateP95ConnectionDuration"]["expr"] == "stormbench:gate:p95_connection_duration < 7200.0"
    assert alerts["StormbenchGateActiveInRange"]["labels"]["severity"] == "ticket"
    assert alerts["StormbenchGateNo4401Spikes"]["expr"] == \
        "stormbench:gate:no_4401_spikes > 3.0 * stormbench:gate:no_4401_spikes:baseline"
    assert [name for name, _ in skipped] == ["nothing lost {{ $value }}"]


@needs_promtool
def test_promtool_accepts_the_rules_and_the_alerts_fire_when_the_gates_fail(tmp_path):
    rules_file = tmp_path / "rules.yml"
    skipped = emit_rules(GATES, rules_file, window=600, for_="2m")
    assert "# not expressible in Prometheus: nothing lost {{ $value }}" in rules_file.read_text()
    assert len(skipped) == 1
    check = subprocess.run([PROMTOOL, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr

    rules = {r.get("alert"): r for r in yaml.safe_load(rules_file.read_text())["groups"][0]["rules"]}

    def firing(gate):
        rule = rules[alert_name(gate)]
        return [{"exp_labels": {"severity": rule["labels"]["severity"], "gate": gate.name},
                 "exp_annotations": rule["annotations"]}]

    closes, p95, active, spikes, _ = GATES
    spec = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                # no 4401 closes for 20 minutes, then a burst of ten at once
                {"series": 'ws_closes_total{code="4401"}', "values": "0x20 10x20"},
                # every connection lived between 60 s and 120 s: p95 ≈ 117 s, far below 2 h
                {"series": 'ws_connection_duration_seconds_bucket{le="60"}', "values": "0x40"},
                {"series": 'ws_connection_duration_seconds_bucket{le="120"}', "values": "0+10x40"},
                {"series": 'ws_connection_duration_seconds_bucket{le="+Inf"}', "values": "0+10x40"},
                {"series": "ws_connections_active", "values": "50x20 500x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "15m", "alertname": alert_name(closes), "exp_alerts": []},
                {"eval_time": "30m", "alertname": alert_name(closes), "exp_alerts": firing(closes)},
                {"eval_time": "15m", "alertname": alert_name(p95), "exp_alerts": firing(p95)},
                {"eval_time": "15m", "alertname": alert_name(active), "exp_alerts": []},
                {"eval_time": "30m", "alertname": alert_name(active), "exp_alerts": firing(active)},
                # ten closes in one 2-minute window against a 10-minute mean of two per window
                {"eval_time": "24m", "alertname": alert_name(spikes), "exp_alerts": firing(spikes)},
                {"eval_time": "15m", "alertname": alert_name(spikes), "exp_alerts": []},
            ],
            "promql_expr_test": [
                {"expr": record_name(closes), "eval_time": "15m",
                 "exp_samples": [{"labels": f'{record_name(closes)}{{gate="{closes.name}"}}', "value": 0}]},
            ],
        }],
    }
    (tmp_path / "rules_test.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    test = subprocess.run([PROMTOOL, "test", "rules", "rules_test.yml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert test.returncode == 0, test.stdout + test.stderr


def test_the_command_names_the_gates_it_left_out_and_why(tmp_path, capsys):
    from commands.cli import main as stormbench

    gate_file = tmp_path / "gates.yaml"
    gate_file.write_text(yaml.safe_dump([g.to_dict() for g in GATES]))
    assert stormbench(["gates", "--gates", str(gate_file), "--emit-rules", str(tmp_path / "rules.yml")]) == 0
    out = capsys.readouterr().out
    _, skipped = build_rules(GATES)
    assert "rules for 4 of 5 gate(s)" in out
    assert f"left out 'nothing lost {{{{ $value }}}}': {skipped[0][1]}" in out


SPIKES = parse_gates([{"name": "no 4401 spikes", "metric": 'closes{code="4401"}', "stat": "max_window_count",
                       "window": "1m", "op": "<=", "value": "3x baseline"}])


@needs_promtool
def test_the_spike_alert_stays_quiet_on_a_steady_rate_fires_on_a_spike_and_recovers(tmp_path):
    """A steady 4401 a minute is no spike, even while history is shorter than the rule's window
    (the baseline is the window before, at least one per window); twenty at once is; and the
    alert clears once the spike has left the window."""
    emit_rules(SPIKES, tmp_path / "rules.yml", window=1800, for_="0")
    [gate] = SPIKES
    rule = next(r for r in yaml.safe_load((tmp_path / "rules.yml").read_text())["groups"][0]["rules"]
                if r.get("alert") == alert_name(gate))
    assert "for" not in rule
    fired = [{"exp_labels": {"severity": "page", "gate": gate.name}, "exp_annotations": rule["annotations"]}]

    def case(values: str, expect: dict[str, bool]) -> dict:
        return {"interval": "1m", "input_series": [{"series": 'ws_closes_total{code="4401"}', "values": values}],
                "alert_rule_test": [{"eval_time": at, "alertname": alert_name(gate),
                                     "exp_alerts": fired if fires else []} for at, fires in expect.items()]}

    spec = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [
        # one close a minute for two hours: quiet from the first minutes on
        case("0+1x120", {"3m": False, "10m": False, "45m": False, "115m": False}),
        # the same, with twenty extra closes in minute 61: fires, then recovers
        case("0+1x60 81+1x60", {"55m": False, "62m": True, "70m": True, "100m": False}),
    ]}
    (tmp_path / "rules_test.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    test = subprocess.run([PROMTOOL, "test", "rules", "rules_test.yml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert test.returncode == 0, test.stdout + test.stderr


def test_window_and_for_reach_the_emitted_rules(tmp_path, capsys):
    from commands.cli import main as stormbench

    gate_file, rules = tmp_path / "gates.yaml", tmp_path / "rules.yml"
    gate_file.write_text(yaml.safe_dump([g.to_dict() for g in SPIKES]))
    assert stormbench(["gates", "--gates", str(gate_file), "--emit-rules", str(rules),
                       "--window", "1h", "--for", "90s"]) == 0
    doc = yaml.safe_load(rules.read_text())["groups"][0]["rules"]
    [alert] = [r for r in doc if "alert" in r]
    assert alert["for"] == "90s"
    assert all("3600s" in r["expr"] for r in doc if "record" in r)
    run_dir = tmp_path / "no-such-run"
    assert stormbench(["gates", str(run_dir), "--gates", str(gate_file), "--for", "1m"]) == 2
    assert "--for: applies with --emit-rules" in capsys.readouterr().err
