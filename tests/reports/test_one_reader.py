"""One run-record reader: the report reads a record through the same `RunRecord` as the gates, in
its lenient mode. A damaged record both can read gives both the same tables and the same number;
damage the gates must refuse is, for the report, a gap with a note."""
from __future__ import annotations

import pandas as pd
import pytest

from formats.gates import evaluate, parse_gate
from formats.record import RunRecord
from formats.record.files import CONNECTIONS, META, SCENARIO, TIMESERIES
from formats.record.run import RecordError
from reports import series
from reports.record import load_run
from tests.reports.synthetic import SyntheticRun, write_run

LIFETIMES = [(30, False), (60, False), (90, False), (200, False), (400, True), (45, False), (500, True)]


def _damaged(tmp_path):
    """A record whose meta.json is gone and whose connections.csv was cut off in its last row."""
    run = write_run(tmp_path / "damaged", SyntheticRun(lifetimes=LIFETIMES))
    (run / META).unlink()
    table = run / CONNECTIONS
    *rows, last = table.read_text().splitlines()
    assert last.startswith("c6,6,0,")
    table.write_text("\n".join([*rows, "c6,6,0"]))  # the process stopped while writing it
    return run


def test_the_report_and_the_gates_read_the_same_values_from_one_damaged_record(tmp_path):
    path = _damaged(tmp_path)
    report, gates = load_run(path), RunRecord(path)
    for table in ("timeseries", "ledger"):
        pd.testing.assert_frame_equal(getattr(report, table), getattr(gates, table))
    conns = gates.connections
    cut = conns.iloc[-1]  # the row cut off after its opened_s
    assert cut["opened_s"] == 0 and pd.isna(cut["duration_s"]) and cut["censored"] == 0
    assert len(conns) == len(LIFETIMES)
    lived = conns[conns["duration_s"].notna()]  # the report's lifetimes: the rows with a duration
    assert report.lifetimes.durations.tolist() == lived["duration_s"].tolist()
    assert report.lifetimes.ended.tolist() == (lived["censored"] == 0).tolist()
    assert report.lifetimes.weights.tolist() == lived["weight"].tolist()
    assert report.notes == [f"{META}: missing"]  # ledger.csv stands in for ledger_summary.json

    verdict = evaluate([parse_gate({"name": "p50", "metric": "connection_duration", "stat": "p50", "op": ">=",
                                    "value": "1s"})], gates)[0]
    assert verdict.observed == series.survival_of(report).p50
    assert verdict.provenance["connections"] == len(LIFETIMES) - 1  # the cut row has no lifetime


@pytest.mark.parametrize("name, row, damage, strict, note", [
    (CONNECTIONS, 1, {"duration_s": "long"}, r":3: column 'duration_s': expected a number, got 'long'",
     "connections.csv: 1 non-numeric value(s) in column duration_s read as missing"),
    (TIMESERIES, 4, {"t": ""}, r":6: column 't': expected a time, the cell is empty",
     "timeseries.csv: 1 row(s) without a time (column t) left out"),
])
def test_damage_the_gates_refuse_is_a_gap_with_a_note_in_the_report(tmp_path, name, row, damage, strict, note):
    path = write_run(tmp_path / "run", SyntheticRun(lifetimes=LIFETIMES))
    intact = getattr(RunRecord(path), name.removesuffix(".csv"))
    frame = pd.read_csv(path / name, dtype=str, keep_default_na=False)
    for column, value in damage.items():
        frame.loc[row, column] = value
    frame.to_csv(path / name, index=False)

    with pytest.raises(RecordError, match=f"{name}{strict}"):
        getattr(RunRecord(path), name.removesuffix(".csv"))
    report = load_run(path)
    assert note in report.notes
    if "t" in damage:  # the row is left out, every other one read as the gates read them
        pd.testing.assert_frame_equal(report.timeseries, intact.drop(index=row).reset_index(drop=True))  # dtypes too
    else:  # the cell is a gap (no lifetime), every other one read as the gates read them
        assert report.lifetimes.durations.tolist() == intact["duration_s"].drop(index=row).tolist()


def test_only_the_strict_reader_needs_the_scenario(tmp_path):
    path = write_run(tmp_path / "run", SyntheticRun(omit=(SCENARIO,)))
    with pytest.raises(RecordError, match="scenario.json is missing"):
        RunRecord(path)
    lenient = RunRecord(path, lenient=True)
    assert lenient.connections is not None and f"{SCENARIO}: missing" in lenient.notes
    with pytest.raises(RecordError, match="expected the resolved scenario"):
        lenient.end  # a view derived from the scenario still needs it
