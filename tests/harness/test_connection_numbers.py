"""`RunRecord.connection_chunks`: connections.csv read a chunk at a time, without its text but the
client (a code), for the counts over a fleet's table (`formats.record.passes`). It must hold the
values `connections` holds, and every figure counted from it must not depend on the chunk or block
sizes."""
from __future__ import annotations

import pandas as pd
import pytest

import formats.record.presence as presence_module
import formats.record.run as run_module
from formats.record import finalize
from formats.record.finalize import summarize
from formats.record.run import NUMBER_COLUMNS, RecordError, RunRecord
from tests.harness.synth import session, write_record


@pytest.fixture
def run_dir(tmp_path):
    events = [*session("c00000", "a", [(1, 2, 30, 1006), (31, 32, 60, 1013), (61, 62, None, None)]),
              *session("c00001", "b", [(5, None, 403, None), (6, 7, 50, 1000), (40, 41, 80, 1006)]),
              *session("c00002", "c", [(3, 4, 90, 4401), (3.5, 4.5, 20, 1006)]),
              *session("guest", "d", [(10, 11, 20, 1006)])]  # an id not of the fleet's shape
    path = write_record(tmp_path / "run", sorted(events, key=lambda r: r["t"]), duration=100.0, clients=3)
    finalize(path)
    return path


def test_the_numbers_are_the_tables_values(run_dir):
    whole, numbers = RunRecord(run_dir).connections, RunRecord(run_dir).connection_numbers()
    assert list(numbers.columns) == list(NUMBER_COLUMNS)
    assert numbers["client"].astype(str).tolist() == whole["client"].tolist()
    for column in NUMBER_COLUMNS[1:]:
        pd.testing.assert_series_equal(numbers[column], whole[column], check_dtype=False)


def test_figures_do_not_depend_on_chunks_or_blocks(run_dir, monkeypatch):
    whole = summarize(RunRecord(run_dir))
    monkeypatch.setattr(run_module, "ROWS_CHUNK", 2)
    monkeypatch.setattr(presence_module, "BLOCK_ROWS", 1)
    rec = RunRecord(run_dir)
    assert summarize(rec) == whole
    pd.testing.assert_frame_equal(rec.connection_numbers(), RunRecord(run_dir).connection_numbers())


def test_a_few_rows_are_read_whole_by_their_place(run_dir, monkeypatch):
    monkeypatch.setattr(run_module, "ROWS_CHUNK", 3)
    rec = RunRecord(run_dir)
    pd.testing.assert_frame_equal(rec.connection_rows([5, 0, 3]), rec.connections.loc[[5, 0, 3]])


def test_a_bad_cell_is_named_by_its_line_in_any_chunk(run_dir, monkeypatch):
    path = run_dir / "connections.csv"
    lines = path.read_text().splitlines()
    cells = lines[4].split(",")
    cells[2] = "soon"  # opened_s of the file's fourth row (line 5)
    lines[4] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(run_module, "ROWS_CHUNK", 2)
    with pytest.raises(RecordError, match=r"connections.csv:5: column 'opened_s'"):
        RunRecord(run_dir).connection_numbers()
