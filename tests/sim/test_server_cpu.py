"""The server is one process: its token endpoint queues with handshakes and goes down with restarts.

A mass expiry's herd refreshes before it reconnects, so the refreshes' service time spreads the
herd; a restart takes the token endpoint down with the accept path (the emulation shows both)."""
from __future__ import annotations

import json

import pytest

from formats.scenario.draws import client_id
from formats.scenario.plan import Lifetime

from formats.scenario import from_dict
from sim.calibration import Calibration, Dist
from commands.validate import emulated_system
from sim.world import EXPIRY_GRACE_S, World

DOC = {"name": "cpu", "seed": 5, "duration": "1h", "time_scale": 720,
       "system": {"behaviour": "fixed", "token_ttl": "15m", "live_expiry": True,
                  "heartbeat": {"interval": "30s", "timeout": "20s"}},
       "fleet": {"clients": 10, "profile": "fixed"}}


def answers(cal: Calibration, n: int, *, server_up: bool = True) -> list[tuple[float, bool]]:
    """Fetch n tokens at once at t=0; when and whether each was answered."""
    world = World(from_dict(DOC), cal, clients=n)
    world.server.up = server_up
    got: list[tuple[float, bool]] = []
    for i in range(n):
        client = world.add_client(Lifetime(i, client_id(i), 1e9, world.duration))  # never starts on its own
        world.tokens.fetch(client, lambda ok, *_rest: got.append((world.env.now, ok)))
    world.env.run(until=10)
    return got


def test_refreshes_queue_for_the_server_cpu():
    service = 0.01
    shared = Calibration(token_latency=Dist("fixed", 0.002), token_service=Dist("fixed", service))
    times = sorted(t for t, ok in answers(shared, 20) if ok)
    assert times == pytest.approx([service * (k + 1) for k in range(20)])
    latency_only = Calibration(token_latency=Dist("fixed", 0.002), token_service=None)
    assert sorted(t for t, _ok in answers(latency_only, 20)) == pytest.approx([0.002] * 20)


def test_tokens_are_refused_while_the_server_is_down():
    cal = Calibration(token_service=Dist("fixed", 0.01), refused_after_s=0.5)
    assert answers(cal, 3, server_up=False) == [(0.5, False)] * 3


def test_calibration_round_trips_the_token_service(tmp_path):
    cal = Calibration(token_service=Dist("exponential", 0.0004))
    again = Calibration.from_json(json.loads(json.dumps(cal.to_json())))
    assert again.token_service == cal.token_service
    assert cal.compressed(30).token_service.mean == pytest.approx(0.012)
    with pytest.raises(ValueError, match="token_service"):
        Calibration.from_json({"token_service": 3})


def test_validate_models_the_emulations_floors_and_restart_time(tmp_path):
    """At x720 the emulation floors heartbeat and expiry grace at 250 ms wall (180 s of scenario
    time); the model of that run uses those values and the restart time the emulation measured."""
    windows = [  # as finalize measures them from the harness's fault_start records
        {"index": 0, "kind": "server_restart", "start_s": 100.0, "applied_s": 500.0, "stop_s": None, "lifted_s": 0.0},
        {"index": 1, "kind": "server_restart", "start_s": 900.0, "applied_s": 700.0, "stop_s": None, "lifted_s": 0.0},
        {"index": 2, "kind": "latency", "start_s": 950.0, "applied_s": 3.0, "stop_s": None, "lifted_s": 0.0},
    ]
    (tmp_path / "summary.json").write_text(json.dumps({"fault_windows": windows}))
    system = emulated_system(from_dict(DOC), tmp_path)
    hb = system.scenario.system.heartbeat
    assert (hb.interval, hb.timeout) == pytest.approx((180.0, 180.0))
    assert system.expiry_grace_s == pytest.approx(180.0)
    assert system.restart_s == pytest.approx(600.0)
    assert len(system.notes) == 3
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "summary.json").write_text("{}")  # no fault measured
    slow = emulated_system(from_dict({**DOC, "time_scale": 1}), tmp_path / "none")
    assert (slow.scenario.system.heartbeat.interval, slow.expiry_grace_s) == (30.0, EXPIRY_GRACE_S)
    assert slow.restart_s is None and slow.notes == ()


def test_keepalive_pings_each_socket_from_its_open(tmp_path):
    """ws_drop_pings: the server pings every socket `interval` after its open and every interval on,
    so a socket reopened during the fault lasts a whole interval + timeout, and a ping dropped just
    before the fault ends still times out after it."""
    from sim.engine import simulate

    doc = {**DOC, "time_scale": 1, "duration": "5m",
           "system": {**DOC["system"], "heartbeat": {"interval": "15s", "timeout": "10s"}},
           "fleet": {"clients": 40, "profile": "fixed", "arrival": {"ramp": "20s"}},
           "faults": [{"at": "100s", "for": "60s", "kind": "ws_drop_pings"}]}
    simulate(from_dict(doc), tmp_path / "run", calibration=Calibration(close_service=None))  # closes at once
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    opens: dict[str, list[float]] = {}
    closes: dict[str, list[float]] = {}
    for e in events:
        if e["kind"] == "open":
            opens.setdefault(e["client"], []).append(e["t"])
        elif e["kind"] == "close" and e.get("code") == 1001:
            closes.setdefault(e["client"], []).append(e["t"])
    assert len(closes) == 40
    after_fault = 0
    for client, times in closes.items():
        assert 110 < times[0] <= 125 + 1e-9
        for t in times[1:]:  # a reopened socket: one whole interval + timeout after its open
            opened = max(o for o in opens[client] if o < t)
            assert t - opened == pytest.approx(25.0, abs=1e-6)
        after_fault += sum(t > 160 for t in times)
        assert max(times) <= 170 + 1e-9
    assert after_fault > 0  # pings dropped before 160 s time out after the fault ended


