"""What the readers count in connections.csv, each in one pass of `RunRecord.connection_chunks`
that keeps only what it counts: a fleet's table has tens of millions of rows, and neither the
table nor two readers' columns are ever in memory at once."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formats.record import files
from formats.record.compact import Columns
from formats.record.run import RunRecord

Intervals = list[tuple[float, float]]


@dataclass(frozen=True)
class Counts:
    """Connections by the clients they stand for (weights summed)."""

    opened: int     # connections that opened (no HTTP answer to their handshake)
    censored: int   # connections still open when observation ended
    failed: int     # handshakes answered with an HTTP status
    rows: int       # rows of the table


def counts(rec: RunRecord) -> Counts:
    return rec.memo("connection_counts", lambda: _counts(rec))


def _counts(rec: RunRecord) -> Counts:
    opened = censored = failed = rows = 0
    for chunk in rec.connection_chunks(("http_status", "censored", files.WEIGHT)):
        weight = chunk[files.WEIGHT].to_numpy().astype(np.int64)
        answered = chunk["http_status"].notna().to_numpy(bool)
        opened += int(weight[~answered].sum())
        failed += int(weight[answered].sum())
        censored += int(np.dot(chunk["censored"].to_numpy().astype(np.int64), weight))
        rows += len(chunk)
    return Counts(opened, censored, failed, rows)


@dataclass(frozen=True)
class Lifetimes:
    """The lifetimes of connections that opened (in a phase), in the table's order."""

    durations: np.ndarray
    ended: np.ndarray    # False: censored
    weights: np.ndarray
    rows: np.ndarray | None  # each one's row in the file, when asked for


def lifetimes(rec: RunRecord, intervals: Intervals | None = None, with_rows: bool = False) -> Lifetimes:
    """Connections that opened, those opened within `intervals` when given (`opened_s` in [a, b))."""
    columns = Columns()
    for chunk in rec.connection_chunks(("opened_s", "duration_s", "http_status", "censored", files.WEIGHT)):
        keep = (chunk["http_status"].isna() & chunk["duration_s"].notna()).to_numpy(bool)
        if intervals is not None:
            opened = chunk["opened_s"].to_numpy(float)
            in_phase = np.zeros(len(chunk), dtype=bool)
            for a, b in intervals:
                in_phase |= (opened >= a) & (opened < b)
            keep = keep & in_phase
        columns.add("durations", chunk["duration_s"].to_numpy(float)[keep])
        columns.add("ended", chunk["censored"].to_numpy()[keep] == 0)
        columns.add("weights", chunk[files.WEIGHT].to_numpy()[keep])
        columns.add("rows", chunk.index.to_numpy()[keep] if with_rows else np.empty(0, np.int64))
    return Lifetimes(*(columns.join(name) for name in ("durations", "ended", "weights")),
                     columns.join("rows") if with_rows else None)
