"""The gate evaluator against hand-computed cases: windows, phases, baselines, censoring, scrapes."""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import pytest

from system.errors import UsageError
from formats.gates.report import Suite
from formats.gates import (
    FAIL, PASS, UNKNOWN, Verdict, evaluate, exit_code, histogram_quantile, junit_xml, load_gates, parse_gate,
)
from formats.record import RunRecord, finalize
from tests.harness.synth import session, write_record

CLOSES_4401 = [10, 100, 310, 320, 330, 350]
FAULTS = [{"at": 300, "for": 60, "kind": "partition"}, {"at": 450, "kind": "server_restart"}]


def judge(rec, **spec):
    spec = {"name": "g", **spec}
    return evaluate([parse_gate(spec)], rec)[0]


@pytest.fixture(scope="module")
def closes_run(tmp_path_factory):
    """One client per 4401 close: connected from 1 s, closed at the given time, back 1 s later for good."""
    events = []
    for i, t in enumerate(CLOSES_4401):
        events += session(f"c{i}", f"k{i}", [(0, 1, t, 4401), (t + 1, t + 1, None, None)])
    out = write_record(tmp_path_factory.mktemp("gates") / "closes", events, duration=600, clients=6, faults=FAULTS)
    finalize(out)
    return RunRecord(out)


def test_count_rate_and_tag_selector(closes_run):
    v = judge(closes_run, metric='closes{code="4401"}', stat="count", op="==", value=6)
    assert (v.verdict, v.observed) == (PASS, 6.0)
    v = judge(closes_run, metric='closes{code="4401"}', stat="rate", op="<", value=0.01)
    assert v.observed == pytest.approx(6 / 600) and v.verdict == FAIL
    v = judge(closes_run, metric='closes{code="1012"}', stat="count", op="==", value=0)
    assert (v.verdict, v.observed) == (PASS, 0.0)


def test_rolling_window_reports_the_failing_window(closes_run):
    v = judge(closes_run, metric='closes{code=4401}', stat="max_window_count", window="60s", op="<=", value=3)
    assert (v.verdict, v.observed) == (FAIL, 4.0)
    w = v.provenance["where"]["window"]
    assert w["count"] == 4 and w["start_s"] <= 310 and w["end_s"] > 350 and w["end_s"] - w["start_s"] == 60


def test_phases_follow_the_fault_timeline(closes_run):
    def count(phase):
        return judge(closes_run, metric='closes{code="4401"}', stat="count", op=">=", value=0, phase=phase).observed
    assert count({"before": "partition"}) == 2
    assert count({"during": "partition"}) == 4
    assert count({"after": "partition", "within": "90s"}) == 0
    assert count({"before": "*"}) == 2
    v = judge(closes_run, metric="attempts", stat="count", op=">=", value=0, phase={"during": "ws_close"})
    assert v.verdict == UNKNOWN and "no 'ws_close' fault" in v.provenance["reason"]


def test_baseline_relative_threshold(closes_run):
    # baseline: 2 closes in the 300 s before the first fault -> 0.4 per 60 s window, floored at 1 -> 3x = 3
    v = judge(closes_run, metric='closes{code="4401"}', stat="max_window_count", window="1m", op="<=",
              value="3x baseline")
    assert (v.threshold, v.verdict, v.observed) == (3.0, FAIL, 4.0)
    assert v.provenance["baseline_events_per_window"] == pytest.approx(0.4)
    # 10 minutes: 2 / 300 s * 600 s = 4 per window -> 3x = 12
    v = judge(closes_run, metric='closes{code="4401"}', stat="max_window_count", window="10m", op="<=",
              value="3x baseline")
    assert (v.threshold, v.verdict, v.observed) == (pytest.approx(4.0 * 3), PASS, 6.0)
    # another baseline phase: before the restart (450 s) there were all six closes
    v = judge(closes_run, metric='closes{code="4401"}', stat="count", op="<=", value="1x baseline",
              baseline={"before": "server_restart"})
    assert (v.threshold, v.verdict) == (6.0, PASS)


