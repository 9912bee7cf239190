"""The same emulated run judged twice — from its run record and through a real Prometheus
that scraped the real server — must agree, within histogram-bucket resolution.

Stated resolution: a quantile from Prometheus is known only to its bucket of
`ws_connection_duration_seconds` (bounds 1, 5, 15, 30, 60 s, ...); the run record's
Kaplan–Meier estimate must fall inside that bucket. The histogram holds closed
connections only, so the run is built with frequent drops to keep censoring small.
"""
import time
from pathlib import Path

import pytest

from harness.emulate.engine import emulate, server_options
from harness.emulate.timescale import TimeScale
from harness.emulate.topology import ServerControl
from harness.gates import load_gates
from harness.gates.evaluate import evaluate as evaluate_record
from harness.gates.verdict import read_gates_json
from harness.prom.in_run import PROMETHEUS_GATES, RunPrometheus
from harness.prom.server import find_binary
from harness.record.finalize import finalize
from harness.record.run import RunRecord
from harness.scenario import load

pytestmark = [
    pytest.mark.slow,
    pytest.mark.prometheus,
    pytest.mark.skipif(find_binary() is None, reason="prometheus not installed (Debian package `prometheus`)"),
]

SCENARIO = """
name: prom-agreement
description: a short fixed-profile run with frequent drops, scraped by Prometheus
seed: 7
duration: 40s
time_scale: 1
system: {behaviour: fixed, token_ttl: 15m, heartbeat: {interval: 5s, timeout: 5s}}
fleet:
  clients: 20
  profile: fixed
  arrival: {ramp: 2s}
  messages: {every: 10s}
  network: {drops: {every: 12s}}
faults: []
gates:
  - {name: p50 lifetime, metric: connection_duration, stat: p50, op: ">=", value: 2s}
  - {name: p95 lifetime, metric: connection_duration, stat: p95, op: ">=", value: 2h}
  - {name: no 4401, metric: 'closes{code="4401"}', stat: count, op: "==", value: 0}
"""


def test_prometheus_and_run_record_verdicts_agree(tmp_path: Path, monkeypatch):
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    scenario = load(tmp_path / "scenario.yaml", {})
    options, _ = server_options(scenario, TimeScale(1), tmp_path / "server.db")
    server = ServerControl(options, tmp_path / "logs")
    endpoints = server.start()
    run_dir = tmp_path / "run"
    try:
        with RunPrometheus([endpoints.http_url + "/metrics"], scrape_interval=0.5) as prom:
            monkeypatch.setenv("STORMBENCH_ADMIN_KEY", options.admin_key)
            started = time.time()
            emulate(scenario, run_dir, target=f"{endpoints.ws_url},{endpoints.http_url}", progress=lambda _: None)
            ended = time.time()
            finalize(run_dir)
            gates = load_gates(scenario.gates)
            from_record = {v.name: v for v in evaluate_record(gates, RunRecord(run_dir))}
            from_prom = {v.name: v for v in prom.judge(gates, run_dir, started, ended)}
    finally:
        server.stop()

    assert {n: v.verdict for n, v in from_prom.items()} == {n: v.verdict for n, v in from_record.items()}
    for name in ("p50 lifetime", "p95 lifetime"):
        lo, hi = from_prom[name].provenance["bucket"]
        assert lo <= from_record[name].observed <= hi, (name, from_record[name].observed, [lo, hi])
    assert from_prom["no 4401"].observed == from_record["no 4401"].observed == 0
    written = {v.name: v.verdict for v in read_gates_json(run_dir / PROMETHEUS_GATES)}
    assert written == {n: v.verdict for n, v in from_prom.items()}
