"""Runs in which nothing (or too little) happened: finalize gives a valid summary of zeros and
nulls, and a gate on something the run never observed is `unknown`, never `pass`."""
from __future__ import annotations

import json

import pytest

from commands.cli import UsageError
from formats.gates import evaluate, parse_gates
from formats.gates.verdict import PASS, UNKNOWN
from formats.record import finalize
from tests.harness.synth import displayed, session, write_record

GATES = parse_gates([
    {"name": "nothing lost", "metric": "lost_messages", "stat": "count", "op": "==", "value": 0},
    {"name": "none reordered", "metric": "reordered_messages", "stat": "count", "op": "==", "value": 0},
    {"name": "no duplicates", "metric": "duplicates_displayed", "stat": "count", "op": "==", "value": 0},
    {"name": "no 403", "metric": "http_403", "stat": "count", "op": "==", "value": 0},
    {"name": "no 4401", "metric": 'closes{code="4401"}', "stat": "count", "op": "==", "value": 0},
    {"name": "no forced refresh", "metric": "manual_refreshes", "stat": "count", "op": "==", "value": 0},
    {"name": "no storms", "metric": "storms", "stat": "count", "op": "==", "value": 0},
    {"name": "p95 lifetime", "metric": "connection_duration", "stat": "p95", "op": ">=", "value": "1s"},
])
ATTEMPT_ONLY = [{"t": 1.0, "client": "c0", "kind": "attempt", "sock": "s1", "n": 0},
                {"t": 2.0, "client": "c0", "kind": "handshake_failed", "sock": "s1", "status": None}]


def verdicts(run_dir):
    return {v.name: v for v in evaluate(GATES, run_dir)}


def assert_valid_summary(summary: dict, run_dir) -> None:
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert summary["connections"] == 0 and summary["attempts"] in (0, 1)
    assert summary["duration_p50_s"] is None and summary["duration_p95_s"] is None
    assert summary["lost_messages"] == 0 and summary["storms"] == 0 and summary["peak_reconnects_per_s"] == 0
    assert summary["closes_by_code"] == {} and summary["storm_windows"] == []


@pytest.mark.parametrize("events", [[], ATTEMPT_ONLY], ids=["no-events", "never-connected"])
def test_a_run_that_observed_nothing_finalizes_and_its_gates_are_unknown(tmp_path, events):
    run_dir = write_record(tmp_path / "run", events, sent=[("c0", "m1", 1, 5.0)], duration=30, clients=1)
    assert_valid_summary(finalize(run_dir), run_dir)
    judged = verdicts(run_dir)
    assert {n: v.verdict for n, v in judged.items()} == {n: UNKNOWN for n in judged}
    assert "fate could be judged" in judged["nothing lost"].provenance["reason"]
    assert "got an answer" in judged["no 403"].provenance["reason"]


def test_empty_raw_files_are_an_empty_run_not_an_error(tmp_path):
    """An engine stopped before its buffers reached the disk leaves 0-byte events.jsonl and sent.csv."""
    run_dir = write_record(tmp_path / "run", [], duration=30, clients=3)
    (run_dir / "sent.csv").write_bytes(b"")
    summary = finalize(run_dir)
    assert_valid_summary(summary, run_dir)
    assert summary["messages_sent"] == 0 and summary["attempts"] == 0


def test_connections_without_messages(tmp_path):
    """Connected clients, no message sent: lifetimes and closes are judged, delivery is unknown."""
    events = session("c0", "c0", [(0, 1, 11, 4401), (12, 13, None, None)])
    run_dir = write_record(tmp_path / "run", events, duration=30, clients=1)
    summary = finalize(run_dir)
    assert (summary["connections"], summary["messages_sent"], summary["lost_messages"]) == (2, 0, 0)
    judged = verdicts(run_dir)
    assert judged["no 4401"].verdict != UNKNOWN and judged["no 4401"].observed == 1
    assert judged["no 403"].verdict == PASS and judged["no storms"].verdict == PASS
    for name in ("nothing lost", "none reordered", "no duplicates"):
        assert judged[name].verdict == UNKNOWN, name


def test_judged_messages_decide_the_delivery_gates(tmp_path):
    """The same gates pass once a message's fate is known (so unknown above is not a blanket rule)."""
    events = session("c0", "c0", [(0, 1, None, None)]) + [displayed("c0", "c0", "m1", 1, 6.0)]
    run_dir = write_record(tmp_path / "run", events, sent=[("c0", "m1", 1, 5.0)], duration=30, clients=1)
    finalize(run_dir)
    judged = verdicts(run_dir)
    for name in ("nothing lost", "none reordered", "no duplicates", "no 403"):
        assert judged[name].verdict == PASS, name


def test_a_record_without_client_or_kind_names_the_line(tmp_path):
    run_dir = write_record(tmp_path / "run", [{"t": 1.0, "kind": "attempt", "sock": "s1"}], duration=30)
    with pytest.raises(UsageError, match=r"events.jsonl:1: .*'client'"):
        finalize(run_dir)


def test_a_refused_fleet_still_fails_on_what_it_did(tmp_path):
    """Nothing answered, but clients gave up: that count is evidence, so the gate fails."""
    events = ATTEMPT_ONLY + [{"t": 3.0, "client": "c0", "kind": "give_up", "reason": "max_retries"}]
    run_dir = write_record(tmp_path / "run", events, duration=30, clients=1)
    finalize(run_dir)
    judged = verdicts(run_dir)
    assert (judged["no forced refresh"].verdict, judged["no forced refresh"].observed) == ("fail", 1.0)
    assert judged["no 403"].verdict == UNKNOWN