def test_phases_follow_measured_fault_times(tmp_path):
    """A restart scheduled at 100 s that took 50 s to apply: 'after' starts when the server was back."""
    events = []
    for i in range(4):
        back = 160 if i < 3 else 175
        events += session(f"c{i}", f"k{i}", [(0, 1, 101, 1012), (back, back, None, None)])
    events.append({"t": 100.0, "client": "harness", "kind": "fault_start", "fault": "server_restart", "index": 0,
                   "applied_in_s": 50.0})
    out = write_record(tmp_path / "r", events, duration=300, clients=4,
                       faults=[{"at": 100, "kind": "server_restart"}])
    summary = finalize(out)
    assert summary["fault_windows"][0]["start_s"] == 100.0 and summary["fault_windows"][0]["applied_s"] == 50.0
    rec = RunRecord(out)
    assert (rec.fault_windows[0]["start_s"], rec.fault_windows[0]["end_s"]) == (100.0, 150.0)
    during = judge(rec, metric='closes{code="1012"}', stat="count", op="==", value=4,
                   phase={"during": "server_restart"})
    assert during.verdict == PASS and during.provenance["intervals"] == [[100.0, 150.0]]
    # 20 s after the server was back (150 s): three of four reconnected; by 30 s all four
    v = judge(rec, metric="active_connections", stat="min_fraction", op=">=", value=0.99,
              phase={"after": "server_restart", "within": "20s"})
    assert (v.verdict, v.observed) == (FAIL, pytest.approx(0.75))
    v = judge(rec, metric="active_connections", stat="min_fraction", op=">=", value=0.99,
              phase={"after": "server_restart", "within": "30s"})
    assert (v.verdict, v.observed) == (PASS, pytest.approx(1.0))


def test_lifetime_quantiles_decide_from_censored_evidence(closes_run):
    # ended: 9 99 309 319 329 349; censored: 249 269 279 289 499 589. KM by hand:
    # 9 -> 11/12, 99 -> 10/12, 309 -> x5/6 = .694, 319 -> x4/5 = .556, 329 -> x3/4 = .417, 349 -> x2/3 = .278
    p50 = judge(closes_run, metric="connection_duration", stat="p50", op=">=", value="5m")
    assert (p50.verdict, p50.observed) == (PASS, 329.0)
    p10 = judge(closes_run, metric="connection_duration", stat="p(10)", op=">=", value="2h")
    assert (p10.verdict, p10.observed) == (FAIL, 99.0)
    assert p10.provenance["where"]["connections_below_threshold"] == 12
    # p75 needs S <= .25, which the run never reached: the true p75 exceeds the longest observation (589 s)
    p75 = judge(closes_run, metric="connection_duration", stat="p75", op=">=", value="100s")
    assert p75.verdict == PASS and p75.observed is None and p75.provenance["lower_bound"] == 589.0
    too_long = judge(closes_run, metric="connection_duration", stat="p75", op=">=", value="2h")
    assert too_long.verdict == UNKNOWN and "not reached" in too_long.provenance["reason"]
    upper = judge(closes_run, metric="connection_duration", stat="p75", op="<", value="60s")
    assert upper.verdict == FAIL


@pytest.fixture(scope="module")
def restart_run(tmp_path_factory):
    """Ten clients, all closed with 1012 at 450 s; nine back at 455 s, the tenth at 500 s."""
    events = []
    for i in range(10):
        back = 455 if i < 9 else 500
        events += session(f"c{i}", f"k{i}", [(0, 1, 450, 1012), (back, back, None, None)])
    out = write_record(tmp_path_factory.mktemp("gates") / "restart", events, duration=600, clients=10, faults=FAULTS)
    finalize(out)
    return RunRecord(out)


def test_min_fraction_after_a_fault(restart_run):
    v = judge(restart_run, metric="active_connections", stat="min_fraction", op=">=", value=0.99,
              phase={"after": "server_restart", "within": "30s"})
    assert (v.verdict, v.observed) == (FAIL, pytest.approx(0.9))
    assert v.provenance["where"]["worst"]["fleet_expected"] == 10.0
    v = judge(restart_run, metric="active_connections", stat="min_fraction", op=">=", value=0.99,
              phase={"after": "server_restart", "within": "60s"})
    assert (v.verdict, v.observed) == (PASS, pytest.approx(1.0))


def test_gauge_statistics(restart_run):
    assert judge(restart_run, metric="active_connections", stat="min", op=">=", value=0,
                 phase={"during": "server_restart"}).observed == 0.0
    assert judge(restart_run, metric="active_connections", stat="max", op=">=", value=0).observed == 10.0


