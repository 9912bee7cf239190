"""Gates judged by a real Prometheus on loopback, scraping the server's real metric registry.

The exporter is the server's own `ServerMetrics` registry served by prometheus_client, so
names, types, labels and buckets are exactly what `stormbench serve` exports; its values
are set by the test, so every verdict is known in advance.
"""
import json
import time

import pytest
from prometheus_client import start_http_server

from commands.cli import main as stormbench
from formats.gates import load_gates, parse_gates
from formats.gates.verdict import FAIL, PASS, UNKNOWN
from harness.prom import PrometheusAPI, PrometheusUnavailable, evaluate
from harness.prom.dashboard import RATE_WINDOW, dashboard
from harness.prom.server import PrometheusConfig, PrometheusServer, find_binary, free_port
from system.server.metrics import METRICS, ServerMetrics

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.skipif(find_binary() is None, reason="prometheus not installed (Debian package `prometheus`)"),
]

WINDOW = 600  # seconds: wide enough to hold the zero samples scraped before the values were set
GATES = [
    {"name": "p50 lifetime", "metric": "connection_duration", "stat": "p50", "op": ">=", "value": "30s"},
    {"name": "p95 lifetime", "metric": "connection_duration", "stat": "p95", "op": ">=", "value": "2h"},
    {"name": "p50 at bucket resolution", "metric": "connection_duration", "stat": "p50", "op": ">=",
     "value": "90s"},
    {"name": "no 4401 closes", "metric": 'closes{code="4401"}', "stat": "count", "op": "==", "value": 0},
    {"name": "no 1008 closes", "metric": 'closes{code="1008"}', "stat": "count", "op": "==", "value": 0},
    {"name": "agent p95", "metric": "agent_execution", "stat": "p95", "op": "<", "value": "100ms"},
    {"name": "nothing lost", "metric": "lost_messages", "stat": "count", "op": "==", "value": 0},
    {"name": "fleet online", "metric": "active_connections", "stat": "value", "op": ">=", "value": 50},
    {"name": "memory under 64 GB", "metric": "memory", "stat": "max", "op": "<", "value": 64e9},
    {"name": "memory under 1 MB", "metric": "memory", "stat": "max", "op": "<", "value": 1e6},
]
EXPECTED = {"p50 lifetime": PASS, "p95 lifetime": FAIL, "p50 at bucket resolution": UNKNOWN,
            "no 4401 closes": FAIL, "no 1008 closes": PASS, "agent p95": UNKNOWN, "nothing lost": UNKNOWN,
            "fleet online": PASS, "memory under 64 GB": PASS, "memory under 1 MB": FAIL}


