"""CI-grade outputs as a pipeline meets them: `--version`, one JSON document on stdout with
`--json` (human text on stderr), `--quiet` that still names a failing gate, the main job's
exit code."""
from __future__ import annotations

import json
from importlib.metadata import version

from tests.harness.test_commands import run_dir, stormbench  # noqa: F401  (run_dir is a fixture)


def test_version_names_the_installed_package():
    done = stormbench("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"stormbench {version('stormbench')}"


def test_gates_json_is_one_document_on_stdout(run_dir):  # noqa: F811
    done = stormbench("gates", str(run_dir), "--json")
    assert done.returncode == 1
    doc = json.loads(done.stdout)  # the whole of stdout: nothing else was printed there
    assert doc["command"] == "gates" and doc["exit_code"] == 1 and doc["outcome"] == "fail"
    assert {v["name"]: v["verdict"] for v in doc["verdicts"]} == {"few 4401": "fail", "advisory attempts": "fail"}
    assert doc["paths"]["junit"] == str(run_dir / "junit.xml") and doc["summary"]["connections"] == 2
    assert "few 4401" in done.stderr and "exit 1: a strict gate failed" in done.stderr  # the table, for people


def test_a_usage_error_is_a_json_document_too(tmp_path):
    done = stormbench("gates", str(tmp_path / "nope"), "--json")
    assert done.returncode == 2
    doc = json.loads(done.stdout)
    assert doc["exit_code"] == 2 and "does not exist" in doc["error"] and "does not exist" in done.stderr


def test_quiet_prints_the_failing_gate_and_nothing_on_success(run_dir, tmp_path):  # noqa: F811
    failing = stormbench("gates", str(run_dir), "--quiet")
    assert failing.returncode == 1
    assert "few 4401" in failing.stdout and "FAIL" in failing.stdout and "exit 1" in failing.stdout
    passing = tmp_path / "pass.yaml"
    passing.write_text("- {name: one 4401, metric: 'closes{code=\"4401\"}', stat: count, op: '==', value: 1}\n")
    done = stormbench("gates", str(run_dir), "--gates", str(passing), "--quiet")
    assert done.returncode == 0 and done.stdout == ""


def test_run_json_carries_verdicts_summary_and_paths(tmp_path):
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text("""
name: tiny
seed: 3
duration: 5m
fleet: {clients: 10, profile: fixed, arrival: {ramp: 30s}, messages: {every: 1m}}
faults: []
gates:
  - {name: nothing lost, metric: lost_messages, stat: count, op: "==", value: 0}
""")
    out = tmp_path / "out"
    done = stormbench("run", str(scenario), "--engine", "simulate", "--out", str(out), "--json")
    doc = json.loads(done.stdout)
    assert doc["exit_code"] == done.returncode == doc["gates_exit_code"]
    assert doc["scenario"] == "tiny" and doc["engine"] == "simulate"
    assert doc["verdicts"][0]["name"] == "nothing lost"
    assert doc["summary"] == json.loads((out / "summary.json").read_text())
    assert doc["paths"]["gates_json"] == str(out / "gates.json")
    assert "run record:" in done.stderr and "simulating tiny" in done.stderr


def test_main_job_exit_code_is_documented_in_its_help():
    done = stormbench("main-job", "--help")
    assert "--exit-zero" in done.stdout and "fixed run's gate verdict" in " ".join(done.stdout.split())


def test_validate_and_main_job_take_json_and_keep_stdout_a_document(tmp_path):
    done = stormbench("validate", "token-expiry-403", "--emulated", str(tmp_path / "missing"), "--out",
                      str(tmp_path / "v"), "--json")
    assert done.returncode == 2 and json.loads(done.stdout)["command"] == "validate"
    done = stormbench("main-job", "--scenario", str(tmp_path / "nope.yaml"), "--json")
    doc = json.loads(done.stdout)
    assert done.returncode == doc["exit_code"] == 2 and "nope.yaml" in doc["error"]


def test_junit_names_scenario_profile_engine_with_time_and_human_numbers(tmp_path):
    """Two runs of one scenario (legacy, fixed) must not collide on a CI server; numbers read as counts."""
    import xml.etree.ElementTree as ET

    from formats.gates import evaluate, load_gates, write_verdicts
    from formats.record import RecordWriter, finalize
    from tests.harness.synth import scenario_doc, session

    gates = load_gates([{"name": "no 403s", "metric": "http_403", "stat": "count", "op": "==", "value": 0},
                        {"name": "p50 lifetime", "metric": "connection_duration", "stat": "p50", "op": ">=",
                         "value": "2h"}])
    suites = {}
    for profile in ("legacy", "fixed"):
        out = tmp_path / profile
        spans = [(float(i), None, 403, None) for i in range(1, 1201)] + [(1300.0, 1301.0, None, None)]
        with RecordWriter(out) as w:
            w.scenario({**scenario_doc(duration=2000, clients=1), "fleet": {"clients": 1, "profile": profile}})
            w.meta({"engine": "simulate", "seed": 1, "time_scale": 1.0, "started_at": "2026-12-06T20:00:00+00:00",
                    "wall_time_s": 12.5})
            w.events(session("c0", "k0", spans))
        finalize(out)
        write_verdicts(evaluate(gates, out), out, "synthetic")
        suites[profile] = ET.parse(out / "junit.xml").getroot().find("testsuite")
    legacy, fixed = suites["legacy"], suites["fixed"]
    assert legacy.get("name") == "synthetic (profile legacy, engine simulate)" != fixed.get("name")
    assert legacy.find("testcase").get("classname") == "stormbench.synthetic.legacy.simulate"
    assert legacy.get("timestamp") == "2026-12-06T20:00:00+00:00" and legacy.get("time") == "12.500"
    failure = legacy.find("testcase").find("failure")
    assert failure.get("message") == "1,200 HTTP 403s; gate == 0"
    assert "e+" not in ET.tostring(legacy, encoding="unicode")
    assert "busiest seconds:" in failure.text and not failure.text.lstrip().startswith("{")  # sentences, not JSON


def test_main_job_gate_table_prints_numbers_with_units():
    """The `make run` verdict table says `9h03m`, `0.96ms`, `1,140`, as JUnit does; never `3.263e+04`."""
    from rich.console import Console

    from commands.main_job import verdicts_table
    from formats.gates.verdict import FAIL, PASS, Verdict

    def verdict(name, verdict, metric, stat, observed):
        return Verdict(name, verdict, True, observed, ">=", 0, {"metric": metric, "stat": stat})

    results = {"legacy (virtual clock)": [verdict("p95 lifetime", PASS, "connection_duration", "p95", 32630.0),
                                          verdict("agent p95", PASS, "agent_execution", "p95", 0.0009644),
                                          verdict("403s", FAIL, "http_403", "count", 1140.0)],
               "fixed (virtual clock)": [verdict("p95 lifetime", PASS, "connection_duration", "p95", 7500.0),
                                         verdict("agent p95", PASS, "agent_execution", "p95", 0.042),
                                         verdict("403s", PASS, "http_403", "count", 0.0)]}
    console = Console(width=160, record=True, force_terminal=False)
    console.print(verdicts_table(results))
    text = console.export_text()
    for cell in ("pass 9h03m", "pass 0.96ms", "fail 1,140", "pass 2h05m", "pass 42ms", "pass 0"):
        assert cell in text, (cell, text)
    assert "e+" not in text and "e-" not in text and "0.0009644" not in text