def test_storms_and_per_day_rates(restart_run):
    # the restart sends all ten clients back within seconds: one storm (floor 5 reconnects per bin)
    v = judge(restart_run, metric="storms", stat="count", op="==", value=1)
    assert v.verdict == PASS and v.provenance["storms"][0]["start_s"] <= 455
    v = judge(restart_run, metric="storms", stat="rate", op="<=", value="2/d")
    assert v.observed == pytest.approx(1 / 600) and v.threshold == pytest.approx(2 / 86400) and v.verdict == FAIL
    assert judge(restart_run, metric="storms", stat="count", op="==", value=0,
                 phase={"before": "server_restart"}).verdict == PASS


def test_a_storm_belongs_to_the_phase_of_its_busiest_second(restart_run):
    # the storm's minute [420, 480) begins before the restart at 450; its busiest second, 455, is after it
    v = judge(restart_run, metric="storms", stat="count", op="==", value=1,
              phase={"after": "server_restart", "within": "60s"})
    [storm] = v.provenance["storms"]
    assert v.verdict == PASS and (storm["start_s"], storm["peak_s"]) == (420.0, 455.0)
    assert v.provenance["rule"].startswith("60-s peaks")


def test_fleet_share_values_parse():
    for text, share in (("0.3x fleet", 0.3), ("30% of fleet", 0.3), (" 2 x fleet ", 2.0), ("150 % of fleet", 1.5)):
        g = parse_gate({"name": "f", "metric": "reconnects", "stat": "count", "op": "<=", "value": text})
        assert g.fleet_factor == pytest.approx(share) and g.value is None and g.baseline_factor is None
    for bad in ("0.3x fleets", "30% fleet", "0x fleet", "x fleet", "-1x fleet"):
        with pytest.raises(UsageError, match=r"\$\[0\]\.value: expected a (positive )?share of the fleet"):
            load_gates([{"name": "f", "metric": "reconnects", "stat": "count", "op": "<=", "value": bad}])
    with pytest.raises(UsageError, match=r"\$\[0\]\.value: .*'30% of fleet'.*got '30% of clients'"):
        load_gates([{"name": "f", "metric": "reconnects", "stat": "count", "op": "<=", "value": "30% of clients"}])


def test_fleet_share_is_judged_against_the_fleet_the_run_drove(restart_run, tmp_path):
    # nine of the ten clients reconnect in second 455
    gate = {"metric": "reconnects", "stat": "max_window_count", "window": "1s", "op": "<="}
    v = judge(restart_run, **gate, value="0.9x fleet")
    assert (v.verdict, v.observed, v.threshold) == (PASS, 9.0, pytest.approx(9.0))
    assert v.provenance["fleet"] == {"clients": 10, "share": 0.9}
    assert judge(restart_run, **gate, value="80% of fleet").verdict == FAIL
    # the same record as a simulation of 20 clients: the share is of the simulated fleet
    sim = tmp_path / "sim"
    shutil.copytree(restart_run.dir, sim)
    scenario = json.loads((sim / "scenario.json").read_text())
    scenario["fleet"]["sim_clients"] = 20
    (sim / "scenario.json").write_text(json.dumps(scenario))
    (sim / "meta.json").write_text(json.dumps({**restart_run.meta, "engine": "simulate"}))
    v = judge(RunRecord(sim), **gate, value="0.45x fleet")
    assert (v.verdict, v.threshold) == (PASS, pytest.approx(9.0))


def test_histogram_quantile_by_hand():
    buckets = [(0.05, 50.0), (0.1, 90.0), (0.25, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.175)
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.05)
    assert histogram_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None


def test_agent_gate_from_scrape_increases(tmp_path):
    def scrape(counts, total):
        samples = [{"name": "agent_execution_seconds_bucket", "labels": {"agent": "real_estate", "le": le},
                    "value": c} for le, c in zip(("0.05", "0.1", "0.25", "+Inf"), counts)]
        samples += [{"name": "agent_execution_seconds_count", "labels": {"agent": "real_estate"}, "value": total},
                    {"name": "agent_execution_seconds_sum", "labels": {"agent": "real_estate"}, "value": total / 20}]
        return samples
    out = write_record(tmp_path / "r", session("c0", "k0", [(0, 1, None, None)]), duration=100, clients=1,
                       scrapes=[(0.0, scrape((10, 10, 10, 10), 10)), (90.0, scrape((50, 90, 100, 100), 100))])
    finalize(out)
    v = evaluate(load_gates([{"name": "agent p95", "metric": "agent_execution", "stat": "p95", "op": "<",
                              "value": "100ms"}]), out)[0]
    # increases (40, 80, 90, 90): rank 85.5 in (0.1, 0.25] -> 0.1 + 0.15 * 5.5 / 10
    assert (v.verdict, v.observed) == (FAIL, pytest.approx(0.1825))
    mean = evaluate(load_gates([{"name": "m", "metric": "agent_execution", "stat": "mean", "op": "<",
                                 "value": 1}]), out)[0]
    assert mean.observed == pytest.approx(0.05)


