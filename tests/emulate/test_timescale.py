from __future__ import annotations

import pytest

from harness.emulate.timescale import TimeScale


def test_round_trip_and_scaling():
    s = TimeScale(240)
    assert s.to_wall(3600) == 15.0
    assert s.to_scenario(s.to_wall(123.0)) == pytest.approx(123.0)


def test_distortion_warning_only_above_five_percent():
    s = TimeScale(1000)   # a 30 s heartbeat becomes 30 ms wall
    warn = s.distortion_warnings({"heartbeat_interval": 30.0, "token_ttl": 900.0},
                                 {"handshake": 0.002})
    assert len(warn) == 1 and "heartbeat_interval" in warn[0]
    assert TimeScale(1).distortion_warnings({"heartbeat_interval": 30.0}, {"handshake": 0.002}) == []


def test_rejects_non_positive_factor():
    with pytest.raises(ValueError):
        TimeScale(0)
