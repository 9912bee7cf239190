"""finalize() on hand-written records: every derived number checked against a hand count."""
from __future__ import annotations

import csv
import json

import pytest

from commands.cli import UsageError
from formats.record import RunRecord, finalize
from tests.harness.synth import displayed, session, write_record


def story():
    events = (
        session("c0", "k0", [(0, 1, 11, 4401), (12, None, 403, None), (14, 15, None, None)])
        + session("c1", "k1", [(2, 2, 42, None), (43, 44, None, None)])
        + [{"t": 60.0, "client": "c1", "kind": "stop"},
           {"t": 60.0, "client": "c1", "kind": "close", "sock": "s2", "code": 1000, "by": "client"}]
        + session("c2", "k2", [(5, 5, 20, 1012)])
        + [{"t": 21.0, "client": "c2", "kind": "give_up", "reason": "retries"},
           {"t": 50.0, "client": "c2", "kind": "attempt", "sock": "s9", "n": 0},
           {"t": 50.0, "client": "c2", "kind": "open", "sock": "s9"}]
        + [displayed("c0", "k0", "m1", 1, 21), displayed("c0", "k0", "m2", 2, 31), displayed("c0", "k0", "m2", 2, 32),
           displayed("c0", "k0", "zz", 9, 33), displayed("c2", "k2", "p3", 3, 60), displayed("c2", "k2", "p2", 2, 61)]
        + session("c3", "k3", [(100.2, 100.5, None, None)])    # after the end of the run: not observed
    )
    sent = [("k0", "m1", 1, 20), ("k0", "m2", 2, 30), ("k0", "m3", 3, 40), ("k0", "m4", 4, 98),
            ("k1", "n1", 1, 50), ("k1", "n2", 2, 58), ("k2", "p1", 1, 45), ("k2", "p2", 2, 55), ("k2", "p3", 3, 56)]
    return events, sent


@pytest.fixture
def record(tmp_path):
    events, sent = story()
    out = write_record(tmp_path / "run", events, sent, duration=100, clients=3)
    return out, finalize(out)