def test_missing_sources_are_unknown_not_pass(closes_run):
    for spec in ({"metric": "agent_execution", "stat": "p95", "op": "<", "value": "100ms"},
                 {"metric": "memory", "stat": "growth", "op": "<", "value": 0.2}):
        v = judge(closes_run, **spec)
        assert v.verdict == UNKNOWN and v.observed is None and v.provenance["reason"]


def test_spec_errors_name_the_gate_and_field():
    cases = [({"metric": "x", "stat": "p100", "op": "<", "value": 1}, r"\$\[0\]\.stat"),
             ({"metric": "x", "stat": "count", "op": "~", "value": 1}, r"\$\[0\]\.op"),
             ({"metric": "x", "stat": "max_window_count", "op": "<", "value": 1}, r"\$\[0\]\.window"),
             ({"metric": "x", "stat": "count", "op": "<", "value": "lots"}, r"\$\[0\]\.value"),
             ({"metric": "x{code}", "stat": "count", "op": "<", "value": 1}, r"\$\[0\]\.metric"),
             ({"metric": "x", "stat": "count", "op": "<", "value": 1, "phase": {"after": "partition"}},
              r"\$\[0\]\.phase\.within"),
             ({"metric": "x", "stat": "count", "op": "<", "value": 1, "phase": {"during": "meteor"}},
              r"\$\[0\]\.phase\.during"),
             ({"metric": "x", "stat": "count", "op": "between", "value": [1]}, r"\$\[0\]\.value")]
    for spec, pattern in cases:
        with pytest.raises(UsageError, match=pattern):
            load_gates([{"name": "g", **spec}])
    with pytest.raises(UsageError, match="repeated"):
        load_gates([{"name": "g", "metric": "x", "stat": "count", "op": "<", "value": 1}] * 2)


def test_spec_parsing():
    g = parse_gate({"name": "a", "metric": 'closes{code="4401", by=server}', "stat": "p(99.9)", "op": "between",
                    "value": ["1m", "2h"]})
    assert g.tags == (("code", "4401"), ("by", "server")) and g.quantile == pytest.approx(0.999)
    assert g.value == (60.0, 7200.0) and g.stat_label == "p99.9"
    assert parse_gate({"name": "b", "metric": "x", "stat": "median", "op": "<", "value": "3 x baseline"}).baseline_factor == 3.0


def test_staging_gate_file_parses():
    gates = load_gates("scenarios/gates/staging.yaml")
    assert {g.name for g in gates} >= {"p95 connection duration", "p50 connection duration", "no 4401 spikes",
                                       "no forced refresh", "agent p95", "recovers after restart"}


def test_exit_codes_and_junit():
    def v(name, verdict, strict=True):
        return Verdict(name, verdict, strict, 1.0, "<", 2.0, {"reason": "r"})
    assert exit_code([v("a", PASS), v("b", FAIL, strict=False), v("c", UNKNOWN, strict=False)]) == 0
    assert exit_code([v("a", PASS), v("b", UNKNOWN)]) == 3
    assert exit_code([v("a", FAIL), v("b", UNKNOWN)]) == 1
    root = ET.fromstring(junit_xml([v("a", PASS), v("b", FAIL), v("c", UNKNOWN), v("d", FAIL, strict=False)], Suite("s")))
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["b"].find("failure") is not None and cases["c"].find("skipped") is not None
    assert cases["d"].find("failure") is None and "advisory" in cases["d"].find("system-out").text


def test_compare_is_the_one_comparison_both_evaluators_use():
    import importlib

    from formats.gates.evaluate import compare

    prom_evaluate = importlib.import_module("harness.prom.evaluate")  # the package exports a function of that name

    assert prom_evaluate.compare is compare
    assert compare("between", 5.0, (1.0, 5.0)) and not compare("between", 5.1, (1.0, 5.0))
    assert compare("in", 0.3, (0.1 + 0.2, 7.0)) and compare("==", 0.1 + 0.2, 0.3) and not compare("!=", 1.0, 1.0)


