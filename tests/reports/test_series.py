"""The data behind each plot, from synthetic run records whose shape is known."""
import numpy as np
import pytest

from formats.record.storms import detect_storms
from reports import series
from reports.record import load_run
from tests.reports.synthetic import SyntheticRun, write_run


def _run(tmp_path, **kw):
    return load_run(write_run(tmp_path / kw.pop("dirname", "run"), SyntheticRun(**kw)))


def test_survival_drops_at_the_known_lifetimes_and_marks_censored(tmp_path):
    run = _run(tmp_path, lifetimes=[(60, False), (120, False), (300, True), (600, True)],
               failed_handshakes=[403, 403, 403])
    data = series.survival_of(run)
    assert data.curve.n == 4  # failed handshakes have no lifetime and are not in the curve
    assert data.curve.times.tolist() == [60, 120]
    assert data.curve.survival == pytest.approx([0.75, 0.5])
    assert data.curve.censored_times.tolist() == [300, 600]
    assert data.p50 == 120 and data.p95 is None


def test_lifetime_gate_lines_come_from_the_scenario_gates(tmp_path):
    run = _run(tmp_path, scenario_gates=[
        {"name": "p95", "metric": "connection_duration", "stat": "p95", "op": ">=", "value": "2h"},
        {"name": "p50", "metric": "connection_duration", "stat": "p50", "op": ">=", "value": "30m"},
        {"name": "no 4401", "metric": 'closes{code="4401"}', "stat": "count", "op": "==", "value": 0},
    ])
    lines = series.lifetime_gate_lines(run)
    assert [(g.stat, g.seconds, g.survival_level) for g in lines] == [
        ("p95", 7200.0, pytest.approx(0.05)), ("p50", 1800.0, pytest.approx(0.5))]


def test_storm_windows_are_detected_where_attempts_spike(tmp_path):
    # the record's rule (60-s bins): minutes [60,120) and [120,180) hold 860 and 460 reconnects around 60,
    # the second one exactly at half the rise (460 = 860 - 800/2), so the window spans both
    run = _run(tmp_path, duration=300, base_attempts=1, storm=(100, 130, 40), clients=10)
    storms, source = series.storm_windows(run)
    assert source == "detected"
    assert [(s.start, s.end) for s in storms] == [(60.0, 180.0)]
    assert "41/s" in storms[0].label


def test_detection_is_the_record_rule(tmp_path):
    run = _run(tmp_path, duration=600, base_attempts=1, storm=(200, 230, 40), clients=10, omit=("summary.json",))
    record_storms, _ = detect_storms(run.timeseries["reconnects"].to_numpy(float), 10)
    storms, source = series.storm_windows(run)
    assert source == "detected" and [(s.start, s.end) for s in storms] == [
        (s.start_s, s.end_s) for s in record_storms] == [(180.0, 240.0)]


def test_an_empty_storm_list_in_the_record_is_believed(tmp_path):
    run = _run(tmp_path, duration=300, base_attempts=1, storm=(100, 130, 40), clients=10,
               summary={"storm_windows": []})
    assert series.storm_windows(run) == ([], "run record")


def test_storm_windows_listed_by_the_record_win_over_detection(tmp_path):
    run = _run(tmp_path, duration=300, storm=(100, 130, 40),
               summary={"storms": 2, "storm_windows": [{"start_s": 10, "end_s": 20, "peak_per_s": 9}, [200, 210]]})
    storms, source = series.storm_windows(run)
    assert source == "run record"
    assert [(s.start, s.end) for s in storms] == [(10, 20), (200, 210)]


def test_quiet_run_has_no_storm(tmp_path):
    storms, _ = series.storm_windows(_run(tmp_path, duration=300, base_attempts=2))
    assert storms == []


def test_fault_spans_keep_instants_and_windows(tmp_path):
    run = _run(tmp_path, faults=[{"at": 60, "for": 30, "kind": "partition"},
                                 {"at": 200, "for": None, "kind": "server_restart"}])
    assert [(f.start, f.end, f.label) for f in series.fault_spans(run)] == [
        (60, 90, "partition"), (200, 200, "server_restart")]


def test_closes_by_code_are_binned_and_conserved(tmp_path):
    run = _run(tmp_path, duration=3600, closes={"4401": [5, 6, 7, 900], "1006": [10, 2000, 2001]})
    binned = series.closes_by_code(run)
    assert binned.bin_s == 30  # 3600 s in at most 240 bins
    assert list(binned.counts) == ["1006", "4401"]
    assert binned.counts["4401"].sum() == 4 and binned.counts["1006"].sum() == 3
    assert binned.counts["4401"][0] == 3 and binned.counts["4401"][900 // 30] == 1
    assert binned.counts["1006"][2000 // 30] == 2


def test_active_connections_follow_the_lifetimes(tmp_path):
    run = _run(tmp_path, duration=200, lifetimes=[(50, False), (100, False), (150, True)])
    t, active = series.active_connections(run)
    assert active[0] == 3 and active[75] == 2 and active[120] == 1 and active[199] == 1


def test_delivery_counts_lost_duplicated_and_reordered_from_the_ledger(tmp_path):
    run = _run(tmp_path, messages=30, lost={3, 17}, duplicated={4}, reordered={5}, omit=("summary.json",))
    counts, source = series.delivery(run)
    assert source == "ledger.csv"
    assert counts == {"sent": 30, "displayed": 28, "lost": 2, "duplicates": 1, "reordered": 1}


def test_delivery_comes_from_the_summary_the_gates_read(tmp_path):
    """A sampled simulation's ledger is a sample: the summary's counts are the gates' and the report's."""
    root = write_run(tmp_path / "r", SyntheticRun(messages=30, lost={3}, duplicated={4}, summary={
        "duplicates_displayed": 19_796, "messages_sent": 90_000, "messages_indeterminate": 18}))
    (root / "ledger_summary.json").write_text('{"sent": 9, "displayed": 8, "lost": 1, "duplicates": 197960}')
    counts, source = series.delivery(load_run(root))
    assert source.startswith("summary.json")
    assert counts == {"sent": 90_000, "lost": 1, "indeterminate": 18, "duplicates": 19_796}


def test_delivery_prefers_the_engine_summary_when_there_is_no_ledger(tmp_path):
    root = write_run(tmp_path / "r", SyntheticRun(omit=("ledger.csv", "summary.json")))
    (root / "ledger_summary.json").write_text('{"sent": 9, "displayed": 8, "lost": 1, "duplicates": 0}')
    counts, source = series.delivery(load_run(root))
    assert source == "ledger_summary.json" and counts["lost"] == 1 and "reordered" not in counts


def test_rate_per_1000_clients_makes_fleets_comparable(tmp_path):
    small = _run(tmp_path, dirname="a", duration=600, clients=10, base_attempts=1)
    big = _run(tmp_path, dirname="b", duration=600, clients=1000, base_attempts=100)
    (_, a), (_, b) = series.rate_per_1000(small), series.rate_per_1000(big)
    assert np.allclose(a, 100.0) and np.allclose(b, 100.0)
