"""`stormbench run` and `stormbench gates` as a user runs them: real subprocesses, real files, exit codes."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.harness.synth import session, write_record

ROOT = Path(__file__).resolve().parents[2]


def stormbench(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "commands.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


GATES = [
    {"name": "few 4401", "metric": 'closes{code="4401"}', "stat": "count", "op": "<=", "value": 0},
    {"name": "advisory attempts", "metric": "attempts", "stat": "count", "op": "<", "value": 1, "strict": False},
]


@pytest.fixture
def run_dir(tmp_path):
    events = session("c0", "k0", [(0, 1, 30, 4401), (31, 31, None, None)])
    return write_record(tmp_path / "run", events, duration=100, clients=1, gates=GATES)


def test_gates_rejudges_a_run_and_fails_on_a_strict_gate(run_dir):
    done = stormbench("gates", str(run_dir))
    assert done.returncode == 1, done.stderr
    assert "few 4401" in done.stdout and "FAIL" in done.stdout
    assert "exit 1: a strict gate failed (0 passed, 1 failed, 0 unknown of 1 strict; 1 advisory failed (not counted))" \
        in done.stdout
    verdicts = {v["name"]: v for v in json.loads((run_dir / "gates.json").read_text())}
    assert verdicts["few 4401"]["verdict"] == "fail" and verdicts["few 4401"]["observed"] == 1.0
    assert verdicts["advisory attempts"]["verdict"] == "fail" and verdicts["advisory attempts"]["strict"] is False
    suite = ET.parse(run_dir / "junit.xml").getroot().find("testsuite")
    assert suite.get("failures") == "1"
    assert (run_dir / "summary.json").exists()


def test_gates_with_another_gate_file(run_dir, tmp_path):
    passing = tmp_path / "pass.yaml"
    passing.write_text("- {name: one 4401, metric: 'closes{code=\"4401\"}', stat: count, op: '==', value: 1}\n")
    assert stormbench("gates", str(run_dir), "--gates", str(passing), "--quiet").returncode == 0
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("gates:\n  - {name: agent, metric: agent_execution, stat: p95, op: '<', value: 100ms}\n")
    done = stormbench("gates", str(run_dir), "--gates", str(unknown))
    assert done.returncode == 3 and "UNKNOWN" in done.stdout


def test_gates_usage_errors(tmp_path):
    done = stormbench("gates", str(tmp_path / "nope"))
    assert done.returncode == 2 and "does not exist" in done.stderr
    done = stormbench("gates")
    assert done.returncode == 2 and "nothing to judge" in done.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {name: x, metric: attempts, stat: p0, op: '<', value: 1}\n")
    done = stormbench("gates", "--gates", str(bad), str(tmp_path))
    assert done.returncode == 2 and "bad.yaml: $[0].stat" in done.stderr


def test_run_reports_a_bad_scenario_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nduration: 1h\nfleet: {clients: 10}\nfaults: [{at: 5m, kind: latency}]\n")
    done = stormbench("run", str(bad), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "bad.yaml" in done.stderr and "$.faults[0]: 'latency' is a required property" in done.stderr
    assert not (tmp_path / "out").exists()


def test_run_refuses_to_overwrite_a_record(run_dir):
    (run_dir / "summary.json").write_text("{}")
    done = stormbench("run", "token-expiry-403", "--engine", "simulate", "--out", str(run_dir))
    assert done.returncode == 2 and "already holds a run record" in done.stderr


def test_run_rejects_emulate_flags_for_the_simulation(tmp_path):
    done = stormbench("run", "token-expiry-403", "--engine", "simulate", "--target", "http://127.0.0.1:1",
                      "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "--target" in done.stderr


@pytest.mark.parametrize("agents, weight", [(None, 3), ("all", 1), ("4", 3)])
def test_run_chooses_how_many_clients_the_model_follows_one_by_one(tmp_path, agents, weight):
    """`--agents`: at most N agents (the default `sim.engine.MAX_AGENTS`), or one per client."""
    from sim.engine import MAX_AGENTS

    scenario = tmp_path / "fleet.yaml"
    scenario.write_text(f"""
name: fleet
seed: 3
duration: 1m
fleet: {{clients: 10, sim_clients: {MAX_AGENTS * 2 + 1 if agents is None else 12}, profile: fixed, arrival: {{ramp: 30s}}}}
""")
    out = tmp_path / "out"
    flags = [] if agents is None else ["--agents", agents]
    done = stormbench("run", str(scenario), "--engine", "simulate", "--out", str(out), *flags)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "meta.json").read_text())["sampling"]["weight"] == weight
    assert f"default {MAX_AGENTS:,}:" in stormbench("run", "--help").stdout.replace("\n", " ")


def test_run_refuses_agents_for_the_emulation_and_a_bad_count(tmp_path):
    done = stormbench("run", "token-expiry-403", "--agents", "all", "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "--agents: for --engine simulate only" in done.stderr
    done = stormbench("run", "token-expiry-403", "--engine", "simulate", "--agents", "0", "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "--agents" in done.stderr and "at least 1" in done.stderr


def test_run_simulates_a_small_scenario_end_to_end(tmp_path):
    pytest.importorskip("sim.engine")
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text("""
name: tiny
seed: 3
duration: 10m
fleet: {clients: 20, profile: fixed, arrival: {ramp: 30s}, messages: {every: 1m}}
faults: [{at: 5m, kind: server_restart}]
gates:
  - {name: nothing lost, metric: lost_messages, stat: count, op: "==", value: 0}
  - {name: restarted, metric: 'closes{code="1012"}', stat: count, phase: {during: server_restart}, op: ">=", value: 1}
""")
    out = tmp_path / "out"
    done = stormbench("run", str(scenario), "--engine", "simulate", "--out", str(out), "--seed", "5")
    verdicts = json.loads((out / "gates.json").read_text())
    expected = 1 if any(v["verdict"] == "fail" for v in verdicts) else 0
    assert done.returncode == expected, done.stderr
    # not a terminal: the model's progress as plain lines, and where the record is at the end
    assert "simulating tiny ..." in done.stdout and "simulating tiny: done in" in done.stdout
    assert f"run record: {out}" in done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith(f"exit {done.returncode}: ")
    for name in ("scenario.json", "meta.json", "connections.csv", "timeseries.csv", "summary.json", "junit.xml"):
        assert (out / name).exists(), name
    assert json.loads((out / "scenario.json").read_text())["seed"] == 5
    summary = json.loads((out / "summary.json").read_text())
    assert summary["engine"] == "simulate" and summary["scenario"] == "tiny" and summary["connections"] > 0
