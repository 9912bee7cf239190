from __future__ import annotations

import re

import pytest

from harness.emulate.timescale import TimeScale


def test_round_trip_and_scaling():
    s = TimeScale(240)
    assert s.to_wall(3600) == 15.0
    assert s.to_scenario(s.to_wall(123.0)) == pytest.approx(123.0)


def test_distortion_warning_only_above_five_percent():
    s = TimeScale(1000)   # a 30 s heartbeat becomes 30 ms wall
    warn = s.distortion_warnings({"heartbeat_interval": 30.0, "token_ttl": 900.0, "base_delay": 1.0},
                                 {"handshake": 0.002, "agent": 0.00001})
    assert len(warn) == 1 and "handshake" in warn[0]
    assert "heartbeat_interval" in warn[0] and "base_delay" in warn[0] and "token_ttl" not in warn[0]
    assert TimeScale(1).distortion_warnings({"heartbeat_interval": 30.0}, {"handshake": 0.002}) == []


def test_rejects_non_positive_factor():
    with pytest.raises(ValueError):
        TimeScale(0)


def test_tally_counts_open_sockets_not_open_minus_close_events():
    from harness.emulate.live import Tally

    t, seen = Tally(), set()
    for rec in [{"client": "a", "kind": "open", "sock": 1}, {"client": "a", "kind": "close", "sock": 1, "code": 1006},
                {"client": "a", "kind": "close", "sock": 2, "code": 1006},  # a socket that never opened
                {"client": "b", "kind": "open", "sock": 1},
                {"client": "b", "kind": "displayed", "msg_id": "m"}, {"client": "b", "kind": "displayed", "msg_id": "m"},
                {"client": "b", "kind": "handshake_failed", "status": 403}, {"client": "b", "kind": "give_up"}]:
        t.add(rec, seen)
    assert t.active == 1 and t.closes == {"1006": 2}
    assert (t.displayed, t.duplicates_displayed, t.http_403, t.manual_refreshes) == (2, 1, 1, 1)
    merged = type(t).merge([t.snapshot(), t.snapshot()])
    assert merged.active == 2 and merged.closes["1006"] == 4


def test_live_view_prints_progress_lines_off_a_tty():
    import io

    from harness.emulate.live import LiveView, Tally

    out = io.StringIO()
    t = Tally(attempts=10, active=3, http_403=2)
    t.closes["1012"] = 4
    with LiveView("demo", 3600.0, stream=out, line_every=10.0) as view:
        view.update(60.0, t, ["latency"], wall=100.0)
        view.update(61.0, t, ["latency"], wall=105.0)   # within line_every: no second line
        view.update(3600.0, t, [], wall=111.0)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "t=1m/1h" in lines[0] and "active=3" in lines[0] and "1012:4" in lines[0]
    assert "403=2" in lines[0] and "faults=latency" in lines[0]


def test_live_panel_shows_the_run_state():
    import io

    from rich.console import Console

    from harness.emulate.live import LiveView, Tally

    from harness.emulate.live import LiveCheck
    from formats.gates.spec import load_gates

    gates = load_gates([
        {"name": "no forced refresh", "metric": "manual_refreshes", "stat": "count", "op": "==", "value": 0},
        {"name": "few 4401", "metric": 'closes{code="4401"}', "stat": "count", "op": "<=", "value": 3},
        {"name": "p95", "metric": "connection_duration", "stat": "p95", "op": ">=", "value": 60},  # not live
    ])
    checks = LiveCheck.from_gates(gates)
    assert [c.name for c in checks] == ["no forced refresh", "few 4401"]
    t = Tally(active=7, manual_refreshes=1)
    t.closes["4401"] = 2
    buf = io.StringIO()
    view = LiveView("demo", 60.0, stream=io.StringIO(), gates=gates)
    view.update(10.0, t, [], wall=0.0)
    view.update(30.0, t, ["partition"], wall=5.0)  # 20 scenario seconds in 5 wall seconds
    Console(file=buf, width=120).print(view.render(30.0, t, ["partition"]))
    text = buf.getvalue()
    assert "active connections" in text and "7" in text and "partition" in text
    assert "failing (1 == 0)" in text and "ok so far (2 <= 3)" in text
    assert "p95" in text and "at the end" in text  # every gate of the run, the rest judged at the end
    assert "[##########----------] 50% eta 7.5s (at " in text  # 30 s left at 4 scenario s per wall s


def test_fleet_bound_counts_two_proxy_descriptors_per_socket():
    from harness.emulate.fleet import FD_RESERVE, fleet_bound, split

    assert fleet_bound(20000, 1) == (20000 - FD_RESERVE) // 4   # 1 WebSocket + 1 HTTP, 2 fds each
    assert fleet_bound(20000, 2) == (20000 - FD_RESERVE) // 6
    assert split(list(range(0)), 2) == [[], []]


def test_progress_lines_off_a_tty_every_10s_averaged_and_a_final_one():
    import io

    from harness.emulate.live import LiveView, Tally

    out = io.StringIO()
    t = Tally()
    with LiveView("demo", 35.0, stream=out, line_every=10.0) as view:
        for step in range(141):  # four updates a wall second for 35 s, as the engine does
            t.attempts += 1
            t.closes["1006"] = step // 40
            view.update(step / 4, t, [], wall=1000.0 + step / 4)
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["t=0ms/35.0s", "t=10.0s/35.0s", "t=20.0s/35.0s", "t=30.0s/35.0s", "t=35.0s/35.0s"]
    assert all(line.startswith("[demo] ") and "\x1b" not in line for line in lines)
    # one attempt per update, four updates per scenario second: rates in scenario time
    assert [re.search(r"attempts/scenario-s=(\S+)", line).group(1) for line in lines[1:]] == ["4.0"] * 4
    assert "[######--------------] 29% eta" in lines[1] and "[####################] 100%" in lines[-1]
    assert "closes=1006:3" in lines[-1]  # the final state, not the last periodic line's


def test_a_fault_shorter_than_a_line_interval_shows_on_the_next_line():
    """At x12 a 20 s partition lasts 1.7 wall seconds: between two progress lines, yet it was in force."""
    import io

    from harness.emulate.live import LiveView, Tally

    out = io.StringIO()
    t = Tally()
    with LiveView("demo", 3600.0, stream=out, line_every=10.0) as view:
        view.update(0.0, t, [], wall=0.0)
        view.update(720.0, t, ["partition"], wall=1.0)   # in force for a moment between lines
        view.update(1440.0, t, [], wall=2.0)
        view.update(7200.0, t, [], wall=10.0)
    lines = out.getvalue().splitlines()
    assert "faults=-" in lines[0] and "faults=partition" in lines[1]
