"""`RunRecord.connection_chunks`: connections.csv read a chunk at a time, without its text but the
client (a code), for the counts over a fleet's table (`formats.record.passes`). It must hold the
values `connections` holds, every figure counted from it must not depend on the chunk or block
sizes, and a damaged table must be named as the whole table's reading names it: strict, the file,
line and column of the first bad cell; lenient (the report), the same notes."""
from __future__ import annotations

import pandas as pd
import pytest

import formats.record.presence as presence_module
import formats.record.run as run_module
from formats.record import files, finalize, passes
from formats.record.compact import ClientCodes
from formats.record.finalize import summarize
from formats.record.ledger import connected_at_end
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


def joined(rec: RunRecord) -> pd.DataFrame:
    """Every chunk of the table's `NUMBER_COLUMNS`, the clients named by their ids again."""
    clients = ClientCodes()
    table = pd.concat(list(rec.connection_chunks(NUMBER_COLUMNS, clients)))
    return table.assign(client=clients.categorical(table["client"].to_numpy()))


def edit(path, row: int, column: str, value: str) -> None:
    """Write `value` into the cell of the table's `row` (0: the first after the header)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.loc[row, column] = value
    table.to_csv(path, index=False)


def test_the_chunks_hold_the_tables_values(run_dir):
    whole, numbers = RunRecord(run_dir).connections, joined(RunRecord(run_dir))
    assert list(numbers.columns) == list(NUMBER_COLUMNS)
    assert numbers["client"].astype(str).tolist() == whole["client"].tolist()
    for column in NUMBER_COLUMNS[1:]:
        pd.testing.assert_series_equal(numbers[column], whole[column], check_dtype=False)


def test_figures_do_not_depend_on_chunks_or_blocks(run_dir, monkeypatch):
    whole = RunRecord(run_dir)
    figures = summarize(whole), passes.counts(whole), passes.connected_at_end(whole), joined(whole)
    monkeypatch.setattr(run_module, "ROWS_CHUNK", 2)
    monkeypatch.setattr(presence_module, "BLOCK_ROWS", 1)
    rec = RunRecord(run_dir)
    assert (summarize(rec), passes.counts(rec), passes.connected_at_end(rec)) == figures[:3]
    pd.testing.assert_frame_equal(joined(rec), figures[3])


def test_the_passes_count_what_the_whole_table_holds(run_dir, monkeypatch):
    monkeypatch.setattr(run_module, "ROWS_CHUNK", 2)
    rec = RunRecord(run_dir)
    whole = rec.connections
    assert passes.counts(rec).open_s == (whole["duration_s"].fillna(0) * whole[files.WEIGHT]).sum() > 0
    assert passes.connected_at_end(rec) == connected_at_end(whole) == {"c00000": 100.0}


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
        list(RunRecord(run_dir).connection_chunks(NUMBER_COLUMNS))


@pytest.mark.parametrize("weight", ["0", "2.5", "many"])
def test_a_bad_weight_is_named_by_its_line_in_any_chunk(run_dir, monkeypatch, weight):
    path = run_dir / files.CONNECTIONS
    table = pd.read_csv(path, dtype=str, keep_default_na=False).assign(**{files.WEIGHT: "4"})
    table.loc[4, files.WEIGHT] = weight  # the fifth row: line 6, in the third chunk of two rows
    table.to_csv(path, index=False)
    monkeypatch.setattr(run_module, "ROWS_CHUNK", 2)
    expected = (r"connections.csv:6: column 'weight': expected a number" if weight == "many" else
                r"connections.csv: line 6: column 'weight': expected a whole number >= 1")
    with pytest.raises(RecordError, match=expected):
        passes.counts(RunRecord(run_dir))


def test_a_lenient_reader_notes_the_damage_as_the_whole_tables_reading_does(run_dir, monkeypatch):
    path = run_dir / files.CONNECTIONS
    pd.read_csv(path, dtype=str, keep_default_na=False).assign(**{files.WEIGHT: "1"}).to_csv(path, index=False)
    for row, column, value in [(1, "duration_s", "long"), (6, "closed_s", "x"), (5, "duration_s", "?"),
                               (3, files.WEIGHT, "0"), (7, files.WEIGHT, "-1")]:
        edit(path, row, column, value)  # bad numbers in three chunks, one in a column no count reads
    monkeypatch.setattr(run_module, "ROWS_CHUNK", 2)
    whole = RunRecord(run_dir, lenient=True)
    whole.connections
    chunked = RunRecord(run_dir, lenient=True)
    lived = passes.timed(chunked)
    assert chunked.notes == whole.notes
    assert [n.split(":")[1] for n in whole.notes if n.startswith(files.CONNECTIONS)] == [  # one a column
        " 1 non-numeric value(s) in column closed_s read as missing",
        " 2 non-numeric value(s) in column duration_s read as missing", " line 5"]  # the weight's last
    assert not chunked.unreadable
    assert lived.durations.size == whole.connections["duration_s"].notna().sum() == 6


def test_a_table_that_does_not_parse_is_unreadable_to_a_lenient_reader(run_dir, monkeypatch):
    path = run_dir / files.CONNECTIONS
    with path.open("a") as table:
        table.write("c00009,s1,1,2,1,,server,,0,surplus,cells\n")  # more cells than the header names
    monkeypatch.setattr(run_module, "ROWS_CHUNK", 2)
    whole = RunRecord(run_dir, lenient=True)
    assert whole.connections is None
    chunked = RunRecord(run_dir, lenient=True)
    passes.timed(chunked)
    assert chunked.unreadable == {files.CONNECTIONS}
    assert chunked.notes == whole.notes and "connections.csv: not a readable CSV table" in whole.notes[-1]
