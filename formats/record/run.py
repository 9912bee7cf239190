"""Reading a run record directory: the one reader that finalize, gates, commands and reports share.

Each table is read on first use, checked for its columns and its numbers, and each JSON file for
its shape, once, here. Strict (the default: finalize, gates, commands) a hand-edited or truncated
record fails with the file, line and column, not a KeyError deep in a gate. Lenient (the report,
which is most wanted when a run went wrong) the same checks make a note in `notes` instead: a
missing or damaged file reads as absent (None), a non-numeric cell as a gap, a row without its
time is left out; only a directory holding none of the record's files is an error.
"""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

from system.errors import UsageError
from formats.record import files
from formats.record.compact import ClientCodes, nullable_integers
from formats.record.derive import ROWS_CHUNK
from formats.record.jsonl import read_jsonl
from formats.record.tables import keep_integers


class RecordError(UsageError):
    """A run record, or one of its files, that cannot be read: names the file and what was expected."""


# by table: every column of the format (what strict reading wants), the ones a lenient reader
# cannot do without (a table lacking one is left out with a note; the others are optional), the
# columns that hold numbers (every column of timeseries.csv does) and those read as text
COLUMNS = {files.CONNECTIONS: files.CONNECTION_COLUMNS, files.TIMESERIES: files.TIMESERIES_COLUMNS,
           files.LEDGER: files.LEDGER_COLUMNS}
LENIENT_COLUMNS = {files.CONNECTIONS: ("duration_s", "censored"), files.TIMESERIES: ("t",),
                   files.LEDGER: files.LEDGER_COLUMNS}
NUMERIC_COLUMNS = {
    files.CONNECTIONS: ("opened_s", "closed_s", "duration_s", "close_code", "http_status", "censored", files.WEIGHT),
    files.LEDGER: ("seq", "t"),
}
TEXT_COLUMNS = {files.CONNECTIONS: ("client", "conn", "closed_by"),
                files.LEDGER: ("client", "conversation", "msg_id", "kind")}
#: the columns of connections.csv that `RunRecord.connection_chunks` reads: what the counts need
NUMBER_COLUMNS = ("client", "opened_s", "duration_s", "close_code", "http_status", "censored", files.WEIGHT)


def present(path: Path) -> list[str]:
    """The files of a finished record (`files.FINISHED`) that the directory `path` holds."""
    return [name for name in files.FINISHED if (Path(path) / name).is_file()]


def _problem(path: Path, message: str, notes: list[str] | None) -> None:
    """Strict (`notes` is None): raise, naming the file; lenient: a note naming the file."""
    if notes is None:
        raise RecordError(f"{path}: {message}")
    notes.append(f"{path.name}: {message}")


def _gap_note(name: str, count: int, column: str) -> str:
    """The lenient note for a table's non-numeric cells in `column` (each read as a gap)."""
    return f"{name}: {count} non-numeric value(s) in column {column} read as missing"


