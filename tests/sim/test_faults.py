"""Every fault kind of the scenario schema, as the model reads it, leaves its own mark."""
from __future__ import annotations

import json

import pytest

from formats.record import RunRecord
from formats.scenario import FAULT_KINDS, from_dict
from sim.engine import simulate
from sim.faults import KINDS

AT = 1200  # seconds: every client is connected and stable by then


def run(tmp_path, fault: dict, clients: int = 40, ttl: str = "2h", behaviour: str | dict = "fixed"):
    sc = from_dict({
        "name": f"fault-{fault['kind']}", "seed": 2, "duration": "1h",
        "system": {"behaviour": behaviour, "token_ttl": ttl, "live_expiry": True,
                   "heartbeat": {"interval": "30s", "timeout": "20s"}},
        "fleet": {"clients": clients, "profile": "fixed"},
        "faults": [{"at": AT, **fault}],
    })
    summary = simulate(sc, tmp_path / fault["kind"])
    return summary, RunRecord(tmp_path / fault["kind"])


def closes(summary, code):
    return int(summary["closes_by_code"].get(str(code), 0))


def test_the_model_knows_every_kind_the_schema_has():
    assert set(KINDS) == set(FAULT_KINDS)


def test_quiet_run_has_no_closes(tmp_path):
    summary, _ = run(tmp_path, {"kind": "slicer", "for": "5m", "delay": "10ms"})
    assert summary["closes_by_code"] == {} and summary["reconnect_attempts"] == 0


@pytest.mark.parametrize("fault, code", [
    ({"kind": "partition", "for": "5m"}, 1006),
    ({"kind": "bandwidth", "for": "5m", "rate": 0}, 1006),
    ({"kind": "timeout", "for": "5m", "timeout": "10s"}, 1006),
    ({"kind": "reset_peer", "for": "1m"}, 1006),
    ({"kind": "proxy_down", "for": "1m"}, 1006),
    ({"kind": "server_restart", "mode": "graceful"}, 1012),
    ({"kind": "server_restart", "mode": "crash"}, 1006),
    ({"kind": "token_expiry"}, 4401),
    ({"kind": "auth_outage", "for": "20m"}, 4401),  # refreshes fail, the tokens (20 min) run out
    ({"kind": "ws_close", "for": "1m", "code": 4000}, 4000),
    ({"kind": "ws_drop_pings", "for": "5m"}, 1001),
])
def test_fault_closes_sockets_with_its_code(tmp_path, fault, code):
    summary, rec = run(tmp_path, fault, ttl="20m" if fault["kind"] == "auth_outage" else "2h")
    assert closes(summary, code) >= 40, summary["closes_by_code"]
    ts = rec.timeseries.set_index("t")
    assert ts.loc[:AT - 1, "closes"].sum() == 0  # nothing before the fault
    assert ts.loc[AT:, "reconnects"].sum() >= 40  # and the fleet reconnected after it


def test_a_legacy_abrupt_errors_server_drops_expired_sockets(tmp_path):
    """As the seed server (system/server/ws.py `_error_close`): the mass expiry ends every live
    socket with 1006 and no error frame, and no 4401 anywhere."""
    summary, _ = run(tmp_path, {"kind": "token_expiry"},
                     behaviour={"base": "fixed", "legacy": ["abrupt_errors"]})
    assert closes(summary, 1006) >= 40 and closes(summary, 4401) == 0, summary["closes_by_code"]


def test_fraction_targets_only_some_clients(tmp_path):
    summary, _ = run(tmp_path, {"kind": "partition", "for": "5m", "fraction": 0.25})
    assert closes(summary, 1006) == 10  # a quarter of 40, each once


def test_latency_slows_handshakes_but_closes_nothing(tmp_path):
    summary, rec = run(tmp_path, {"kind": "latency", "for": "30m", "latency": "2s", "jitter": "0s"})
    assert summary["closes_by_code"] == {}


def test_load_spike_adds_clients_for_its_duration(tmp_path):
    summary, rec = run(tmp_path, {"kind": "load_spike", "for": "10m", "clients": 20})
    active = rec.timeseries.set_index("t")["active"]
    assert active.loc[AT + 60] == 60 and active.loc[AT + 660] == 40


def test_a_one_way_blackhole_lets_refreshes_through_and_loses_their_answers(tmp_path):
    """A `timeout` toxic on the downstream stream (the emulation's default) stops only what the
    client hears: the refreshes a client sends after the heartbeat dropped its socket reach the
    server and rotate its refresh token, the answers are lost, and the next refresh after the heal
    presents a rotated token: 401 (reuse; the family is revoked), then a fresh login. A partition
    stops both ways: nothing rotates, no 401."""
    from formats.record.derive import read_events

    START = 120  # every client connected and stable

    def tokens(fault: dict) -> list[dict]:
        sc = from_dict({
            "name": "one-way", "seed": 4, "duration": "8m",
            "system": {"behaviour": "fixed", "token_ttl": "2h", "heartbeat": {"interval": "15s", "timeout": "10s"}},
            "fleet": {"clients": 20, "profile": "fixed", "arrival": {"ramp": "20s"}},
            "faults": [{"at": START, "for": "90s", **fault}],
        })
        simulate(sc, tmp_path / fault["kind"])
        return [e for e in read_events(tmp_path / fault["kind"] / "events.jsonl") if e["kind"] == "token"]

    one_way = tokens({"kind": "timeout", "timeout": 0})
    rejected = [e for e in one_way if e["status"] == 401]
    assert rejected and all(e["refresh"] and e["t"] >= START + 90 for e in rejected)
    for r in rejected:  # each such client then logs in anew, successfully
        assert any(e["client"] == r["client"] and e["t"] > r["t"] and not e["refresh"] and e["ok"] for e in one_way)
    assert not [e for e in tokens({"kind": "partition"}) if e["status"] == 401]


@pytest.mark.parametrize("virtual", [False, True])
def test_token_requests_fail_while_the_server_restarts(tmp_path, virtual):
    """The token endpoints are the server's own, so a restart takes them down with it, whether a
    refresh costs a slot of the server's CPU (the wall clock's calibration) or nothing (the virtual
    clock's): a client that refreshes before it reconnects during the downtime is refused there, as
    the real server refuses it, and never reaches a handshake with a token the server did not give."""
    from sim.calibration import load

    cal = load()[0]
    cal = cal.on_virtual_clock(5.0) if virtual else cal
    sc = from_dict({
        "name": "restart-tokens", "seed": 4, "duration": "30m",
        "system": {"behaviour": "fixed", "token_ttl": "2h"},
        "fleet": {"clients": 60, "profile": "fixed", "restart_window": "2s"},
        "faults": [{"at": AT, "for": "5s", "kind": "server_restart", "mode": "graceful"}],
    })
    simulate(sc, tmp_path / "run", calibration=cal)
    events = RunRecord(tmp_path / "run").path("events.jsonl").read_text().splitlines()
    down = [e for e in map(json.loads, events) if AT < e["t"] < AT + 5 and e["kind"] in ("token", "attempt")]
    assert any(e["kind"] == "token" and not e["ok"] for e in down)
    assert not any(e["kind"] == "token" and e["ok"] for e in down)
