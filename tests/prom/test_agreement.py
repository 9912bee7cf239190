"""`stormbench run SCENARIO --prometheus`: one emulated run judged twice, from its run record
and through a real Prometheus that scraped the real server, and the two must agree.

Stated resolution: a quantile from Prometheus is known only to its histogram bucket
(`ws_connection_duration_seconds`: bounds 1, 5, 15, 30, 60 s, ...; `agent_execution_seconds`:
1, 2.5, 5, 10, 25, 50, 100 ms, ...); the run record's estimate (Kaplan–Meier for lifetimes, the
scraped histogram for the agent) must fall inside that bucket, and the verdicts must be the
same. The lifetime histogram holds closed connections only, so the runs are built with
frequent drops to keep censoring small. Not comparable by design: counts the server makes
while it shuts down (the 1012 closes of a graceful restart) die with the process before
Prometheus can scrape them.
"""
import json
import math
import time
from pathlib import Path

import pytest

from commands.cli import main as stormbench
from formats.gates.spec import load_gates
from formats.gates.verdict import FAIL, PASS, UNKNOWN, read_gates_json
from harness.prom.in_run import PROMETHEUS_GATES
from harness.prom.server import find_binary

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.skipif(find_binary() is None, reason="prometheus not installed (Debian package `prometheus`)"),
]

STAGING_GATES = Path(__file__).resolve().parents[2] / "scenarios" / "gates" / "staging.yaml"

def agreement(duration: str, messages: str, drops: str) -> str:
    """A short fixed-profile run with frequent drops, scraped by Prometheus."""
    return f"""
name: prom-agreement
description: a short fixed-profile run with frequent drops, scraped by Prometheus
seed: 7
duration: {duration}
time_scale: 1
system: {{behaviour: fixed, token_ttl: 15m, heartbeat: {{interval: 5s, timeout: 5s}}}}
fleet:
  clients: 20
  profile: fixed
  arrival: {{ramp: 2s}}
  messages: {{every: {messages}}}
  network: {{drops: {{every: {drops}}}}}
faults: []
gates:
  - {{name: p50 lifetime, metric: connection_duration, stat: p50, op: ">=", value: 2s}}
  - {{name: p95 lifetime, metric: connection_duration, stat: p95, op: ">=", value: 2h}}
  - {{name: no 4401, metric: 'closes{{code="4401"}}', stat: count, op: "==", value: 0}}
"""


RESTART = """
name: prom-restart
description: a very short run scraped by Prometheus, with a graceful server restart on the same port
seed: 11
duration: 10s
time_scale: 1
system: {behaviour: fixed, token_ttl: 15m, heartbeat: {interval: 5s, timeout: 5s}}
fleet:
  clients: 6
  profile: fixed
  arrival: {ramp: 1s}
  messages: {every: 3s}
faults:
  - {at: 4s, for: 1s, kind: server_restart, mode: graceful}
gates:
  - {name: no 4401, metric: 'closes{code="4401"}', stat: count, op: "==", value: 0}
  - {name: p50 lifetime, metric: connection_duration, stat: p50, op: ">=", value: 1s}
  - {name: nothing lost, metric: lost_messages, stat: count, op: "==", value: 0}
  - {name: reconnected to the new server, metric: connections_opened, stat: count, op: ">", value: 6,
     strict: false, promql: "sum(increase(ws_connections_opened_total[$window]))"}
"""


def run_with_prometheus(tmp_path: Path, text: str, exit_code: int, *args: str) -> Path:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(text)
    out = tmp_path / "run"
    assert stormbench(["run", str(scenario), "--prometheus", "--out", str(out), *args]) == exit_code
    return out


def verdicts(path: Path) -> dict:
    return {v.name: v for v in read_gates_json(path)}


def test_run_with_prometheus_across_a_server_restart(tmp_path, capsys):
    out = run_with_prometheus(tmp_path, RESTART, 0)  # every strict gate passes on the run record
    meta = json.loads((out / "meta.json").read_text())
    prom = meta["prometheus"]
    assert prom["window_start_unix"] == meta["origin_unix"]
    assert prom["window_end_unix"] >= meta["origin_unix"] + 10 and prom["warnings"] == []
    record, scraped = verdicts(out / "gates.json"), verdicts(out / PROMETHEUS_GATES)
    assert set(scraped) == set(record)
    assert scraped["no 4401"].verdict == record["no 4401"].verdict == PASS
    assert scraped["p50 lifetime"].verdict == record["p50 lifetime"].verdict == PASS
    lo, hi = scraped["p50 lifetime"].provenance["bucket"]
    assert lo <= record["p50 lifetime"].observed <= hi
    assert scraped["nothing lost"].verdict == UNKNOWN  # the clients' ledger, not a server metric
    # the restarted server (same port) was scraped: its reconnections add to the first process's opens
    assert scraped["reconnected to the new server"].verdict == PASS, scraped["reconnected to the new server"]
    assert "via Prometheus" in capsys.readouterr().out