def read_json(path: Path, expected: type = dict, notes: list[str] | None = None) -> Any:
    """The file's JSON, checked to be of the `expected` top-level type (a list: of objects); None
    when the file is absent. A damaged or hand-edited file fails with its name, not an
    AttributeError deep in a gate; given `notes` (lenient), it is a note there and reads as None."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return _problem(path, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})", notes)
    except (OSError, UnicodeDecodeError) as exc:
        return _problem(path, f"unreadable ({exc})", notes)
    if value is not None and not isinstance(value, expected):
        kind = "an object {...}" if expected is dict else "a list [...]"
        return _problem(path, f"expected {kind} at the top level, got {type(value).__name__}", notes)
    if expected is list and not all(isinstance(item, dict) for item in value or []):
        return _problem(path, "expected a list of objects {...}", notes)
    return value


class RunRecord:
    """One run record directory. `lenient`: problems are notes in `notes` (see the module doc) and
    `scenario.json` is not required; the views derived from the scenario (`end`, `clients`, `faults`
    ...) still need it."""

    def __init__(self, run_dir: str | Path, lenient: bool = False):
        self.dir = Path(run_dir)
        self.lenient = lenient
        self.notes: list[str] = []
        #: tables a lenient pass found unreadable part way (its note says why): what the pass read
        #: of one is a part of the table, which the reader leaves out as the whole table's reading does
        self.unreadable: set[str] = set()
        if not self.dir.exists():
            raise RecordError(f"{self.dir}: not a directory (it does not exist; expected a run record directory)")
        if not self.dir.is_dir():
            raise RecordError(f"{self.dir}: is a file, expected a run record directory")
        found = present(self.dir)
        if lenient and not found:
            raise RecordError(f"{self.dir}: no run-record files found (expected some of {', '.join(files.FINISHED)})")
        if not lenient and files.SCENARIO not in found:
            inside = sorted(c.name for c in self.dir.iterdir() if (c / files.SCENARIO).is_file())
            hint = f" (the run records are in its folders {', '.join(inside[:6])}{', ...' if len(inside) > 6 else ''})" \
                if inside else ""
            raise RecordError(f"{self.dir}: not a run record: {files.SCENARIO} is missing{hint}")
        if lenient:
            ledgers = (files.LEDGER, files.LEDGER_SUMMARY)  # a sampled simulation writes only the summary
            self.notes = [f"{name}: missing" for name in files.FINISHED if name not in found
                          and not (name in ledgers and set(ledgers) & set(found))]
        self._memo: dict[str, Any] = {}

    @property
    def _notes(self) -> list[str] | None:
        """Where a problem goes: the notes when lenient, else nowhere (it raises)."""
        return self.notes if self.lenient else None

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """A value derived from this record, computed once (several gates share one ledger check)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def path(self, name: str) -> Path:
        return self.dir / name

    def has(self, name: str) -> bool:
        return (self.dir / name).exists()

    def document(self, name: str, expected: type = dict) -> Any:
        """The JSON of the record's file `name` (see `read_json`), read once; None when absent."""
        return self.memo(f"file:{name}", lambda: read_json(self.dir / name, expected, self._notes))

    @cached_property
    def scenario(self) -> dict:
        doc = self.document(files.SCENARIO)
        if not isinstance(doc, dict) or "duration" not in doc:
            raise RecordError(f"{self.path(files.SCENARIO)}: expected the resolved scenario with a 'duration'")
        return doc

    @cached_property
    def meta(self) -> dict:
        return self.document(files.META) or {}

    @property
    def engine(self) -> str:
        return str(self.meta.get("engine", "unknown"))

    @property
    def profile(self) -> str:
        """The fleet's profile (`legacy`, `fixed`, or its base when it changes single fixes)."""
        fleet = self.scenario.get("fleet") or {}
        profile = self.meta.get("profile") or fleet.get("profile") or "fixed"
        return str(profile.get("base", "fixed")) if isinstance(profile, dict) else str(profile)

    @property
    def end(self) -> float:
        """When observation ended, in scenario seconds (the duration, unless the engine says otherwise)."""
        return float(self.meta.get("end_s") or self.scenario["duration"])

    @property
    def truncated(self) -> str | None:
        """Why observation stopped before the scenario's end (an interrupted or stopped run), else None:
        what lies beyond `end` was never observed."""
        duration = float(self.scenario["duration"])
        if self.meta.get(files.META_INCOMPLETE):
            return str(self.meta[files.META_INCOMPLETE])
        if self.end < duration:
            return f"the record ends at {self.end:g} s of {duration:g} s"
        return None

    @property
    def time_scale(self) -> float:
        return float(self.meta.get("time_scale") or self.scenario.get("time_scale") or 1.0)

    @cached_property
    def clients(self) -> int:
        if self.meta.get("clients"):
            return int(self.meta["clients"])
        fleet = self.scenario.get("fleet", {})
        if self.engine == "simulate":
            return int(fleet.get("sim_clients") or fleet.get("clients") or 0)
        return int(fleet.get("clients") or 0)

    @cached_property
    def faults(self) -> list[dict]:
        faults = self.document(files.FAULTS, list)
        if faults is None:
            faults = [{"at": f["at"], "for": f.get("for"), "kind": f["kind"], "params": {}, "targets": None}
                      for f in self.scenario.get("faults", [])]
        return faults

    @cached_property
    def fault_windows(self) -> list[dict]:
        """Each fault of `faults.json` with `start_s` and `end_s`: when it was in force.

        The engine's measured times (`summary.json` `fault_windows`, from its `fault_start` /
        `fault_stop` records) where the record has them, else the schedule. An instantaneous
        fault is in force while it is being applied (a restart until the server is back).
        """
        measured = {int(w["index"]): w for w in self.summary.get("fault_windows", [])}
        out = []
        for i, f in enumerate(self.faults):
            at, length = float(f["at"]), f.get("for")
            start, end = at, at + float(length or 0.0)
            w = measured.get(i)
            if w is not None and w.get("start_s") is not None:
                start = float(w["start_s"])
                if w.get("stop_s") is not None:
                    end = float(w["stop_s"]) + float(w.get("lifted_s") or 0.0)
                elif length is None:
                    end = start + float(w.get("applied_s") or 0.0)
                else:
                    end = start + float(length)
            out.append({**f, "start_s": start, "end_s": max(end, start)})
        return out

    def _csv(self, name: str) -> pd.DataFrame | None:
        """The table `name`: columns checked, numbers coerced, integer columns `Int64`; None when
        absent (or, lenient, damaged: with a note)."""
        path = self.dir / name
        if self._header(name) is None:
            return None
        try:
            df = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS.get(name, ())})
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, ValueError) as exc:
            return _problem(path, f"not a readable CSV table ({exc})", self._notes)
        return keep_integers(self._numbers(path, df), name)

    def _header(self, name: str) -> list[str] | None:
        """The columns of the table `name`, checked to be those the format needs; None when absent
        (or, lenient, damaged: with a note)."""
        path = self.dir / name
        if not path.exists():
            if self.lenient:
                return None
            raise RecordError(f"{path}: missing (run `finalize` on the record first)")
        try:
            header = list(pd.read_csv(path, nrows=0).columns)
        except pd.errors.EmptyDataError:
            return _problem(path, "empty file (expected a header row)", self._notes)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, ValueError) as exc:
            return _problem(path, f"not a readable CSV table ({exc})", self._notes)
        columns = (LENIENT_COLUMNS if self.lenient else COLUMNS)[name]
        missing = [c for c in columns if c not in header]
        if missing:
            return _problem(path, f"missing column(s) {', '.join(missing)} (expected {', '.join(columns)})",
                            self._notes)
        return header

    def _numbers(self, path: Path, df: pd.DataFrame, gaps: dict[str, int] | None = None) -> pd.DataFrame:
        """Numbers where the format has numbers, and a time in every row that has a `t`. Strict, the
        first bad cell is an error naming its line; lenient, a bad cell becomes a gap and a row
        without its time is left out, each with a note, rather than one bad value stopping the report.
        `gaps` (lenient, a chunk of a table): the bad cells are counted there by column instead, for
        one note per column once the whole table has been read, as for a table read whole."""
        name = path.name
        for col in [c for c in df.columns if name == files.TIMESERIES or c in NUMERIC_COLUMNS.get(name, ())]:
            if df[col].dtype.kind in "biuf":
                continue
            values = pd.to_numeric(df[col], errors="coerce")
            bad = (values.isna() & df[col].notna()).to_numpy().nonzero()[0]
            if bad.size:
                if not self.lenient:
                    raise RecordError(f"{path}:{df.index[bad[0]] + 2}: column {col!r}: expected a number, "
                                      f"got {df[col].iloc[bad[0]]!r}")
                if gaps is None:
                    self.notes.append(_gap_note(name, int(bad.size), col))
                else:
                    gaps[col] = gaps.get(col, 0) + int(bad.size)
            df[col] = values
        if "t" in df.columns:
            untimed = df["t"].isna().to_numpy().nonzero()[0]
            if untimed.size:
                if not self.lenient:
                    raise RecordError(f"{path}:{untimed[0] + 2}: column 't': expected a time, the cell is empty")
                self.notes.append(f"{name}: {untimed.size} row(s) without a time (column t) left out")
                df = df[df["t"].notna()].reset_index(drop=True)
                if (df["t"] % 1 == 0).all():  # whole seconds read as the intact file's integers, not floats
                    df["t"] = df["t"].astype("int64")
        return df

    @cached_property
    def connections(self) -> pd.DataFrame | None:
        """Strict: never None. Lenient: None when absent or damaged. Always with a `weight` column
        (the clients each row stands for: 1 where the file has none), which every count honours.
        Every column, the text ones as Python strings: counts over a fleet's table read
        `connection_chunks` (`formats.record.passes`)."""
        df = self._csv(files.CONNECTIONS)
        return None if df is None else self._connection_values(df)

    def _connection_values(self, df: pd.DataFrame) -> pd.DataFrame:
        df["censored"] = df["censored"].fillna(0).astype(int)
        df[files.WEIGHT] = self._weights(df[files.WEIGHT]) if files.WEIGHT in df.columns else 1
        return df

    def connection_rows(self, rows: pd.Index | list[int]) -> pd.DataFrame:
        """The rows of connections.csv at these places in the file (`connection_chunks`' index),
        in this order, every column as `connections` reads it: the few a gate names as examples,
        read a chunk at a time rather than the whole table."""
        path = self.path(files.CONNECTIONS)
        wanted = pd.Index(rows)
        chunks = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS[files.CONNECTIONS]}, chunksize=ROWS_CHUNK)
        found = pd.concat([c[c.index.isin(wanted)] for c in chunks])  # (a file with a header has a chunk)
        return self._connection_values(keep_integers(self._numbers(path, found.loc[wanted]), files.CONNECTIONS))

    def connection_chunks(self, names: tuple[str, ...], clients: ClientCodes | None = None) -> Iterator[pd.DataFrame]:
        """connections.csv a chunk of rows at a time, only the columns `names` (of `NUMBER_COLUMNS`),
        checked and valued as `connections` reads them, but compact: `client` as integer codes from
        `clients` (one `ClientCodes` a pass, which then names the ids), the codes nullable `Int32`,
        `censored` and `weight` the smallest integers that hold them (`weight` 1 where the file has
        none). The index is the row's place in the file (`connection_rows` reads a few rows whole).
        A fleet's table has tens of millions of rows: a reader keeps what it counts, never the
        table, and never its text. For strict readers: nothing when the table is absent (lenient).

        Lenient (the report), every column is read and checked, a chunk at a time, and the notes are
        made once the table has been read through, so that they are those of `connections`: one a
        column of bad numbers, whichever columns are asked for; a row that does not parse makes the
        table `unreadable`, its chunks so far a part to leave out."""
        path = self.path(files.CONNECTIONS)
        header = self._header(files.CONNECTIONS)
        if header is None:
            return
        usecols = None if self.lenient else [c for c in names if c in header]
        clients = ClientCodes() if clients is None else clients
        gaps: dict[str, int] | None = {} if self.lenient else None  # lenient: bad numbers by column
        held: list[str] | None = [] if self.lenient else None  # lenient: the weight's note, made after those
        quiet = False
        try:
            for chunk in pd.read_csv(path, usecols=usecols, dtype={c: str for c in TEXT_COLUMNS[files.CONNECTIONS]},
                                     chunksize=ROWS_CHUNK):
                chunk = self._numbers(path, chunk, gaps)
                yield pd.DataFrame({name: self._compact(chunk, name, clients, quiet, held) for name in names},
                                   index=chunk.index, copy=False)
                quiet = quiet or (files.WEIGHT in names and files.WEIGHT in chunk.columns
                                  and not (chunk[files.WEIGHT].to_numpy(float) >= 1).all())
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, ValueError) as exc:
            self.unreadable.add(files.CONNECTIONS)
            _problem(path, f"not a readable CSV table ({exc})", self._notes)
            return
        if gaps is not None and held is not None:  # lenient
            self.notes += [_gap_note(path.name, gaps[c], c) for c in header if c in gaps] + held

    def _compact(self, chunk: pd.DataFrame, name: str, clients: ClientCodes, quiet: bool,
                 held: list[str] | None) -> np.ndarray | pd.Series:
        """The column `name` of a chunk as `connection_chunks` hands it on; `quiet`, `held`: see `_weights`."""
        if name not in chunk.columns:  # only `weight` may be absent
            return np.ones(len(chunk), np.int8)
        values = chunk[name]
        if name == "client":
            return clients(values)
        if name in ("close_code", "http_status"):
            return nullable_integers(values)
        if name == "censored":
            return pd.to_numeric(values.fillna(0).astype(int), downcast="integer").to_numpy()
        if name == files.WEIGHT:
            return pd.to_numeric(self._weights(values, quiet, held), downcast="integer")
        return values.to_numpy(float)

    def _weights(self, column: pd.Series, quiet: bool = False, held: list[str] | None = None) -> np.ndarray:
        """The clients each row stands for: a whole number >= 1; another value is an error
        (strict) or, lenient, read as 1, the first with a note (none when `quiet`; in `held`, when
        given, for the reader of a whole table to make after its other notes)."""
        weight = column.to_numpy(float)
        good = (weight >= 1) & (weight == np.floor(weight))  # 2.5 clients is no count (NaN fails both)
        if not good.all() and not quiet:
            bad = int((~good).nonzero()[0][0])
            _problem(self.path(files.CONNECTIONS), f"line {column.index[bad] + 2}: column {files.WEIGHT!r}: expected a "
                     f"whole number >= 1, got {column.iloc[bad]!r} (read as 1)", self._notes if held is None else held)
        return np.where(good, np.nan_to_num(weight, nan=1.0), 1.0).astype(int)

    @cached_property
    def timeseries(self) -> pd.DataFrame | None:
        """Strict: never None. Lenient: None when absent or damaged."""
        return self._csv(files.TIMESERIES)

    @cached_property
    def ledger(self) -> pd.DataFrame | None:
        """None without a ledger (a sampled simulation keeps only `ledger_summary.json`)."""
        return self._csv(files.LEDGER) if self.has(files.LEDGER) else None

    @cached_property
    def ledger_summary(self) -> dict | None:
        summary = self.document(files.LEDGER_SUMMARY)
        missing = [k for k in files.LEDGER_SUMMARY_KEYS if k not in summary] if summary is not None else []
        if missing:  # lenient: the keys it has are still counts, the missing ones are gaps
            _problem(self.path(files.LEDGER_SUMMARY), f"missing key(s) {', '.join(missing)} "
                     f"(expected {', '.join(files.LEDGER_SUMMARY_KEYS)})", self._notes)
        return summary

    @cached_property
    def scrapes(self) -> list[dict]:
        path = self.dir / files.SCRAPES
        if not path.exists():
            return []
        out = list(read_jsonl(path, lambda s: float(s["t"]), "a JSON object with a numeric 't' and 'samples'"))
        out.sort(key=lambda s: float(s["t"]))
        return out

    @cached_property
    def summary(self) -> dict:
        return self.document(files.SUMMARY) or {}
