"""What the readers count in connections.csv, each in one pass of `RunRecord.connection_chunks`
that keeps only what it counts: a fleet's table has tens of millions of rows, and neither the
table nor two readers' columns are ever in memory at once."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd

from formats.record import files, ledger
from formats.record.compact import ClientCodes, Columns
from formats.record.run import RunRecord

Intervals = list[tuple[float, float]]


@dataclass(frozen=True)
class Counts:
    """Connections by the clients they stand for (weights summed)."""

    opened: int     # connections that opened (no HTTP answer to their handshake)
    censored: int   # connections still open when observation ended
    failed: int     # handshakes answered with an HTTP status
    rows: int       # rows of the table
    open_s: float   # seconds the connections were open (a row without a duration: none), what the
                    # server's keepalive pings are counted per hour of


def counts(rec: RunRecord) -> Counts:
    return rec.memo("connection_counts", lambda: _counts(rec))


def _counts(rec: RunRecord) -> Counts:
    opened = censored = failed = rows = 0
    open_s = 0.0
    for chunk in rec.connection_chunks(("duration_s", "http_status", "censored", files.WEIGHT)):
        weight = chunk[files.WEIGHT].to_numpy().astype(np.int64)
        answered = chunk["http_status"].notna().to_numpy(bool)
        opened += int(weight[~answered].sum())
        failed += int(weight[answered].sum())
        censored += int(np.dot(chunk["censored"].to_numpy().astype(np.int64), weight))
        open_s += float((chunk["duration_s"].fillna(0) * chunk[files.WEIGHT]).sum())
        rows += len(chunk)
    return Counts(opened, censored, failed, rows, open_s)


def connected_at_end(rec: RunRecord) -> dict[str, float]:
    """`formats.record.ledger.connected_at_end`, what both ledger checks judge a message by, from
    one pass that keeps only the connections open when observation ended (about one a client)."""
    return rec.memo("connected_at_end", lambda: ledger.connected_at_end(_still_open(rec)))


def _still_open(rec: RunRecord) -> pd.DataFrame:
    """The rows of connections still open at the end (`censored`, no HTTP status), clients by id."""
    names = ("client", "opened_s", "duration_s", "http_status", "censored")
    clients = ClientCodes()
    kept = [chunk[(chunk["censored"] == 1) & chunk["http_status"].isna()]
            for chunk in rec.connection_chunks(names, clients)]
    table = pd.concat(kept) if kept else pd.DataFrame({name: np.empty(0) for name in names})
    return table.assign(client=clients.categorical(table["client"].to_numpy(np.int32)))


@dataclass(frozen=True)
class Lifetimes:
    """The lifetimes of connections that opened (in a phase), in the table's order."""

    durations: np.ndarray
    ended: np.ndarray    # False: censored
    weights: np.ndarray
    rows: np.ndarray | None  # each one's row in the file, when asked for


def lifetimes(rec: RunRecord, intervals: Intervals | None = None, with_rows: bool = False) -> Lifetimes:
    """Connections that opened, those opened within `intervals` when given (`opened_s` in [a, b))."""
    chunks = rec.connection_chunks(("opened_s", "duration_s", "http_status", "censored", files.WEIGHT))
    return _gather(((chunk, _opened(chunk, intervals)) for chunk in chunks), with_rows)


def timed(rec: RunRecord) -> Lifetimes:
    """Every row with a duration, from the columns a lenient record must have (`duration_s`,
    `censored`) and the weights: the report's survival plot, which reads a damaged record too. In
    a record as written a failed handshake has no duration: these are the rows of `lifetimes`."""
    chunks = rec.connection_chunks(("duration_s", "censored", files.WEIGHT))
    return _gather(((chunk, chunk["duration_s"].notna().to_numpy(bool)) for chunk in chunks), False)


def _opened(chunk: pd.DataFrame, intervals: Intervals | None) -> np.ndarray:
    """Which rows of the chunk opened (no HTTP status, a duration), within `intervals` when given."""
    keep = (chunk["http_status"].isna() & chunk["duration_s"].notna()).to_numpy(bool)
    if intervals is not None:
        opened = chunk["opened_s"].to_numpy(float)
        in_phase = np.zeros(len(chunk), dtype=bool)
        for a, b in intervals:
            in_phase |= (opened >= a) & (opened < b)
        keep = keep & in_phase
    return keep


def _gather(kept: Iterator[tuple[pd.DataFrame, np.ndarray]], with_rows: bool) -> Lifetimes:
    """The lifetimes of the rows each chunk keeps, joined."""
    columns = Columns()
    for chunk, keep in kept:
        columns.add("durations", chunk["duration_s"].to_numpy(float)[keep])
        columns.add("ended", chunk["censored"].to_numpy()[keep] == 0)
        columns.add("weights", chunk[files.WEIGHT].to_numpy()[keep])
        columns.add("rows", chunk.index.to_numpy()[keep] if with_rows else np.empty(0, np.int64))
    return Lifetimes(*(columns.join(name) for name in ("durations", "ended", "weights")),
                     columns.join("rows") if with_rows else None)
