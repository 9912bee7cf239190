"""Capacity from sweep.json: the largest fleet before a strict gate fails, per setting."""
import json

import pytest

from formats.record.run import RecordError
from reports.sweep import load_sweep


def _point(fleet, delay, failed, peak):
    return {"params": {"fleet.sim_clients": fleet, "client.max_delay": delay},
            "summary": {"peak_reconnects_per_s": peak},
            "gates": [{"name": "storm", "verdict": "fail" if failed else "pass", "strict": True},
                      {"name": "advisory", "verdict": "fail", "strict": False}]}


def test_capacity_stops_at_the_first_failing_fleet(tmp_path):
    points = [_point(1000, 5, False, 10), _point(10000, 5, True, 90), _point(100000, 5, False, 900),
              _point(1000, 30, False, 2), _point(10000, 30, False, 20), _point(100000, 30, True, 200)]
    (tmp_path / "sweep.json").write_text(json.dumps({"scenario": "s", "vary": {}, "points": points}))
    sweep = load_sweep(tmp_path)
    capacity = {s.label: s.capacity for s in sweep.settings}
    # advisory failures never break capacity; a pass above a failure does not count
    assert capacity == {"client.max_delay=5": 1000, "client.max_delay=30": 10000}
    assert sweep.recommended().label == "client.max_delay=30"
    assert sweep.metric_key == "peak_reconnects_per_s"


def test_points_may_point_at_their_run_record(tmp_path):
    run = tmp_path / "point-000"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"peak_reconnects_per_s": 7}))
    (run / "gates.json").write_text(json.dumps([{"name": "g", "verdict": "pass", "strict": True}]))
    (tmp_path / "sweep.json").write_text(json.dumps(
        {"scenario": "s", "points": [{"params": {"clients": 500}, "run_dir": "point-000"}]}))
    sweep = load_sweep(tmp_path)
    assert sweep.fleet_param == "clients"
    [setting] = sweep.settings
    assert setting.capacity == 500 and setting.points[0].metric == 7


@pytest.mark.parametrize("doc, message", [
    ({"points": []}, "field 'points' must be a non-empty list"),
    ({"points": [{"params": {"profile": "fixed"}}]}, "no varied fleet size"),
])
def test_a_sweep_without_what_a_capacity_needs_is_refused(tmp_path, doc, message):
    (tmp_path / "sweep.json").write_text(json.dumps(doc))
    with pytest.raises(RecordError, match=message):
        load_sweep(tmp_path)


def _storm_point(fleet, profile, *, never=0, turned=0, recovery="pass", advisory="pass", weight=1, **extra):
    return {"params": {"fleet.sim_clients": fleet, "profile": profile}, "profile": profile,
            "summary": {"peak_reconnects_per_s": fleet / 10, "clients_never_connected": never,
                        "turned_away": turned, "sampling_weight": weight},
            "gates": [{"name": "recovers after restart", "verdict": recovery, "strict": True},
                      {"name": "reconnect peak spread", "verdict": advisory, "strict": False}], **extra}


def _write(tmp_path, points, **doc):
    (tmp_path / "sweep.json").write_text(json.dumps({"scenario": "deploy-storm", "vary": {}, "points": points,
                                                     **doc}))
    return load_sweep(tmp_path)


def test_capacity_needs_every_client_served_and_names_the_limit(tmp_path):
    """deploy-storm with the admission cap at 5,000: above it clients are shed all run long."""
    from reports.sweep import capacity_table

    points = []
    for profile in ("legacy", "fixed"):
        points += [_storm_point(4000, profile, advisory="fail" if profile == "legacy" else "pass"),
                   _storm_point(5000, profile, turned=826, advisory="fail" if profile == "legacy" else "pass"),
                   _storm_point(8000, profile, never=3000, turned=31074, recovery="fail", weight=2,
                                advisory="fail" if profile == "legacy" else "pass")]
    # legacy holds one more step by strict gates alone, but fails its advisory gate everywhere
    points.append(_storm_point(10000, "legacy", advisory="fail", weight=2))
    points[2] = _storm_point(8000, "legacy", advisory="fail", weight=2)
    sweep = _write(tmp_path, points)
    by = {s.label: s for s in sweep.settings}
    assert by["profile=fixed"].capacity == 5000
    assert by["profile=fixed"].limited_by.limits == ["recovers after restart", "3,000 clients never connected"]
    assert by["profile=fixed"].first_turned_away.fleet == 5000
    assert by["profile=legacy"].capacity == 10000 and by["profile=legacy"].advisory_failures == ("reconnect peak spread",)
    assert sweep.recommended().label == "profile=fixed"  # legacy holds more clients but fails an advisory gate
    rows, lines = capacity_table(sweep)
    fixed = next(r for r in rows if r[0] == "profile=fixed")
    assert fixed[1:4] == ["5,000", "8,000: recovers after restart; 3,000 clients never connected",
                          "5,000: 826 handshakes turned away"]
    assert lines[0] == "recommended: profile=fixed (holds 5,000 clients, every gate)"
    assert "not recommended: profile=legacy fails the advisory gate(s) reconnect peak spread" in lines
    assert any("8,000 clients: each agent stood for 2" in line for line in lines)


def test_a_point_with_unserved_clients_does_not_hold_even_when_every_gate_passes(tmp_path):
    sweep = _write(tmp_path, [_storm_point(1000, "fixed"), _storm_point(2000, "fixed", never=1)])
    [setting] = sweep.settings
    assert setting.capacity == 1000 and setting.limited_by.limits == ["1 clients never connected"]


def test_an_unknown_strict_gate_does_not_hold(tmp_path):
    sweep = _write(tmp_path, [_storm_point(1000, "fixed"), _storm_point(2000, "fixed", recovery="unknown")])
    assert sweep.settings[0].capacity == 1000
    assert sweep.settings[0].limited_by.limits == ["recovers after restart (unknown)"]


def test_when_every_setting_fails_an_advisory_gate_the_recommendation_says_so(tmp_path):
    from reports.sweep import capacity_table

    sweep = _write(tmp_path, [_storm_point(1000, "legacy", advisory="fail")])
    _, lines = capacity_table(sweep)
    assert lines[0] == ("no setting holds every gate; by strict gates only: profile=legacy (holds 1,000 clients) "
                        "but it FAILS the advisory gate(s) reconnect peak spread")


def test_replicated_points_hold_by_the_interval_not_one_draw(tmp_path):
    """The main draw passed; the interval of the replications straddles the threshold."""
    block = {"n": 3, "pass_probability": 2 / 3, "gates": [
        {"name": "recovers after restart", "strict": True, "verdict": "pass", "interval_verdict": "unknown"},
        {"name": "reconnect peak spread", "strict": False, "verdict": "pass", "interval_verdict": "pass"}]}
    sweep = _write(tmp_path, [_storm_point(1000, "fixed"), _storm_point(2000, "fixed", replications=block)])
    [setting] = sweep.settings
    assert setting.capacity == 1000 and setting.points[1].pass_probability == pytest.approx(2 / 3)
    assert setting.limited_by.limits == ["recovers after restart (unknown)"]


def test_a_replicated_point_is_served_only_when_every_replication_was(tmp_path):
    block = {"n": 2, "pass_probability": 1.0, "metrics": {"clients_never_connected": {"values": [0, 12]}},
             "gates": [{"name": "recovers after restart", "strict": True, "interval_verdict": "pass"}]}
    sweep = _write(tmp_path, [_storm_point(1000, "fixed"), _storm_point(2000, "fixed", replications=block)])
    assert sweep.settings[0].limited_by.limits == ["12 clients never connected"]
