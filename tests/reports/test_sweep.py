"""Capacity from sweep.json: the largest fleet before a strict gate fails, per setting."""
import json

import pytest

from reports.record import RecordError
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
