"""`formats.record.derive.read_events`: events.jsonl in one order whatever its size. A file larger
than a chunk is sorted a chunk at a time and merged, and must come out exactly as one stable sort
of the whole file (by time, one instant's records by client, each client's own order kept), leave
nothing behind, and name a bad line wherever it is."""
from __future__ import annotations

import json
import random

import pytest

from formats.record.derive import in_order, read_events
from system.errors import UsageError


def write_events(path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture
def shuffled() -> list[dict]:
    """Records out of order, with many of one instant (clients and a client's own sequence)."""
    rng = random.Random(7)
    records = [{"t": float(rng.randrange(40)), "client": f"c{rng.randrange(6):05d}", "kind": "open", "n": n}
               for n in range(1000)]
    records += [{"t": 3, "client": "c00001", "kind": "close", "n": 1000 + k} for k in range(30)]  # an int time
    rng.shuffle(records)
    return records


@pytest.mark.parametrize("chunk", [1, 7, 100, 999, 1030, 5000])
def test_a_file_sorted_in_chunks_comes_out_as_one_stable_sort(tmp_path, shuffled, chunk):
    path = tmp_path / "events.jsonl"
    write_events(path, shuffled)
    expected = in_order([dict(r) for r in shuffled])
    assert list(read_events(path, chunk=chunk)) == expected
    ns = [r["n"] for r in expected]
    assert ns != sorted(ns)  # the order is the sort's, not the writing's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"]  # the spilled chunks are gone


def test_kinds_are_chosen_before_sorting(tmp_path, shuffled):
    path = tmp_path / "events.jsonl"
    write_events(path, shuffled)
    closes = list(read_events(path, kinds=frozenset({"close"}), chunk=4))
    assert closes == [r for r in in_order([dict(r) for r in shuffled]) if r["kind"] == "close"]
    # one client's instant keeps the file's order
    assert [r["n"] for r in closes] == [r["n"] for r in shuffled if r["kind"] == "close"] != list(range(1000, 1030))


def test_a_bad_line_in_a_later_chunk_is_named_and_nothing_is_left_behind(tmp_path, shuffled):
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(r) for r in shuffled]
    lines[500] = '{"t": "soon", "client": "c00000", "kind": "open"}'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UsageError, match=r"events.jsonl:501: expected a JSON object with a numeric 't'"):
        list(read_events(path, chunk=100))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"]
