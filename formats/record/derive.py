"""Deriving the run record's tables from the raw event records.

Conventions (README "Run records", "Client event records"):
- A connection is one `(client, sock)`; a row exists when the attempt got an answer
  (`open`, or `handshake_failed` with an HTTP status).
- A connection is censored when the observation ends before it does: it is still
  open at the end of the run, or it is closed by or after the harness stopping its
  client (a `stop` harness record, or a client close with reason "stop", which is
  what the client policy's `Stop` sends: at the end of a run or when load-spike
  clients leave). Its duration is then the time observed so far.
- A reconnect is an attempt that is not the first of its client's session; a session
  starts at the client's first attempt and again after each `give_up` (a manual refresh).
- A message the server sent belongs to the client whose records name its conversation (a
  `start {conversation}` harness record, or `received` / `displayed`), else to the client whose
  id is the conversation id.
- A duplicate is a `displayed` record for a message the same client already displayed.
- Harness records `fault_start` / `fault_stop` `{index, fault, applied_in_s}` say when a fault
  was really applied and lifted (a server restart takes wall time, which compression makes long);
  they become `summary.json`'s `fault_windows`, and gate phases follow them.
- A model whose agents stand for `weight` clients each (`derive(..., weight=w)`) counts each agent
  record `weight` times. Its clients do not act in lockstep: an attempt that followed a jittered
  backoff (`backoff {jitter: [low, high, cap]}`) stands for `weight` independent draws from that
  law, so the attempt and its answer (open or failed handshake) of the agent's k-th client are
  counted at the agent's time plus (draw k - the agent's own delay); draw 0 is the agent's own.
  A first attempt follows the client's arrival on the ramp likewise: an `arrival {delay, jitter:
  [0, ramp, ramp]}` record says the agent arrived `delay` into a ramp over which each of its clients
  arrives uniformly on its own.
  What ends a connection (a restart, a drop, an expiry) does not follow the jitter, so closes stay
  at the agent's time, and a client's connection is active from its own open to that close.
"""
from __future__ import annotations

import heapq
import marshal
import math
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from system.errors import UsageError
from formats.record.files import CONNECTION_COLUMNS, LEDGER_COLUMNS, SENT, SENT_COLUMNS, TIMESERIES_COLUMNS, WEIGHT
from formats.record.jsonl import read_jsonl
from formats.record.tables import keep_integers

ABNORMAL = 1006  # a close without a code (network loss) counts as 1006, as a browser reports it
ROWS_CHUNK = 100_000  # connection rows handed to a Derivation's `on_rows` at a time
EVENTS_CHUNK = 200_000  # records `read_events` sorts in memory at a time
STOP_REASON = "stop"  # the reason the client policy gives the closes of its Stop: censoring, not an end


def read_events(path: Path, kinds: frozenset[str] | None = None, chunk: int | None = None) -> Iterator[dict]:
    """Every record of `events.jsonl`, sorted by `t` (workers interleave), records of one instant by
    client (each client's own order kept), so the tables do not depend on which of several clients
    the loop served first; a bad line names its number (a cut-off last line is left out:
    `formats.record.jsonl`).

    A file's records are sorted `chunk` (default `EVENTS_CHUNK`) at a time, each sorted chunk
    spilled to a temporary file, and the chunks merged as they are read (`heapq.merge` takes equal
    keys in chunk order, and each chunk's sort is stable, so the order is the one stable sort of
    the whole file): memory holds one chunk, not the file's records. Those are millions for an
    exact model day of a few thousand legacy clients, and their dicts took gigabytes. A file of
    one chunk is sorted in memory. `kinds`: only the records of these kinds (chosen before sorting)."""
    records = read_jsonl(path, _check_event, "a JSON object with a numeric 't', a 'client' and a 'kind'")
    if kinds is not None:
        records = (r for r in records if r["kind"] in kinds)
    size = EVENTS_CHUNK if chunk is None else chunk
    first = in_order(list(islice(records, size)))
    if len(first) < size:
        yield from first
        return
    with tempfile.TemporaryDirectory(prefix=".events-sorting-", dir=path.parent) as spill:  # room as the file had
        runs = [_spill(Path(spill) / "0", first)]
        del first
        while block := in_order(list(islice(records, size))):
            runs.append(_spill(Path(spill) / str(len(runs)), block))
        yield from heapq.merge(*(_unspill(run) for run in runs), key=_order)


