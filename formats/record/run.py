"""Reading a run record directory: the one loader that finalize, gates and commands share.

Each table is read on first use and checked for its columns, so a hand-edited or
truncated record fails with the file and the missing column, not a KeyError.
"""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from system.errors import UsageError
from formats.record import files
from formats.record.jsonl import read_jsonl
from formats.record.tables import keep_integers


# Columns that hold numbers, checked when read (every column of timeseries.csv does).
NUMERIC_COLUMNS = {
    files.CONNECTIONS: ("opened_s", "closed_s", "duration_s", "close_code", "http_status", "censored"),
    files.LEDGER: ("seq", "t"),
}


class RunRecord:
    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        if not self.dir.exists():
            raise UsageError(f"{self.dir}: not a run record directory (it does not exist)")
        if not self.dir.is_dir():
            raise UsageError(f"{self.dir}: is a file, expected a run record directory")
        if not (self.dir / files.SCENARIO).exists():
            inside = sorted(c.name for c in self.dir.iterdir() if (c / files.SCENARIO).is_file())
            hint = f" (the run records are in its folders {', '.join(inside[:6])}{', ...' if len(inside) > 6 else ''})" \
                if inside else ""
            raise UsageError(f"{self.dir}: not a run record: {files.SCENARIO} is missing{hint}")
        self._memo: dict[str, Any] = {}

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """A value derived from this record, computed once (several gates share one ledger check)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def path(self, name: str) -> Path:
        return self.dir / name

    def has(self, name: str) -> bool:
        return (self.dir / name).exists()

    def _json(self, name: str, default: Any = None, expected: type = dict) -> Any:
        """The file's JSON, checked to be of the `expected` top-level type (a hand-edited or damaged
        file fails with its name, not an AttributeError deep in a gate)."""
        path = self.dir / name
        if not path.exists():
            return default
        try:
            value = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}: not valid JSON: {exc}") from None
        if value is not None and not isinstance(value, expected):
            kind = "an object {...}" if expected is dict else "a list [...]"
            raise UsageError(f"{path}: expected {kind} at the top level, got {type(value).__name__}")
        if expected is list and not all(isinstance(item, dict) for item in value or []):
            raise UsageError(f"{path}: expected a list of objects {{...}}")
        return value

    @cached_property
    def scenario(self) -> dict:
        doc = self._json(files.SCENARIO)
        if not isinstance(doc, dict) or "duration" not in doc:
            raise UsageError(f"{self.path(files.SCENARIO)}: expected the resolved scenario with a 'duration'")
        return doc

    @cached_property
    def meta(self) -> dict:
        return self._json(files.META, {}) or {}

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
        faults = self._json(files.FAULTS, expected=list)
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

    def _csv(self, name: str, columns: tuple[str, ...], dtype: dict | None = None) -> pd.DataFrame:
        path = self.dir / name
        if not path.exists():
            raise UsageError(f"{path}: missing (run `finalize` on the record first)")
        try:
            df = pd.read_csv(path, dtype=dtype)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
            raise UsageError(f"{path}: not a readable CSV table: {exc}") from None
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise UsageError(f"{path}: missing column(s) {missing}; expected {list(columns)}")
        numeric = [c for c in df.columns if name == files.TIMESERIES or c in NUMERIC_COLUMNS.get(name, ())]
        for col in numeric:
            if df[col].dtype.kind in "biuf":
                continue
            values = pd.to_numeric(df[col], errors="coerce")
            bad = (values.isna() & df[col].notna()).to_numpy().nonzero()[0]
            if bad.size:
                row = int(bad[0])
                raise UsageError(f"{path}:{row + 2}: column {col!r}: expected a number, got {df[col].iloc[row]!r}")
            df[col] = values
        return keep_integers(df, name)

    @cached_property
    def connections(self) -> pd.DataFrame:
        df = self._csv(files.CONNECTIONS, files.CONNECTION_COLUMNS, {"client": str, "conn": str, "closed_by": str})
        df["censored"] = df["censored"].fillna(0).astype(int)
        return df

    @cached_property
    def timeseries(self) -> pd.DataFrame:
        return self._csv(files.TIMESERIES, files.TIMESERIES_COLUMNS)

    @cached_property
    def ledger(self) -> pd.DataFrame | None:
        if not self.has(files.LEDGER):
            return None
        return self._csv(files.LEDGER, files.LEDGER_COLUMNS,
                         {"client": str, "conversation": str, "msg_id": str, "kind": str})

    @cached_property
    def ledger_summary(self) -> dict | None:
        summary = self._json(files.LEDGER_SUMMARY)
        if summary is not None:
            missing = [k for k in files.LEDGER_SUMMARY_KEYS if k not in summary]
            if missing:
                raise UsageError(f"{self.path(files.LEDGER_SUMMARY)}: missing key(s) {missing}; "
                                 f"expected {list(files.LEDGER_SUMMARY_KEYS)}")
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
        return self._json(files.SUMMARY, {}) or {}
