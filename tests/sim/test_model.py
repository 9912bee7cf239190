"""The model's behaviour as a whole: fast paths against the plain model, legacy against fixed."""
from __future__ import annotations

import json

import pytest

from formats.scenario import from_dict
from sim.calibration import Calibration, Dist, load
from sim.engine import Sizing, simulate
from sim.world import EXPIRY_GRACE_S
from system.client.config import Fixes


def day(profile: str, clients: int, duration: str = "6h", **fleet):
    return from_dict({
        "name": "model-check", "seed": 11, "duration": duration,
        "system": {"behaviour": profile, "token_ttl": "15m", "live_expiry": True,
                   "heartbeat": {"interval": "30s", "timeout": "20s"}},
        "fleet": {"clients": clients, "profile": profile, "arrival": {"ramp": "5m"},
                  "network": {"drops": {"every": "1h"}, "offline": {"every": "3h", "for": "1m"}}, **fleet},
        "faults": [{"at": "2h", "kind": "server_restart"},
                   {"at": "3h", "for": "5m", "kind": "auth_outage"},
                   {"at": "4h", "kind": "token_expiry", "fraction": 0.5},
                   {"at": "5h", "for": "2m", "kind": "partition", "fraction": 0.3}],
    })


def test_sizing_weights_large_fleets():
    assert Sizing.plan(1000) == Sizing(1000, 1000, 1, True)
    big = Sizing.plan(100_000, max_agents=10_000)
    assert (big.agents, big.weight, big.exact) == (10_000, 10, False)


def test_weighted_agents_match_the_plain_model(tmp_path):
    """The fleet-scale path (agents standing for 4 clients each, derived tables, sampled ledger)
    against the plain model of every client, on the same scenario."""
    sc = day("fixed", 800, messages={"every": "10m"})
    plain = simulate(sc, tmp_path / "plain")
    fast = simulate(sc, tmp_path / "fast", max_agents=200)
    meta = json.loads((tmp_path / "fast" / "meta.json").read_text())
    assert meta["sampling"] == {"agents": 200, "weight": 4, "exact": False, "ledger_clients": 200}
    assert fast["clients"] == plain["clients"] == 800
    for key in ("duration_p50_s", "duration_p95_s", "reconnect_attempts", "connections"):
        assert fast[key] == pytest.approx(plain[key], rel=0.10), key
    assert fast["peak_reconnects_per_s"] == pytest.approx(plain["peak_reconnects_per_s"], rel=0.25)
    assert fast["messages_sent"] == pytest.approx(plain["messages_sent"], rel=0.10)
    assert fast["lost_messages"] == plain["lost_messages"] == 0


def test_derived_tables_match_finalize(tmp_path):
    """At weight 1 the engine's own tables equal what finalize derives from events.jsonl."""
    sc = day("legacy", 100)
    simulate(sc, tmp_path / "events")
    simulate(sc, tmp_path / "tables", exact_limit=0)
    for name in ("connections.csv", "timeseries.csv"):
        assert (tmp_path / "events" / name).read_text() == (tmp_path / "tables" / name).read_text(), name


def test_legacy_to_fixed_has_the_seed_systems_direction(tmp_path):
    """The before/after table of DESIGN.md: storms, 403s, short lives, duplicates, manual refreshes."""
    legacy = simulate(day("legacy", 200, messages={"every": "10m"}), tmp_path / "legacy")
    fixed = simulate(day("fixed", 200, messages={"every": "10m"}), tmp_path / "fixed")
    # bounded by the token period (plus the server's grace), as the seed's ~15 min
    assert legacy["duration_p95_s"] <= 15 * 60 + EXPIRY_GRACE_S + 1
    assert fixed["duration_p95_s"] is None or fixed["duration_p95_s"] >= 2 * legacy["duration_p95_s"]
    assert legacy["storms"] > 2 * max(1, fixed["storms"])
    assert legacy["http_403"] > fixed["http_403"]
    assert legacy["duplicates_displayed"] > 0 == fixed["duplicates_displayed"]
    assert legacy["manual_refreshes"] > fixed["manual_refreshes"]
    assert legacy["reconnect_attempts"] > 5 * fixed["reconnect_attempts"]