def _order(r: dict) -> tuple[float, str]:
    return float(r["t"]), str(r["client"])


def _spill(path: Path, records: list[dict]) -> Path:
    """Sorted records to a file of marshalled values (faster to write and read back than JSON)."""
    with path.open("wb") as f:
        for r in records:
            marshal.dump(r, f)
    return path


def _unspill(path: Path) -> Iterator[dict]:
    with path.open("rb") as f:
        while True:
            try:
                yield marshal.load(f)
            except EOFError:
                return


def in_order(events: list[dict]) -> list[dict]:
    """`events` sorted in place as `read_events` orders a file, so tables derived in memory (the model
    above its exact limit, whose calm clients tally their refreshes when they wake, with earlier
    times) equal those `finalize` derives from the same records written out."""
    events.sort(key=_order)
    return events


def _check_event(record: Any) -> None:
    float(record["t"])
    record["client"], record["kind"]


@dataclass(slots=True)
class _Conn:
    client: str
    conn: str
    opened: float | None = None
    closed: float | None = None
    code: int | None = None
    by: str | None = None
    status: int | None = None
    censored_at: float | None = None
    shifts: np.ndarray | None = None  # per client of a weighted agent: its attempt's offset from the agent's


@dataclass
class Derived:
    connections: pd.DataFrame | None            # connections.csv's columns; None: streamed (Derivation)
    timeseries: list[dict]
    ledger_displayed: list[dict]
    conversation_owner: dict[str, str]
    clients: set[str]                           # every client that attempted a connection
    fault_windows: list[dict]                   # when each fault was applied and lifted, measured


def derive(events: Iterable[dict], end: float, *, weight: int = 1, rng: np.random.Generator | None = None) -> Derived:
    """The tables from `events` (in `in_order`) up to `end`. `weight` > 1: each client of the records
    is a model agent standing for `weight` clients (every count but displays is of clients; `rng`
    draws the spread of their jittered attempts, see the module doc)."""
    d = Derivation(end, weight=weight, rng=rng)
    for r in events:
        d.feed(r)
    return d.result(end)