def test_staging_gates_with_promql_agree_with_the_run_record(tmp_path: Path):
    """Every staging gate that states its `promql` gives one verdict through Prometheus and through
    the run record of the same 20-second run, within histogram-bucket resolution: the record's
    value (Kaplan–Meier lifetime quantile; the agent's p95 from the scraped histogram) lies in the
    bucket Prometheus read its quantile from (lifetimes: (1, 5], (5, 15] s, ...; agent: (0, 1],
    (1, 2.5] ms, ...), and no gate is undecided because its threshold falls inside that bucket."""
    out = run_with_prometheus(tmp_path, agreement("20s", "2s", "4s"), 1,
                              "--gates", str(STAGING_GATES))  # lifetimes of seconds: p95 >= 2h fails
    record, scraped = verdicts(out / "gates.json"), verdicts(out / PROMETHEUS_GATES)
    with_promql = [g.name for g in load_gates(STAGING_GATES) if g.promql]
    assert with_promql == ["p95 connection duration", "p50 connection duration", "agent p95"]
    for name in with_promql:
        assert scraped[name].verdict == record[name].verdict != UNKNOWN, (name, record[name], scraped[name])
        lo, hi = scraped[name].provenance["bucket"]
        assert lo <= record[name].observed <= (math.inf if hi == "+Inf" else hi), (name, record[name], [lo, hi])
    assert record["p95 connection duration"].verdict == FAIL and record["agent p95"].verdict == PASS


@pytest.mark.slow
def test_prometheus_and_run_record_verdicts_agree(tmp_path: Path):
    out = run_with_prometheus(tmp_path, agreement("40s", "10s", "12s"), 1)  # "p95 lifetime >= 2h" fails, in both
    record, scraped = verdicts(out / "gates.json"), verdicts(out / PROMETHEUS_GATES)
    assert {n: v.verdict for n, v in scraped.items()} == {n: v.verdict for n, v in record.items()}
    for name in ("p50 lifetime", "p95 lifetime"):
        lo, hi = scraped[name].provenance["bucket"]
        assert lo <= record[name].observed <= hi, (name, record[name].observed, [lo, hi])
    assert scraped["no 4401"].observed == record["no 4401"].observed == 0


def test_prometheus_is_for_the_emulation_only(tmp_path, capsys):
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(RESTART)
    assert stormbench(["run", str(scenario), "--prometheus", "--engine", "simulate",
                       "--out", str(tmp_path / "run")]) == 2
    assert "--prometheus applies to --engine emulate only" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_prometheus_missing_from_path_is_exit_2_before_anything_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(RESTART)
    assert stormbench(["run", str(scenario), "--prometheus", "--out", str(tmp_path / "run")]) == 2
    assert "`prometheus` binary is not on PATH" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_main_job_with_prometheus_judges_both_profiles_twice(tmp_path, capsys):
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(RESTART)
    out = tmp_path / "job"
    assert stormbench(["main-job", "--scenario", str(scenario), "--prometheus", "--no-report",
                       "--out", str(out)]) == 0
    for profile in ("legacy", "fixed"):
        record, scraped = verdicts(out / profile / "gates.json"), verdicts(out / profile / PROMETHEUS_GATES)
        assert set(scraped) == set(record)
        assert scraped["nothing lost"].verdict == UNKNOWN  # the clients' ledger is not a server metric
        meta = json.loads((out / profile / "meta.json").read_text())
        assert meta["prometheus"]["window_start_unix"] == meta["origin_unix"]
    printed = capsys.readouterr().out
    assert "legacy (Prometheus)" in printed and "fixed (Prometheus)" in printed


def test_main_job_prometheus_missing_from_path_is_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert stormbench(["main-job", "--clock", "wall", "--prometheus", "--out", str(tmp_path / "job")]) == 2
    assert "`prometheus` binary is not on PATH" in capsys.readouterr().err
    assert not (tmp_path / "job").exists()


def test_keep_prometheus_keeps_the_tsdb_and_the_printed_commands_judge_the_run_again(tmp_path, capsys):
    """`run --prometheus --keep-prometheus DIR`: the TSDB outlives the run, and the Prometheus the run
    prints how to start, judged by the `gates --prometheus` command it prints, gives the same verdicts."""
    import shlex
    import subprocess
    import urllib.request

    from harness.prom.server import free_port

    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(RESTART)
    keep = tmp_path / "kept"
    assert stormbench(["run", str(scenario), "--prometheus", "--keep-prometheus", str(keep),
                       "--out", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert f"Prometheus TSDB kept in {keep / 'tsdb'}" in printed and (keep / "tsdb").is_dir()
    start, judge = [ln.strip() for ln in printed.splitlines() if ln.strip().startswith(("prometheus ",
                                                                                         "stormbench gates "))]
    port = free_port()
    proc = subprocess.Popen([a.replace("127.0.0.1:9090", f"127.0.0.1:{port}") for a in shlex.split(start)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "the printed prometheus command did not start"
                time.sleep(0.1)
        args = [a.replace("127.0.0.1:9090", f"127.0.0.1:{port}") for a in shlex.split(judge)[1:]]
        stormbench([*args, "--out", str(tmp_path / "again")])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    again, during = verdicts(tmp_path / "again" / "gates.json"), verdicts(tmp_path / "run" / PROMETHEUS_GATES)
    assert {n: v.verdict for n, v in again.items()} == {n: v.verdict for n, v in during.items()}
    assert again["reconnected to the new server"].verdict == PASS  # the kept data, not an empty TSDB


def test_keep_prometheus_needs_prometheus(tmp_path, capsys):
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(RESTART)
    assert stormbench(["run", str(scenario), "--keep-prometheus", str(tmp_path / "k"),
                       "--out", str(tmp_path / "run")]) == 2
    assert "--keep-prometheus: applies with --prometheus only" in capsys.readouterr().err