def test_a_live_expiry_close_comes_with_an_error_frame_that_starts_the_refresh(tmp_path):
    """The real server refuses an expired session with an `error` frame (auth_expired), then 4401
    (system/server/ws.py `_refuse`). A fixed client fetches a fresh token on the frame, so after a
    mass expiry every refresh is requested at the close itself, not after the client's backoff: with
    a fixed token latency every client's token arrives exactly that long after its 4401, and its
    reconnect waits for it. Without the frame the refresh would start U(0, base_delay) later."""
    from formats.record.derive import read_events
    from sim.engine import simulate

    latency = 0.25
    sc = from_dict({**DOC, "duration": "20m", "time_scale": 1,
                    "fleet": {"clients": 30, "profile": "fixed", "arrival": {"ramp": "10s"}},
                    "faults": [{"at": "10m", "kind": "token_expiry"}]})
    cal = Calibration(token_latency=Dist("fixed", latency), token_service=None)
    simulate(sc, tmp_path / "run", calibration=cal)
    events = list(read_events(tmp_path / "run" / "events.jsonl"))
    expired = [e for e in events if e["kind"] == "close" and e.get("code") == 4401]
    assert len(expired) == 30  # the whole fleet, one close each
    after_close = []
    for close in expired:
        mine = [e for e in events if e["client"] == close["client"] and e["t"] >= close["t"]]
        token = next(e for e in mine if e["kind"] == "token")
        attempt = next(e for e in mine if e["kind"] == "attempt")
        assert token["ok"] and attempt["t"] >= token["t"]  # the reconnect used the refreshed token
        after_close.append(token["t"] - close["t"])
    assert after_close == pytest.approx([latency] * 30)


def test_a_mass_expirys_closes_complete_one_by_one_between_the_refreshes_they_started(tmp_path):
    """A close ends when the server has read the client's close reply, on the same CPU as the
    refreshes. The client's WebSocket stack answers the close frame before its application reads
    the error frame that came with it, so close k queues before refresh k: with one server the k-th
    close completes after k closes and k - 1 refreshes, and each client's refresh is answered after
    its close (the emulated mass expiries here: every client refreshed once, after its 4401)."""
    from formats.record.derive import read_events
    from sim.engine import simulate

    token, close, n = 0.01, 0.005, 20
    sc = from_dict({**DOC, "duration": "15m", "time_scale": 1,
                    "system": {**DOC["system"], "token_ttl": "2h"},
                    "fleet": {"clients": n, "profile": "fixed", "arrival": {"ramp": "10s"}},
                    "faults": [{"at": "10m", "kind": "token_expiry"}]})
    cal = Calibration(token_latency=Dist("fixed", 0.0), token_service=Dist("fixed", token),
                      close_service=Dist("fixed", close), handshake_service=Dist("fixed", 0.001))
    simulate(sc, tmp_path / "run", calibration=cal)
    closes = sorted(e["t"] for e in read_events(tmp_path / "run" / "events.jsonl")
                    if e["kind"] == "close" and e.get("code") == 4401)
    due = 600 + EXPIRY_GRACE_S
    assert [t - due for t in closes] == pytest.approx([close + (token + close) * k for k in range(n)])
    events = list(read_events(tmp_path / "run" / "events.jsonl"))
    refreshes = [e for e in events if e["kind"] == "token" and e["t"] >= due]
    first_refresh = {}
    for e in refreshes:
        first_refresh.setdefault(e["client"], e["t"])
    for e in events:
        if e["kind"] == "close" and e.get("code") == 4401:
            assert first_refresh[e["client"]] > e["t"]


def test_a_graceful_stop_answers_tokens_until_its_closes_are_done(tmp_path):
    """A graceful restart closes the listener at once (connects refused) but the process, and its
    token endpoint, lives until every 1012 close went through its CPU; a crash takes both at once."""
    def world_with(n: int) -> World:
        cal = Calibration(close_service=Dist("fixed", 0.01), token_service=Dist("fixed", 0.001),
                          handshake_service=Dist("fixed", 0.001))
        w = World(from_dict({**DOC, "time_scale": 1, "fleet": {"clients": n, "profile": "fixed"}}), cal, clients=n)
        for i in range(n):
            w.add_client(Lifetime(i, client_id(i), 0.0, w.duration))
        w.env.run(until=5)
        assert w.server.active == n
        return w

    graceful = world_with(10)
    graceful.server.go_down(crash=False)
    assert not graceful.server.accepting and graceful.server.up
    graceful.env.run(until=5 + 10 * 0.01 - 1e-6)
    assert graceful.server.up  # nine closes done, the tenth under way
    graceful.env.run(until=5 + 10 * 0.01 + 1e-6)
    assert not graceful.server.up
    crash = world_with(10)
    crash.server.go_down(crash=True)
    assert not crash.server.up and not crash.server.accepting