class Derivation:
    """`derive` one record at a time, so a model can hand its records over as it makes them (in
    `in_order`) instead of holding them all. What it keeps is per second, per client and per
    connection still open: a connection's row is settled once the records have moved past the
    instant it ended (a `stop` of that instant still censors it), and goes to `on_rows` in chunks
    when given (connections.csv streamed to disk, `ConnectionWriter`), so a fleet's millions of
    rows are never all in memory. Rows come in the order the connections ended (a failed handshake:
    when it was answered), then those still open at the end in the order they were attempted.
    `horizon`: no record is later (the scenario's end); `result(end)` may end earlier."""

    def __init__(self, horizon: float, *, weight: int = 1, rng: np.random.Generator | None = None,
                 on_rows: Callable[[list[tuple]], None] | None = None) -> None:
        self.horizon, self.weight, self.rng = horizon, weight, rng
        self.spread = weight > 1 and rng is not None
        self.conns: dict[tuple[str, str], _Conn] = {}  # not yet settled, in the order first seen
        self.on_rows = on_rows
        self.rows: list[tuple] = []  # settled rows not yet handed to `on_rows`
        self._ending: list[_Conn] = []  # ended at the current instant: settled when the records move on
        self._now = -math.inf
        self.stop_at: dict[str, float] = {}
        self.owner: dict[str, str] = {}
        self.clients: set[str] = set()
        self.faults: dict[int, dict] = {}
        self.bins = max(1, math.ceil(horizon))
        self.series: dict[str, list[int]] = {c: [0] * self.bins for c in TIMESERIES_COLUMNS
                                             if c not in ("t", "active", "closes")}
        self.in_session: set[str] = set()
        self.shown: set[tuple[str, str, str]] = set()
        self.displayed_rows: list[dict] = []
        self.jittered: dict[str, tuple[float, list[float]]] = {}  # client -> its pending backoff's (delay, law)
        self.active_delta = [0] * (self.bins + 1)
        self.closes_by_code: dict[int, list[int]] = defaultdict(lambda: [0] * self.bins)

    def _count(self, column: str, t: float, c: _Conn | None = None) -> None:
        """`weight` clients' worth at `t`, or one per client at its own shifted time."""
        end, bins = self.horizon, self.bins
        if c is None or c.shifts is None:
            if t < end:
                self.series[column][min(int(t), bins - 1) if t >= 0 else 0] += self.weight
            return
        column_bins = self.series[column]
        for u in c.shifts:
            if t + u < end:
                column_bins[min(int(t + u), bins - 1)] += 1

    def _conn(self, r: dict) -> _Conn:
        key = (str(r["client"]), str(r.get("sock")))
        c = self.conns.get(key)
        if c is None:
            c = self.conns[key] = _Conn(*key)
        return c

    def feed(self, r: dict) -> None:
        t = float(r["t"])
        if t > self._now:
            if self._ending:  # (rows reach a chunk only in a settle, which hands them on)
                self._settle(math.inf)
            self._now = t
        kind = r.get("kind")
        client = str(r.get("client", ""))
        if "conversation" in r and client and r["conversation"] is not None:
            self.owner.setdefault(str(r["conversation"]), client)
        count = self._count
        if kind == "attempt":
            c = self._conn(r)
            self.clients.add(client)
            law = self.jittered.pop(client, None)
            if law is not None and self.spread:
                c.shifts = _shifts(self.rng, self.weight, *law)
            count("attempts", t, c)
            if client in self.in_session:
                count("reconnects", t, c)
            self.in_session.add(client)
        elif kind == "backoff" or kind == "arrival":
            if r.get("jitter") is not None:
                self.jittered[client] = (float(r["delay"]), r["jitter"])
            else:
                self.jittered.pop(client, None)
        elif kind == "give_up":
            self.in_session.discard(client)
            count("manual_refreshes", t)
        elif kind == "open":
            c = self._conn(r)
            c.opened = t
            count("opens", t, c)
        elif kind == "close":
            c = self._conn(r)
            if c.closed is None:
                c.closed, c.by = t, r.get("by")
                c.code = int(r["code"]) if r.get("code") is not None else ABNORMAL
                if c.by == "client" and r.get("reason") == STOP_REASON:
                    c.censored_at = t
                self._ending.append(c)
        elif kind == "handshake_failed":
            status = r.get("status")
            if status is None:  # refused or timed out: no answer, no row
                c = self.conns.get((client, str(r.get("sock"))))
                if c is not None and c.opened is None:
                    del self.conns[(client, c.conn)]
            else:
                c = self._conn(r)
                c.opened, c.status = t, int(status)
                if int(status) == 403:
                    count("http_403", t, c)
                self._ending.append(c)
        elif kind in ("fault_start", "fault_stop") and r.get("index") is not None:
            w = self.faults.setdefault(int(r["index"]), {"index": int(r["index"]), "kind": r.get("fault"),
                                                        "start_s": None, "applied_s": 0.0,
                                                        "stop_s": None, "lifted_s": 0.0})
            took = float(r.get("applied_in_s") or 0.0)
            if kind == "fault_start":
                w["start_s"], w["applied_s"] = t, took
            else:
                w["stop_s"], w["lifted_s"] = t, took
        elif kind == "stop":
            self.stop_at.setdefault(client, t)
        elif kind == "displayed":
            key = (client, str(r.get("conversation")), str(r.get("msg_id")))
            if t < self.horizon:
                b = min(int(t), self.bins - 1) if t >= 0 else 0
                self.series["displayed"][b] += 1
                if key in self.shown:
                    self.series["duplicates"][b] += 1
            self.shown.add(key)
            self.displayed_rows.append({"kind": "displayed", "client": client, "conversation": r.get("conversation"),
                                        "msg_id": r.get("msg_id"), "seq": r.get("seq"), "t": t})

    def _settle(self, end: float) -> None:
        """Settle the connections that ended before the current instant (all of them at `end`)."""
        ending, self._ending = self._ending, []
        if end < math.inf:
            ending = list(self.conns.values())
        for c in ending:
            if self.conns.get((c.client, c.conn)) is c:
                del self.conns[(c.client, c.conn)]
                row = _settle(c, self.stop_at, end, self.bins, self.weight, self.active_delta, self.closes_by_code)
                if row is not None:
                    self.rows.append(row)
        if self.on_rows is not None and (len(self.rows) >= ROWS_CHUNK or end < math.inf):
            self.on_rows(self.rows)
            self.rows = []

    def result(self, end: float) -> Derived:
        """The tables of what was fed, observed up to `end` (at most the horizon); `connections` is
        None when the rows went to `on_rows`."""
        bins = max(1, math.ceil(end))
        self._settle(end)
        closes_by_code = self.closes_by_code
        active, level = [], 0
        for delta in self.active_delta[:bins]:
            level += delta
            active.append(level)
        codes = sorted(closes_by_code)
        series = self.series
        timeseries = []
        for i in range(bins):
            row: dict[str, Any] = {"t": i}
            for col in TIMESERIES_COLUMNS[1:]:
                if col == "active":
                    row[col] = active[i]
                elif col == "closes":
                    row[col] = sum(closes_by_code[c][i] for c in codes)
                else:
                    row[col] = series[col][i]
            for code in codes:
                row[f"closes_{code}"] = closes_by_code[code][i]
            timeseries.append(row)
        faults = self.faults
        windows = [faults[i] for i in sorted(faults) if faults[i]["start_s"] is not None]
        rows = None if self.on_rows is not None else pd.DataFrame.from_records(self.rows, columns=list(CONNECTION_COLUMNS))
        return Derived(rows, timeseries, self.displayed_rows, self.owner, self.clients, windows)