def test_calibration_errors_name_the_file_and_field(tmp_path):
    bad = tmp_path / "cal.json"
    bad.write_text(json.dumps({"handshake_servers": 0}))
    with pytest.raises(ValueError, match=r"cal\.json.*handshake_servers"):
        load(bad)
    bad.write_text(json.dumps({"handshake_service": {"kind": "gamma", "mean": 1}}))
    with pytest.raises(ValueError, match=r"cal\.json.*handshake_service.*kind"):
        load(bad)
    bad.write_text(json.dumps({"servers": 2}))
    with pytest.raises(ValueError, match=r"unknown field.*servers"):
        load(bad)
    cal, name = load()
    assert isinstance(cal, Calibration) and name.endswith("calibration_default.json")


def test_run_record_names_its_calibration(tmp_path):
    cal = Calibration(source="measured on a test box", handshake_servers=3)
    simulate(day("fixed", 20), tmp_path / "run", calibration=cal)
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["engine"] == "simulate"
    assert meta["calibration"]["source"] == "measured on a test box"
    assert meta["calibration"]["handshake_servers"] == 3


def test_both_engines_configure_clients_from_the_one_function():
    """Not two copies that happen to agree: the emulation and the model call the same function."""
    import harness.emulate.engine as emulation
    import sim.world as model
    from formats.scenario.clients import client_config

    assert emulation.client_config is client_config and model.client_config is client_config
    for profile in ("legacy", "fixed"):
        cfg = client_config(day(profile, 10))
        assert cfg.fixes == Fixes.profile(profile)
        assert 0 < cfg.refresh_lead < cfg.token_ttl


def test_a_run_is_bounded_in_wall_time(tmp_path):
    sc = day("fixed", 30)
    summary = simulate(sc, tmp_path / "run", max_wall_s=0.0)
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["end_s"] == pytest.approx(sc.duration / 96)
    assert meta["self_check"]["complete"] is False
    assert any("wall-time bound" in w for w in meta["warnings"])
    assert summary["duration_s"] == pytest.approx(sc.duration / 96)


def test_scrapes_carry_the_agent_histogram(tmp_path):
    """Server-metric gates (agent p95) judge a simulated run from scrapes, as an emulated one."""
    from formats.gates.evaluate import evaluate
    from formats.gates.spec import load_gates
    from formats.record import RunRecord

    cal = Calibration(agent_latency=Dist("fixed", 0.2))
    simulate(day("fixed", 20, messages={"every": "5m"}), tmp_path / "run", calibration=cal)
    gate = load_gates([{"name": "agent p95", "metric": "agent_execution", "stat": "p95", "op": "<", "value": "100ms"}])
    [verdict] = evaluate(gate, RunRecord(tmp_path / "run"))
    assert verdict.verdict == "fail"  # every reply takes 200 ms in this calibration
    assert 0.1 < verdict.observed <= 0.25


def test_calibration_rejects_negative_times():
    with pytest.raises(ValueError, match="restart_downtime_s"):
        Calibration(restart_downtime_s=-1)


def test_compressed_calibration_stretches_cpu_times_only():
    cal = Calibration(handshake_service=Dist("lognormal", 0.002, 0.5), restart_downtime_s=0.5)
    c = cal.compressed(30)
    assert c.handshake_service.mean == pytest.approx(0.06) and c.handshake_service.sigma == 0.5
    assert c.restart_downtime_s == pytest.approx(15) and c.connect_timeout_s == pytest.approx(60)
    assert c.handshake_servers == cal.handshake_servers and cal.compressed(1) is cal


def test_a_chat_free_run_finalizes_from_an_empty_ledger(tmp_path):
    """No messages at all: finalize derives a header-only ledger itself (no engine workaround),
    counts nothing lost, and the message gates have no evidence."""
    sc = day("fixed", 30)
    summary = simulate(sc, tmp_path / "run")
    assert not (tmp_path / "run" / "ledger_summary.json").exists()
    ledger = (tmp_path / "run" / "ledger.csv").read_text().splitlines()
    assert ledger == ["kind,client,conversation,msg_id,seq,t"]
    assert summary["lost_messages"] == 0 and summary["duplicates_displayed"] == 0
    assert summary["reconnect_attempts"] > 0


