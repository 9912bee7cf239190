"""Short real emulations: a real server, proxy and client workers on loopback, seconds of wall time.

One run (module fixture) with a graceful restart and a WebSocket close injected by the
proxy into half the clients; the tests read its record the way `finalize` and the gates do.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from harness.emulate.engine import emulate, plan_digest
from harness.emulate.plan import make_plan
from formats.record import finalize
from formats.scenario import from_dict

RESTART_AT, CLOSE_AT, CLOSE_FOR = 10.0, 24.0, 4.0

DOC = {
    "name": "engine-test", "seed": 11, "duration": "40s", "time_scale": 4,
    "system": {"behaviour": "fixed", "token_ttl": "15m", "heartbeat": {"interval": "5s", "timeout": "5s"}},
    "fleet": {"clients": 12, "profile": "fixed", "arrival": {"ramp": "3s"}, "messages": {"every": "6s"},
              "network": {"drops": {"every": "60s"}, "offline": {"every": "60s", "for": "3s"}}},
    "faults": [
        {"at": f"{RESTART_AT:g}s", "kind": "server_restart", "mode": "graceful"},
        {"at": f"{CLOSE_AT:g}s", "for": f"{CLOSE_FOR:g}s", "kind": "ws_close", "code": 4000, "fraction": 0.5},
    ],
    "gates": [],
}


def events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("emulate") / "run"
    emulate(from_dict(DOC), out, progress=lambda snapshot: None)
    return out


def test_record_is_complete(run):
    for name in ("scenario.json", "meta.json", "events.jsonl", "sent.csv", "faults.json", "scrapes.jsonl"):
        assert (run / name).stat().st_size > 0, name
    meta = json.loads((run / "meta.json").read_text())
    assert meta["engine"] == "emulate" and meta["seed"] == 11 and meta["time_scale"] == 4
    assert meta["host"]["cpus"] >= 1 and meta["host"]["fd_limit"] > 0
    assert meta["self_check"]["workers"] and "load_generator_bottleneck" in meta["self_check"]
    assert meta["topology"]["server_restarts"] == 1 and len(meta["topology"]["server_pids"]) == 2
    assert 10.0 <= meta["wall_time_s"] < 60.0
    ev = events(run)
    assert [e["t"] for e in ev] == sorted(e["t"] for e in ev)
    assert all(0.0 <= e["t"] <= 40.0 + 4 * 5 for e in ev)  # scenario seconds, not wall
    clients = {e["client"] for e in ev if e["kind"] == "open"}
    assert clients == {f"c{i:05d}" for i in range(12)}


def test_sent_log_is_the_servers_and_messages_arrive(run):
    rows = (run / "sent.csv").read_text().splitlines()
    assert rows[0] == "conversation,msg_id,seq,t"
    convs = {r.split(",")[0] for r in rows[1:]}
    # each client's own conversation, its id not guessable from the client's
    assert convs and {c.rsplit("-", 1)[0] for c in convs} <= {f"c{i:05d}" for i in range(12)}
    assert all(len(c.rsplit("-", 1)[1]) == 16 for c in convs)
    summary = finalize(run)
    assert summary["messages_displayed"] > 0
    assert summary["lost_messages"] == 0 and summary["duplicates_displayed"] == 0
    # the other direction, through a restart, drops, offline periods and server closes
    assert summary["user_messages_sent"] > 0 and summary["user_messages_indeterminate"] < summary["user_messages_sent"]
    assert summary["lost_user_messages"] == 0 and summary["duplicated_user_messages"] == 0


def open_at(ev: list[dict], t: float) -> set[str]:
    """Clients with a socket open at scenario time t."""
    live: set[tuple[str, int]] = set()
    for e in ev:
        if e["t"] >= t:
            break
        if e["kind"] == "open":
            live.add((e["client"], e["sock"]))
        elif e["kind"] == "close":
            live.discard((e["client"], e["sock"]))
    return {c for c, _ in live}


def test_graceful_restart_closes_everyone_with_1012_and_they_come_back(run):
    ev = events(run)
    restarted = {e["client"] for e in ev if e["kind"] == "close" and e["code"] == 1012}
    connected_before = open_at(ev, RESTART_AT)
    # on the wall clock a client's own planned drop or offline period can land in the instant of
    # the restart (a busy machine moves it by a fraction of a second): its socket then ends with
    # that fault, not with 1012; every other client connected before the restart gets 1012
    own_fault = {e["client"] for e in ev if RESTART_AT - 1 <= e["t"] <= RESTART_AT + 8
                 and (e["kind"] == "offline" or (e["kind"] == "close" and e["code"] != 1012))}
    assert len(restarted) >= 8 and connected_before - own_fault <= restarted
    assert all(RESTART_AT <= e["t"] < RESTART_AT + 8 for e in ev if e["kind"] == "close" and e["code"] == 1012)
    back = {e["client"] for e in ev if e["kind"] == "open" and RESTART_AT < e["t"] < CLOSE_AT}
    assert back >= connected_before


def test_proxy_ws_close_hits_exactly_the_targeted_half(run):
    faults = json.loads((run / "faults.json").read_text())
    targets = set(next(f for f in faults if f["kind"] == "ws_close")["targets"])
    assert len(targets) == 6
    hit = {e["client"] for e in events(run) if e["kind"] == "close" and e["code"] == 4000}
    assert hit and hit <= targets
    assert len(hit) >= 4  # a client in back-off when the fault starts may dodge it


def test_scrapes_are_parsed_server_metrics_in_scenario_time(run):
    lines = [json.loads(l) for l in (run / "scrapes.jsonl").read_text().splitlines()]
    assert len(lines) >= 3
    assert [l["t"] for l in lines] == sorted(l["t"] for l in lines)
    names = {s["name"] for l in lines for s in l["samples"]}
    assert "ws_connections_active" in names
    rss = [s["value"] for l in lines for s in l["samples"] if s["name"] == "process_resident_memory_bytes"]
    assert len(rss) == len(lines) and all(10e6 < v < 2e9 for v in rss)  # the server's own RSS
    peak = max(s["value"] for l in lines for s in l["samples"] if s["name"] == "ws_connections_active")
    assert 6 <= peak <= 12


def test_same_seed_same_schedule_and_draws(run, tmp_path):
    """A second real run with the same seed: the same fault schedule and client draws."""
    meta1 = json.loads((run / "meta.json").read_text())
    doc = {**DOC, "duration": "12s", "faults": [DOC["faults"][0]]}
    again = tmp_path / "again"
    emulate(from_dict(doc), again, progress=lambda s: None)
    meta2 = json.loads((again / "meta.json").read_text())
    assert meta2["plan_sha256"] == plan_digest(make_plan(from_dict(doc)))
    # the first run's digest, recomputed: a run records what it drew
    assert meta1["plan_sha256"] == plan_digest(make_plan(from_dict(DOC)))
    assert json.loads((again / "faults.json").read_text()) == \
        [f.to_dict() for f in make_plan(from_dict(doc)).faults]
    first_attempt = defaultdict(float)
    for e in events(again):
        if e["kind"] == "attempt" and e["client"] not in first_attempt:
            first_attempt[e["client"]] = e["t"]
    plan = make_plan(from_dict(doc))
    for c in plan.clients:  # arrivals honoured: nobody connects before its drawn start
        assert first_attempt[c.client_id] >= c.start_at - 0.05 * 4


def test_drops_and_offline_periods_happen_as_planned(run):
    """Each planned drop is an abnormal close by the network; each offline period is an
    offline/online pair at its planned times (scenario seconds, a wall tick of slack)."""
    plan = make_plan(from_dict(DOC))
    ev = events(run)
    slack = 0.5 * 4  # half a wall second at ×4: a busy shared machine wakes late
    for c in plan.clients:
        mine = [e for e in ev if e["client"] == c.client_id]
        offs = [e["t"] for e in mine if e["kind"] == "offline"]
        ons = [e["t"] for e in mine if e["kind"] == "online"]
        assert len(offs) == len(ons) == len(c.offline)
        for (start, end), off, on in zip(c.offline, offs, ons):
            assert abs(off - start) <= slack and abs(on - end) <= slack
    planned_drops = sum(len(c.drops) for c in plan.clients)
    assert planned_drops >= 3  # the seed gives this run a few drops
    network_closes = [e for e in ev if e["kind"] == "close" and e["by"] == "network" and e["code"] == 1006]
    offline_starts = sum(len(c.offline) for c in plan.clients)
    # a drop or going offline while connected is a 1006 by the network; nothing else makes one here
    assert 1 <= len(network_closes) <= planned_drops + offline_starts