def _shifts(rng: np.random.Generator, weight: int, delay: float, law: list[float]) -> np.ndarray:
    """Offsets of a weighted agent's clients from its own attempt: 0 for the agent, then `weight` - 1
    independent draws of min(cap, U(low, high)) minus the agent's own delay."""
    low, high, cap = (float(x) for x in law)
    others = np.minimum(cap, rng.uniform(low, high, weight - 1)) - delay
    return np.concatenate(([0.0], others))


def _settle(c: _Conn, stop_at: dict[str, float], end: float, bins: int, weight: int, active_delta: list[int],
            closes_by_code: dict[int, list[int]]) -> tuple | None:
    """A connection's row of connections.csv (None: the attempt got no answer before `end`), its
    change of `active` and its close, counted. `end` is infinite for one settled while the run goes
    on (it ended before the records' current instant, so before any end)."""
    if c.opened is None or c.opened >= end:
        return None  # no answer to the attempt (refused or timed-out TCP connect), or after the run: no row
    if c.status is not None:
        return c.client, c.conn, c.opened, None, None, None, None, c.status, 0
    horizon = min(stop_at.get(c.client, end), end, c.censored_at if c.censored_at is not None else end)
    censored = c.closed is None or c.closed >= horizon
    closed = min(horizon, c.closed if c.closed is not None else horizon) if censored else c.closed
    closed = max(closed, c.opened)
    if c.shifts is None:
        active_delta[min(int(c.opened), bins)] += weight
        if closed < end:
            active_delta[min(int(closed), bins)] -= weight
    else:  # each client from its own open (never after the close) to the agent's close
        ended = closed < end
        for u in c.shifts:
            start = min(c.opened + u, closed)
            if start < end:
                active_delta[min(int(start), bins)] += 1
                if ended:
                    active_delta[min(int(closed), bins)] -= 1
    if not censored and c.closed < end:
        closes_by_code[c.code][min(int(c.closed), bins - 1)] += weight
    return (c.client, c.conn, c.opened, None if censored else closed, closed - c.opened,
            None if censored else c.code, None if censored else c.by, None, int(censored))


