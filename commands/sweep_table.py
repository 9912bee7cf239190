"""The files of a sweep directory, written as results arrive, so that a sweep stopped by Ctrl-C, a
crash or a kill leaves a readable partial table, and a re-run with the same `--out` resumes it.

- `sweep.csv`: one row per finished run (a grid point under one seed), appended and flushed the
  moment its record is on disk, in the order the runs finish. A row is only written once its
  record is whole, so a row names a run that needs no re-running.
- `sweep.json` (README "Sweeps"): the header naming the sweep (`IDENTITY`) and the finished points
  in grid order, rewritten whole (write and rename) at the start and on every arrival, and marked
  `incomplete` until the grid is done, so a report drawn mid-way (or after a kill) says so.

Why the header holds a fingerprint of every planned point's scenario and gates: the same file name
and grid over an edited scenario would otherwise resume into a table mixing two systems.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any, Iterable

from formats.record.writer import write_atomic
from system.errors import UsageError

CSV = "sweep.csv"
JSON = "sweep.json"
IDENTITY = ("scenario", "vary", "replications", "base", "gates_file", "calibration", "agents", "fingerprint")


def fingerprint(points: Iterable[Any]) -> str:
    """A digest of every planned point: its parameters, scenario (seed included) and gates."""
    text = json.dumps([[p.params, p.scenario.to_dict(), [repr(g) for g in p.gates]] for p in points],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Table:
    """`sweep.csv` with `columns`, and `sweep.json` with `header`, in `out`. Opening a directory
    that holds a sweep with the same header keeps its finished rows (`done`: their `run_dir`s);
    a different one is a usage error naming what differs."""

    def __init__(self, out: Path, header: dict[str, Any], columns: list[str]) -> None:
        self.out, self.header, self.columns = out, _plain(header), columns
        self.done: set[str] = set()
        kept: list[str] = []
        old = self._previous()
        if old is not None:
            self._check(old)
            kept = self._finished_rows()
        out.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(columns)
        write_atomic(out / CSV, buf.getvalue() + "".join(kept))  # without a torn last line or a lost record
        self._csv = (out / CSV).open("a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._csv, columns, lineterminator="\n")

    def _previous(self) -> dict | None:
        path = self.out / JSON
        if not path.exists():
            return None
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"--out {self.out}: {path} is not a sweep table ({exc}); choose another directory") \
                from None
        if not isinstance(doc, dict):
            raise UsageError(f"--out {self.out}: {path} is not a sweep table; choose another directory")
        return doc

    def _check(self, old: dict) -> None:
        differs = [f"{key}: {old.get(key)!r} there, {self.header.get(key)!r} now" for key in IDENTITY
                   if key != "fingerprint" and old.get(key) != self.header.get(key)]
        if not differs and old.get("fingerprint") != self.header["fingerprint"]:  # then it is what says why
            differs = ["the points' scenarios or gates (an edited scenario or gate file): fingerprint "
                       f"{old.get('fingerprint')!r} there, {self.header['fingerprint']!r} now"]
        if differs:
            raise UsageError(f"--out {self.out}: holds a different sweep ({'; '.join(differs)}); resume it with the "
                             f"same scenario, --vary and options, or choose another directory")

    def _finished_rows(self) -> list[str]:
        """The rows of the earlier run whose record is still whole on disk, as lines. A last line
        without its newline was torn by a kill and is dropped, as is a row whose record is gone."""
        path = self.out / CSV
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)[1:]
        kept = []
        for line in lines:
            if not line.endswith("\n"):
                continue
            row = next(csv.reader([line]), [])
            run_dir = row[0] if len(row) == len(self.columns) else None
            if run_dir and run_dir not in self.done and all(
                    (self.out / run_dir / name).is_file() for name in ("summary.json", "gates.json")):
                self.done.add(run_dir)
                kept.append(line)
        return kept

    def append(self, row: dict[str, Any]) -> None:
        """One finished run's row, on disk before this returns (a kill after it keeps the row)."""
        self._writer.writerow(row)
        self._csv.flush()
        self.done.add(str(row[self.columns[0]]))

    def write(self, points: list[dict], **state: Any) -> dict:
        """`sweep.json`: the header, `points`, and `state` (`incomplete`, `planned`)."""
        doc = {**self.header, "points": points, **{k: v for k, v in state.items() if v is not None}}
        write_atomic(self.out / JSON, json.dumps(doc, indent=2, default=str) + "\n")
        return doc

    def close(self) -> None:
        self._csv.close()


def _plain(value: Any) -> Any:
    """As it reads back from JSON (tuples as lists, paths as strings), so headers compare."""
    return json.loads(json.dumps(value, default=str))