def _wait(api: PrometheusAPI, expr: str, want: float, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples = api.query(expr, time.time())
        if samples and samples[0].value == want:
            return
        time.sleep(0.1)
    pytest.fail(f"Prometheus did not see {expr} == {want} within {timeout}s")


@pytest.fixture(scope="module")
def prom():
    """A scraped exporter holding: 20 closed connections (19 of 100 s, 1 of 1000 s), five 4401 closes,
    50 active connections, an agent histogram with no observations, and a series for every label set."""
    metrics = ServerMetrics()
    for spec in METRICS:  # every labelled series exists at 0 before the first scrape, as on a live server
        if spec.labels:
            fixed = {"code": "4401", "status": "403", "agent": "real_estate"}
            metrics[spec.name].labels(**{label: fixed.get(label, "x") for label in spec.labels})
    httpd, thread = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    server = PrometheusServer(PrometheusConfig([f"http://127.0.0.1:{httpd.server_port}/metrics"],
                                               scrape_interval=0.5))
    try:
        server.start()
        server.wait_for_targets()
        api = PrometheusAPI(server.url)
        _wait(api, 'ws_closes_total{code="4401"}', 0)
        for lifetime in [100.0] * 19 + [1000.0]:
            metrics["ws_connection_duration_seconds"].observe(lifetime)
        metrics["ws_closes_total"].labels(code="4401").inc(5)
        metrics["ws_connections_active"].set(50)
        for spec in METRICS:
            if spec.type == "counter" and not spec.labels:
                metrics[spec.name].inc(3)
        _wait(api, "sum(ws_connection_duration_seconds_count)", 20)
        _wait(api, 'sum(ws_closes_total{code="4401"})', 5)
        # a max over a subquery needs a sample before its first whole-second step
        _wait(api, "count(max_over_time(process_resident_memory_bytes[10m:1s]))", 1)
        api.close()
        yield server
    finally:
        server.stop()
        httpd.shutdown()
        httpd.server_close()


def test_verdicts_pass_fail_and_unknown_against_a_live_prometheus(prom):
    verdicts = {v.name: v for v in evaluate(parse_gates(GATES), prom.url, window=WINDOW)}
    assert {name: v.verdict for name, v in verdicts.items()} == EXPECTED
    p95 = verdicts["p95 lifetime"]
    assert 60 < p95.observed <= 120 and p95.provenance["bucket"] == [60, 120]
    assert "closed connections only" in p95.provenance["caveat"]
    assert "inside the bucket" in verdicts["p50 at bucket resolution"].provenance["reason"]
    assert verdicts["no 4401 closes"].observed >= 5  # increase() extrapolates to the window's edges
    assert "counted as 0" in verdicts["no 1008 closes"].provenance["zero"]
    assert "NaN" in verdicts["agent p95"].provenance["reason"]
    assert "measured by the clients" in verdicts["nothing lost"].provenance["reason"]
    assert verdicts["fleet online"].observed == 50
    assert verdicts["p95 lifetime"].provenance["promql"].startswith("histogram_quantile(0.95")


def test_a_compressed_run_is_judged_in_scenario_time(prom):
    """At time scale 10 the server's 100 s lifetimes are 1000 s of scenario time; buckets scale with them."""
    gates = parse_gates([GATES[1], {"name": "p50 lifetime", "metric": "connection_duration", "stat": "p50",
                                    "op": ">=", "value": "10m"}])
    wall = {v.name: v for v in evaluate(gates, prom.url, window=WINDOW)}
    scenario = {v.name: v for v in evaluate(gates, prom.url, window=WINDOW, time_scale=10)}
    assert scenario["p95 lifetime"].observed == pytest.approx(10 * wall["p95 lifetime"].observed)
    assert scenario["p95 lifetime"].provenance["bucket"] == [600, 1200]
    assert wall["p50 lifetime"].verdict == FAIL and scenario["p50 lifetime"].verdict == PASS


def test_cli_writes_verdicts_and_exits_like_a_run(prom, tmp_path, capsys):
    gate_file = tmp_path / "gates.yaml"
    gate_file.write_text(json.dumps({"gates": GATES}))  # JSON is YAML
    code = stormbench(["gates", "--prometheus", prom.url, "--gates", str(gate_file), "--window", f"{WINDOW}s",
                       "--out", str(tmp_path / "out")])
    assert code == 1  # a strict gate failed
    written = {v["name"]: v["verdict"] for v in json.loads((tmp_path / "out" / "gates.json").read_text())}
    assert written == EXPECTED
    assert (tmp_path / "out" / "junit.xml").is_file()
    assert "p95 lifetime" in capsys.readouterr().out


def test_every_dashboard_query_returns_series(prom):
    api = PrometheusAPI(prom.url)
    try:
        for panel in dashboard()["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace(RATE_WINDOW, "30s")
                assert api.query(expr, time.time()), f"{panel['title']}: {expr} returned nothing"
        staging = dashboard(gates=load_gates("scenarios/gates/staging.yaml"), window_s=WINDOW)["panels"]
        for panel in staging:  # the gate panels: Prometheus parses every query (a 24 h offset may hold nothing)
            for target in panel.get("targets", []):
                api.query(target["expr"].replace(RATE_WINDOW, "30s"), time.time())
    finally:
        api.close()


def test_a_prometheus_that_is_down_is_a_clear_error_and_exit_2(tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PrometheusUnavailable, match="cannot reach Prometheus at .*connection refused"):
        evaluate(parse_gates(GATES), url, window=WINDOW)
    gate_file = tmp_path / "gates.yaml"
    gate_file.write_text(json.dumps(GATES))
    assert stormbench(["gates", "--prometheus", url, "--gates", str(gate_file)]) == 2
    assert f"cannot reach Prometheus at {url}" in capsys.readouterr().err
    assert not (tmp_path / "gates.json").exists()