def read_sent(path: Path) -> pd.DataFrame:
    """The server's delivery log (empty when the engine wrote none, or stopped before its header
    reached the disk: a 0-byte file is a log with no messages, not a damaged one)."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SENT_COLUMNS})
    try:
        sent = pd.read_csv(path, dtype={"conversation": str, "msg_id": str})
    except (pd.errors.ParserError, ValueError) as exc:
        raise UsageError(f"{path}: not a readable CSV table: {exc}") from None
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path}: empty; expected a header {','.join(SENT_COLUMNS)}") from None
    missing = [c for c in SENT_COLUMNS if c not in sent.columns]
    if missing:
        raise UsageError(f"{path}: missing column(s) {missing}; expected {list(SENT_COLUMNS)}")
    short = sent[list(SENT_COLUMNS)].isna().any(axis=1).to_numpy().nonzero()[0]
    if short.size:  # a cut-off line: read_csv pads it with NaN, which would pass as a message
        row = int(short[0])
        raise UsageError(f"{path}:{row + 2}: expected a value in every column ({', '.join(SENT_COLUMNS)}), "
                         f"got {','.join('' if pd.isna(v) else str(v) for v in sent.iloc[row][list(SENT_COLUMNS)])!r}")
    for col in ("seq", "t"):
        values = pd.to_numeric(sent[col], errors="coerce")
        bad = values.isna() & sent[col].notna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise UsageError(f"{path}:{row + 2}: column {col!r}: expected a number, got {sent[col].iloc[row]!r}")
        sent[col] = values
    return sent[list(SENT_COLUMNS)]


def ledger_table(run_dir: Path, derived: Derived) -> pd.DataFrame:
    """`ledger.csv`: the server's sent log attributed to the owning client, then the displays."""
    sent = read_sent(run_dir / SENT)
    owner = sent["conversation"].map(derived.conversation_owner).astype(object)
    # a conversation named after a client is that client's (the model names them so; the
    # emulation's unguessable ones are named by each client's `open` records)
    named = sent["conversation"].where(sent["conversation"].isin(derived.clients)).astype(object)
    sent.insert(0, "client", owner.fillna(named))
    sent.insert(0, "kind", "sent")
    shown = pd.DataFrame.from_records(derived.ledger_displayed, columns=list(LEDGER_COLUMNS))
    return pd.concat([sent[list(LEDGER_COLUMNS)], shown], ignore_index=True)


def write_csv(path: Path, columns: tuple[str, ...] | list[str],
              rows: list[dict] | Iterator[dict] | pd.DataFrame) -> None:
    """A table with exactly `columns`; integer columns with gaps stay integers ("4401", not "4401.0")."""
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(list(rows), columns=list(columns))
    df = df.reindex(columns=list(columns))
    keep_integers(df, path.name)
    tmp = path.with_suffix(path.suffix + ".tmp")  # whole or not at all: finalize skips a table that exists
    df.to_csv(tmp, index=False)
    tmp.replace(path)


class ConnectionWriter:
    """connections.csv written a chunk of rows at a time (a `Derivation`'s `on_rows`), each chunk as
    `write_csv` writes a whole table, so the file is the one `write_csv` would write of all the rows;
    with a `weight` column when each row stands for `weight` clients. Whole or not at all: the rows
    go to a temporary file, renamed on `close`."""

    def __init__(self, path: Path, weight: int = 1) -> None:
        self.path, self.weight = path, weight
        self._tmp = path.with_suffix(path.suffix + ".tmp")
        self._file = self._tmp.open("w", newline="")
        self._header = True

    def __call__(self, rows: list[tuple]) -> None:
        df = pd.DataFrame.from_records(rows, columns=list(CONNECTION_COLUMNS))
        if self.weight > 1:
            df[WEIGHT] = self.weight
        keep_integers(df, self.path.name)
        df.to_csv(self._file, index=False, header=self._header)
        self._header = False

    def close(self) -> None:
        self._file.close()
        self._tmp.replace(self.path)


def timeseries_columns(rows: list[dict]) -> list[str]:
    extra = sorted({k for r in rows[:1] for k in r if k.startswith("closes_")}, key=lambda k: int(k[7:]))
    return list(TIMESERIES_COLUMNS) + extra