def test_the_outcome_line_names_the_exit_code_and_what_it_counts():
    from formats.gates.report import outcome_line
    from formats.gates.verdict import Verdict

    def v(verdict, strict=True):
        return Verdict("g", verdict, strict, None, "<", 1)

    assert outcome_line([]) == "exit 0: no strict gate to judge (0 passed, 0 failed, 0 unknown of 0 strict)"
    assert outcome_line([v("pass"), v("fail", strict=False)]) == (
        "exit 0: every strict gate passed (1 passed, 0 failed, 0 unknown of 1 strict; "
        "1 advisory failed (not counted))")
    assert outcome_line([v("pass"), v("unknown")]).startswith("exit 3: a strict gate is unknown, none failed (1 passed")
    assert outcome_line([v("unknown"), v("fail")]).startswith("exit 1: a strict gate failed (0 passed, 1 failed")


def test_prometheus_aliases_read_the_same_metric_in_the_scrapes(tmp_path):
    """`tokens_issued` is `auth_tokens_issued_total` to harness.prom; a run record's scrapes answer it too."""
    def scrape(issued, refreshed_ok, refreshed_bad):
        return [{"name": "auth_tokens_issued_total", "labels": {}, "value": issued},
                {"name": "auth_refresh_total", "labels": {"result": "ok"}, "value": refreshed_ok},
                {"name": "auth_refresh_total", "labels": {"result": "invalid"}, "value": refreshed_bad}]
    out = write_record(tmp_path / "r", session("c0", "k0", [(0, 1, None, None)]), duration=100, clients=1,
                       scrapes=[(0.0, scrape(3, 0, 0)), (50.0, scrape(10, 4, 1)), (90.0, scrape(15, 6, 2))])
    finalize(out)
    gates = load_gates([
        {"name": "issued", "metric": "tokens_issued", "stat": "count", "op": "==", "value": 12},
        {"name": "refreshed", "metric": 'auth_refresh{result="ok"}', "stat": "count", "op": "==", "value": 6},
    ])
    assert [(v.verdict, v.observed) for v in evaluate(gates, out)] == [(PASS, 12.0), (PASS, 6.0)]


def test_min_fraction_never_exceeds_one(tmp_path):
    """Two sockets per client after a restart (a legacy client's second socket) are all of them back."""
    events = []
    for i in range(4):
        events += session(f"c{i}", f"k{i}", [(0, 1, 450, 1012), (455, 455, None, None), (456, 456, None, None)])
    out = write_record(tmp_path / "doubled", events, duration=600, clients=4, faults=FAULTS)
    finalize(out)
    v = judge(RunRecord(out), metric="active_connections", stat="min_fraction", op=">=", value=0.99,
              phase={"after": "server_restart", "within": "60s"})
    assert (v.verdict, v.observed) == (PASS, 1.0)
    worst = v.provenance["occurrences"][0]
    assert (worst["sockets"], worst["connected_clients"], worst["fleet_expected"]) == (8.0, 4.0, 4.0)


def _with_lag(run_dir, clock: str, lag_wall_s: float, at: float) -> RunRecord:
    meta = json.loads((run_dir / "meta.json").read_text())
    meta.update(time_scale=720.0, clock={"kind": clock},
                self_check={"lag_spikes": [[at, lag_wall_s]], "lag_spike_floor_s": 0.002})
    (run_dir / "meta.json").write_text(json.dumps(meta))
    return RunRecord(run_dir)


def test_a_wall_clock_lag_larger_than_the_window_makes_the_gate_unknown(restart_run, tmp_path):
    spec = dict(metric="active_connections", stat="min_fraction", op=">=", value=0.99,
                phase={"after": "server_restart", "within": "60s"})
    lagged = shutil.copytree(restart_run.dir, tmp_path / "lagged")
    # 20 ms of loop lag at x720 = 14.4 s of scenario time right after the restart: more than 10% of 60 s
    v = judge(_with_lag(lagged, "wall", 0.020, 470.0), **spec)
    assert v.verdict == UNKNOWN and "not resolved on the wall clock" in v.provenance["reason"]
    # the same lag an hour away does not touch the window
    assert judge(_with_lag(lagged, "wall", 0.020, 3000.0), **spec).verdict == PASS
    # the virtual clock stamps every event at its time: no lag applies
    assert judge(_with_lag(lagged, "virtual", 0.020, 470.0), **spec).verdict == PASS