def shedding(clients: int, cap: int, rate: float):
    """deploy-storm's shape at a small size: a fleet 10x the admission cap, a graceful restart."""
    return from_dict({
        "name": "shed", "seed": 7, "duration": "150s",
        "system": {"behaviour": "fixed", "token_ttl": "15m", "heartbeat": {"interval": "20s", "timeout": "10s"},
                   "admission": {"max_connections": cap, "handshake_rate": f"{rate}/s"}},
        "fleet": {"clients": clients, "profile": "fixed", "arrival": {"ramp": "30s"},
                  "messages": {"every": "60s"}},
        "faults": [{"at": "60s", "kind": "server_restart", "mode": "graceful"}],
    })


def test_the_sampled_ledger_calls_messages_to_shed_clients_indeterminate(tmp_path):
    """Messages to clients still shed with 1013 at the end have an unknown outcome, as in the full
    ledger: the fleet-scale ledger judges them by the same rule, so both paths count nothing lost
    and about the same number indeterminate."""
    sc = shedding(1000, 100, 8)
    plain = simulate(sc, tmp_path / "plain")
    fast = simulate(sc, tmp_path / "fast", max_agents=100)
    assert json.loads((tmp_path / "fast" / "meta.json").read_text())["sampling"]["weight"] == 10
    assert plain["closes_by_code"]["1013"] > 0 and fast["closes_by_code"]["1013"] > 0
    assert plain["messages_indeterminate"] > 0
    assert fast["messages_indeterminate"] == pytest.approx(plain["messages_indeterminate"], rel=0.25)
    assert fast["lost_messages"] == plain["lost_messages"] == 0


@pytest.mark.parametrize("profile", ["fixed", "legacy"])
def test_a_turn_in_flight_at_a_crash_dies_with_the_server(profile):
    """The agent's turn runs in the server process: a crash takes the turns in flight with it, and
    nothing is answered while the server is down. The fixed server acked those messages, so its
    next start answers them (`answer_unanswered`): each message is answered exactly once. The
    legacy server acked nothing, and those messages go unanswered."""
    from sim.world import ModelOptions, World

    at, down = 600.0, 10.0
    sc = from_dict({
        "name": "crash-turns", "seed": 5, "duration": "20m",
        "system": {"behaviour": profile, "token_ttl": "1h"},
        "fleet": {"clients": 300, "profile": profile, "arrival": {"ramp": "1m"}, "messages": {"every": "20s"}},
        "faults": [{"at": f"{at}s", "for": f"{down}s", "kind": "server_restart", "mode": "crash"}],
    })
    agent = 4.0  # every turn takes this long: the crash lands on a few dozen of them
    cal = Calibration(handshake_servers=8, handshake_service=Dist("fixed", 0.001), token_latency=Dist("fixed", 0.0),
                      token_service=None, close_service=None, agent_latency=Dist("fixed", agent))
    sent: list[tuple] = []
    world = World(sc, cal, options=ModelOptions(keep_all_records=False), sink=lambda records: None,
                  on_sent=lambda *row: sent.append(row))
    received: list[tuple] = []
    world.server.on_received = lambda *row: received.append(row)
    world.run()
    assert not [row for row in sent if at <= row[3] < at + down]  # nothing published while down
    asked = [r for r in received if r[3] and r[2] < sc.duration - 2 * agent]  # answered on receipt, in time
    in_flight = [r for r in asked if at - agent < r[2] < at]
    assert len(in_flight) > 20
    replies = len([row for row in sent if row[3] < sc.duration - agent])
    if profile == "fixed":
        assert replies == len(asked)
        assert [row for row in sent if at + down <= row[3] < at + down + agent + 1]  # answered after the start
    else:
        assert replies == len(asked) - len(in_flight)