def rows(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_connections_table(record):
    out, _ = record
    table = {(r["client"], r["conn"]): r for r in rows(out / "connections.csv")}
    assert set(table) == {("c0", "s1"), ("c0", "s2"), ("c0", "s3"), ("c1", "s1"), ("c1", "s2"), ("c2", "s1"),
                          ("c2", "s9")}
    assert (table["c0", "s1"]["duration_s"], table["c0", "s1"]["close_code"], table["c0", "s1"]["censored"]) == \
        ("10.0", "4401", "0")
    assert (table["c0", "s2"]["http_status"], table["c0", "s2"]["duration_s"]) == ("403", "")
    assert (table["c0", "s3"]["censored"], table["c0", "s3"]["duration_s"], table["c0", "s3"]["closed_s"]) == \
        ("1", "85.0", "")
    assert table["c1", "s1"]["close_code"] == "1006"          # no code: abnormal
    # the harness stopping c1 censors its open connection at the stop, it did not "close"
    assert (table["c1", "s2"]["censored"], table["c1", "s2"]["duration_s"], table["c1", "s2"]["close_code"]) == \
        ("1", "16.0", "")


def test_timeseries_counts_per_second(record):
    out, _ = record
    ts = {int(r["t"]): r for r in rows(out / "timeseries.csv")}
    assert len(ts) == 100
    assert [int(ts[t]["active"]) for t in (0, 1, 2, 5, 11, 15, 20, 42, 44, 50, 60, 99)] == \
        [0, 1, 2, 3, 2, 3, 2, 1, 2, 3, 2, 2]
    assert (ts[11]["closes_4401"], ts[42]["closes_1006"], ts[20]["closes_1012"]) == ("1", "1", "1")
    assert sum(int(r["closes"]) for r in ts.values()) == 3
    assert "closes_1000" not in ts[0]                          # the stop's close is censoring, not a close
    assert sum(int(r["reconnects"]) for r in ts.values()) == 3   # after give_up a new session starts
    assert sum(int(r["attempts"]) for r in ts.values()) == 7
    assert (ts[12]["http_403"], ts[21]["manual_refreshes"], ts[32]["duplicates"]) == ("1", "1", "1")


def test_summary(record):
    _, s = record
    assert s["connections"] == 6 and s["handshake_failures"] == 1 and s["censored_connections"] == 3
    # KM by hand: 10 (5/6), 15 (x4/5 = 2/3), 16 censored, 40 (x2/3 = 4/9 <= .5), 50 and 85 censored
    assert s["duration_p50_s"] == 40.0
    assert s["duration_p95_s"] is None and s["duration_observed_max_s"] == 85.0
    assert s["closes_by_code"] == {"1006": 1, "1012": 1, "4401": 1}
    assert (s["http_403"], s["manual_refreshes"], s["reconnect_attempts"], s["attempts"]) == (1, 1, 3, 7)
    assert s["per_day"]["http_403"] == 864.0
    for key in ("engine", "scenario", "clients", "connections", "duration_p50_s", "duration_p95_s",
                "reconnect_attempts", "closes_by_code", "http_403", "duplicates_displayed", "lost_messages",
                "manual_refreshes", "storms", "peak_reconnects_per_s"):
        assert key in s
    assert json.loads((record[0] / "summary.json").read_text()) == s


def test_ledger_jepsen_style(record):
    _, s = record
    # lost: m3 (c0 connected to the end), n1 (c1 connected until its stop), p1 (sent while c2 was away)
    # indeterminate: m4 and n2 were sent within the in-flight window before observation ended
    assert (s["messages_sent"], s["messages_displayed"], s["lost_messages"], s["messages_indeterminate"]) == \
        (9, 5, 3, 2)
    assert (s["duplicates_displayed"], s["reordered_messages"], s["unexpected_messages"]) == (1, 1, 1)


def test_ledger_table_attributes_sent_messages_to_their_client(record):
    out, _ = record
    ledger = rows(out / "ledger.csv")
    assert {(r["conversation"], r["client"]) for r in ledger if r["kind"] == "sent"} == \
        {("k0", "c0"), ("k1", "c1"), ("k2", "c2")}
    assert sum(r["kind"] == "displayed" for r in ledger) == 6


def test_a_close_from_the_policys_stop_is_censoring(tmp_path):
    events = session("c0", "k0", [(0, 1, None, None)]) + [
        {"t": 40.0, "client": "c0", "kind": "close", "sock": "s1", "code": 1000, "reason": "stop", "by": "client"}]
    out = write_record(tmp_path / "r", events, duration=100, clients=1)
    s = finalize(out)
    assert (s["censored_connections"], s["closes_by_code"], s["duration_observed_max_s"]) == (1, {}, 39.0)


def test_messages_to_a_client_that_gave_up_are_never_lost(tmp_path):
    events = session("c0", "k0", [(0, 1, 10, None)]) + [{"t": 11.0, "client": "c0", "kind": "give_up"}]
    s = finalize(write_record(tmp_path / "r", events, [("k0", "m1", 1, 20)], duration=100, clients=1))
    assert (s["lost_messages"], s["messages_indeterminate"]) == (0, 1)


def test_a_conversation_named_after_a_client_is_its_own(tmp_path):
    events = [e for e in session("c7", "c7", [(0, 1, None, None)]) if e["kind"] != "start"]
    s = finalize(write_record(tmp_path / "r", events, [("c7", "m1", 1, 20), ("zz", "m2", 1, 20)],
                              duration=100, clients=1))
    assert (s["lost_messages"], s["messages_indeterminate"]) == (1, 1)   # c7's is lost, zz's has no client


def test_engine_written_tables_are_kept(tmp_path):
    events, sent = story()
    out = write_record(tmp_path / "run", events, sent, duration=100, clients=3)
    (out / "connections.csv").write_text(
        "client,conn,opened_s,closed_s,duration_s,close_code,closed_by,http_status,censored\n"
        "x,1,0,7,7,1000,client,,0\nx,2,7,,93,,,,1\n")
    (out / "ledger_summary.json").write_text(json.dumps({"sent": 4, "displayed": 4, "lost": 0, "duplicates": 0,
                                                          "reordered": 0}))
    s = finalize(out)
    assert s["connections"] == 2 and s["duration_p50_s"] == 7.0
    assert "7,7,1000" in (out / "connections.csv").read_text()
    assert s["lost_messages"] == 0 and s["messages_sent"] == 4
    assert not (out / "ledger.csv").exists()
    assert s["http_403"] == 1   # the timeseries was still derived from events


def test_missing_raw_material_is_a_clear_error(tmp_path):
    out = write_record(tmp_path / "run", [], duration=10)
    (out / "events.jsonl").unlink()
    with pytest.raises(UsageError, match=r"cannot derive .*connections.csv.*events.jsonl is missing"):
        finalize(out)


def test_bad_event_line_names_its_number(tmp_path):
    out = write_record(tmp_path / "run", session("c0", "k0", [(0, 1, None, None)]), duration=10)
    with (out / "events.jsonl").open("a") as f:
        f.write('{"client": "c0", "kind": "open"}\n')
    with pytest.raises(UsageError, match=r"events\.jsonl:4: expected a JSON object with a numeric 't'"):
        finalize(out)


def test_not_a_run_record(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        RunRecord(tmp_path / "nothing")
    with pytest.raises(UsageError, match="scenario.json is missing"):
        RunRecord(tmp_path)


def test_integer_columns_load_as_integers_with_gaps_as_na(tmp_path):
    """Close codes and HTTP statuses stay 4401 and 403 in pandas (nullable Int64), not 4401.0."""
    import pandas as pd

    from formats.record import RunRecord
    from formats.record.tables import read_table
    from tests.harness.synth import session, write_record

    out = write_record(tmp_path / "r", session("c0", "k0", [(0, None, 403, None), (1, 2, 30, 4401),
                                                            (31, 31, None, None)]), duration=100, clients=1)
    finalize(out)
    for frame in (RunRecord(out).connections, read_table(out / "connections.csv")):
        assert str(frame["close_code"].dtype) == "Int64" and str(frame["http_status"].dtype) == "Int64"
        assert frame["close_code"].dropna().tolist() == [4401] and frame["http_status"].dropna().tolist() == [403]
        assert frame["close_code"].isna().sum() == 2
    series = RunRecord(out).timeseries
    assert all(str(series[c].dtype) == "Int64" for c in series.columns if c != "t")
    assert "4401.0" not in RunRecord(out).connections.to_csv()
    assert pd.api.types.is_float_dtype(series["t"]) or pd.api.types.is_integer_dtype(series["t"])
