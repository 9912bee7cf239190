"""Verdicts on what a run observed: a fraction of the fleet counts turned-away clients against it and
never exceeds 1; a phase beyond the end of an incomplete record, or tied to a fault that never
started, is unknown; tables stop at the last observation."""
from __future__ import annotations

import pytest

from formats.gates import FAIL, PASS, UNKNOWN
from formats.record import RunRecord, finalize
from formats.record.writer import merge_meta
from tests.harness.synth import session, write_record
from tests.harness.test_gates import judge

RECOVERY = {"metric": "active_connections", "stat": "min_fraction", "op": ">=", "value": 0.99}


def test_turned_away_clients_count_against_the_fleet(tmp_path):
    """Four clients; two are shed with 1013 at every try (a few ms each) and never get in. Before
    the restart only two were connected, so the old reference (the level before the fault) read 1.0."""
    events = []
    for i in range(2):
        events += session(f"c{i}", f"k{i}", [(0, 1, 100, 1012), (105, 105, None, None)])
    for i in range(2, 4):
        events += session(f"c{i}", f"k{i}", [(t, t, t + 0.01, 1013) for t in range(0, 200, 20)])
    out = write_record(tmp_path / "r", events, duration=200, clients=4, faults=[{"at": 100, "kind": "server_restart"}])
    summary = finalize(out)
    v = judge(RunRecord(out), **RECOVERY, phase={"after": "server_restart", "within": "30s"})
    assert (v.verdict, v.observed) == (FAIL, pytest.approx(0.5))
    assert v.provenance["where"]["worst"]["fleet_expected"] == 4.0
    assert summary["clients_never_connected"] == 2 and summary["turned_away"] == 20
    from rich.console import Console

    from formats.gates.report import verdict_table

    console = Console(record=True, width=200)
    console.print(verdict_table([v], "t"))
    assert "2 of 4 clients connected at 2m09s" in console.export_text()  # the end of the 30-s window after 100 s


def test_a_client_with_two_sockets_counts_once(tmp_path):
    """A legacy client opens a new socket per token change and leaves the old one open: two sockets,
    one client. The fraction of the fleet stays at most 1 (the socket count read 2.0)."""
    events = session("c0", "k0", [(0, 1, 50, 1012), (55, 55, None, None)])
    events += session("c0", "k0", [(56, 56, None, None)], first_sock=9)[1:]
    out = write_record(tmp_path / "r", events, duration=120, clients=1, faults=[{"at": 50, "kind": "server_restart"}])
    finalize(out)
    rec = RunRecord(out)
    assert rec.timeseries["active"].iloc[70] == 2
    v = judge(rec, **RECOVERY, phase={"after": "server_restart", "within": "20s"})
    assert (v.verdict, v.observed) == (PASS, 1.0)


def _interrupted(tmp_path, last_event: float, fault_at: float):
    events = []
    for i in range(3):
        events += session(f"c{i}", f"k{i}", [(0, 1, None, None)])
    events.append({"t": last_event, "client": "c0", "kind": "backoff", "delay": 1.0, "reason": "x"})
    out = write_record(tmp_path / "r", events, duration=1800, clients=3, faults=[{"at": fault_at, "kind": "token_expiry"}])
    merge_meta(out, {"incomplete": "interrupted (Ctrl-C) after 22 s of wall time"})
    finalize(out)
    return RunRecord(out)


def test_a_fault_the_interrupted_run_never_reached_is_unknown(tmp_path):
    rec = _interrupted(tmp_path, last_event=649.2, fault_at=720)
    assert len(rec.timeseries) == 650 and rec.end == 650.0  # not padded to the 1800 s duration
    v = judge(rec, **RECOVERY, phase={"after": "token_expiry", "within": "2m"})
    assert v.verdict == UNKNOWN
    assert "never started" in v.provenance["reason"] and "interrupted" in v.provenance["reason"]
    # a whole-run count stays decided on what was observed
    assert judge(rec, metric="http_403", stat="count", op="==", value=0).verdict == PASS


def test_a_window_beyond_the_end_of_an_incomplete_record_is_unknown(tmp_path):
    rec = _interrupted(tmp_path, last_event=649.2, fault_at=600)
    v = judge(rec, **RECOVERY, phase={"after": "token_expiry", "within": "2m"})
    assert v.verdict == UNKNOWN and "beyond the end of the record at 650s" in v.provenance["reason"]
    inside = judge(rec, **RECOVERY, phase={"after": "token_expiry", "within": "30s"})
    assert inside.verdict == PASS


def test_a_complete_record_still_clips_its_last_window(tmp_path):
    events = []
    for i in range(3):
        events += session(f"c{i}", f"k{i}", [(0, 1, None, None)])
    out = write_record(tmp_path / "r", events, duration=700, clients=3, faults=[{"at": 650, "kind": "token_expiry"}])
    finalize(out)
    v = judge(RunRecord(out), **RECOVERY, phase={"after": "token_expiry", "within": "2m"})
    assert v.verdict == PASS


def test_a_record_without_a_single_attempt_is_no_evidence_of_a_fleet_away(tmp_path):
    out = write_record(tmp_path / "r", [], duration=300, clients=200, faults=[{"at": 100, "kind": "token_expiry"}])
    finalize(out)
    v = judge(RunRecord(out), **RECOVERY, phase={"after": "token_expiry", "within": "2m"})
    assert v.verdict == UNKNOWN and "nothing was observed" in v.provenance["reason"]
