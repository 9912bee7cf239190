"""Synthetic run records with a known shape, written in the README "Run records" format.

The engines are built in parallel with the reports, so the report is tested on records
whose every number is chosen here: a test can then say exactly where the survival curve
must drop, which seconds are a storm, how many messages were lost.
"""
from __future__ import annotations

import csv
import json
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class SyntheticRun:
    name: str = "synthetic"
    engine: str = "emulate"
    profile: str | dict = "fixed"
    clients: int = 10
    duration: int = 600                                   # scenario seconds
    lifetimes: list[tuple[float, bool]] = field(default_factory=lambda: [(60, False), (120, False), (500, True)])
    failed_handshakes: list[int] = field(default_factory=list)   # HTTP statuses of failed handshakes
    base_attempts: int = 0                                # attempts in every second
    storm: tuple[int, int, int] | None = None             # [start, end) seconds, attempts per second
    closes: dict[str, list[int]] = field(default_factory=dict)   # close code -> seconds of closes
    faults: list[dict[str, Any]] = field(default_factory=list)
    messages: int = 20                                    # server-sent messages, one conversation per client
    lost: set[int] = field(default_factory=set)           # message indices never displayed
    duplicated: set[int] = field(default_factory=set)     # displayed twice
    reordered: set[int] = field(default_factory=set)      # displayed after the next one
    gates: list[dict[str, Any]] | None = field(default_factory=list)
    scenario_gates: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)  # overrides of computed summary keys
    description: str = "synthetic run"
    omit: tuple[str, ...] = ()                            # files not to write


def write_run(root: Path, spec: SyntheticRun) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "scenario.json": lambda p: _json(p, _scenario(spec)),
        "meta.json": lambda p: _json(p, {"engine": spec.engine, "stormbench_version": "0.1.0", "seed": 7,
                                         "time_scale": 1, "started_at": "2026-11-26T04:00:00Z",
                                         "wall_time_s": 12.5, "host": {}, "warnings": [], "self_check": {}}),
        "connections.csv": lambda p: _csv(p, _connections(spec)),
        "timeseries.csv": lambda p: _csv(p, _timeseries(spec)),
        "ledger.csv": lambda p: _csv(p, _ledger(spec)),
        "faults.json": lambda p: _json(p, spec.faults),
        "gates.json": lambda p: _json(p, spec.gates),
        "summary.json": lambda p: _json(p, _summary(spec)),
    }
    for name, write in files.items():
        if name not in spec.omit:
            write(root / name)
    return root


def _scenario(spec: SyntheticRun) -> dict[str, Any]:
    return {"name": spec.name, "description": spec.description, "seed": 7, "duration": spec.duration,
            "time_scale": 1, "fleet": {"clients": spec.clients, "profile": spec.profile},
            "faults": spec.faults, "gates": spec.scenario_gates}


def _connections(spec: SyntheticRun) -> list[dict[str, Any]]:
    rows = []
    for i, (lifetime, censored) in enumerate(spec.lifetimes):
        rows.append({"client": f"c{i % spec.clients}", "conn": i, "opened_s": 0,
                     "closed_s": "" if censored else lifetime, "duration_s": lifetime,
                     "close_code": "" if censored else 1006, "closed_by": "" if censored else "network",
                     "http_status": "", "censored": int(censored)})
    for j, status in enumerate(spec.failed_handshakes):
        rows.append({"client": f"c{j % spec.clients}", "conn": len(rows), "opened_s": 1, "closed_s": "",
                     "duration_s": "", "close_code": "", "closed_by": "", "http_status": status, "censored": 0})
    return rows


def _attempts(spec: SyntheticRun, t: int) -> int:
    in_storm = spec.storm is not None and spec.storm[0] <= t < spec.storm[1]
    return spec.base_attempts + (spec.storm[2] if in_storm else 0)


def _timeseries(spec: SyntheticRun) -> list[dict[str, Any]]:
    closed_lives = sorted(life for life, censored in spec.lifetimes if not censored)
    censored = sum(1 for _, c in spec.lifetimes if c)
    closes = {code: Counter(seconds) for code, seconds in spec.closes.items()}
    rows = []
    for t in range(spec.duration):
        active = censored + len(closed_lives) - bisect_right(closed_lives, t)  # open: opened at 0, not yet closed
        row = {"t": t, "attempts": _attempts(spec, t), "reconnects": _attempts(spec, t), "opens": 0,
               "closes": sum(c[t] for c in closes.values()), "active": active,
               "http_403": 0, "manual_refreshes": 0, "displayed": 0, "duplicates": 0}
        for code, counts in closes.items():
            row[f"closes_{code}"] = counts[t]
        rows.append(row)
    return rows


def _ledger(spec: SyntheticRun) -> list[dict[str, Any]]:
    rows = []
    for i in range(spec.messages):
        conv, client = f"conv{i % spec.clients}", f"c{i % spec.clients}"
        seq = i // spec.clients + 1
        rows.append({"kind": "sent", "client": "", "conversation": conv, "msg_id": f"m{i}", "seq": seq, "t": i})
        if i in spec.lost:
            continue
        shown_at = i + spec.clients + 0.75 if i in spec.reordered else i + 0.5
        for _ in range(2 if i in spec.duplicated else 1):
            rows.append({"kind": "displayed", "client": client, "conversation": conv, "msg_id": f"m{i}",
                         "seq": seq, "t": shown_at})
    return rows


def _summary(spec: SyntheticRun) -> dict[str, Any]:
    attempts = [_attempts(spec, t) for t in range(spec.duration)]
    summary = {
        "engine": spec.engine, "scenario": spec.name, "clients": spec.clients,
        "connections": len(spec.lifetimes), "duration_p50_s": None, "duration_p95_s": None,
        "reconnect_attempts": sum(attempts), "closes_by_code": {c: len(s) for c, s in spec.closes.items()},
        "http_403": spec.failed_handshakes.count(403), "duplicates_displayed": len(spec.duplicated),
        "lost_messages": len(spec.lost), "manual_refreshes": 0,
        "storms": 0 if spec.storm is None else 1, "peak_reconnects_per_s": max(attempts, default=0),
    }
    summary.update(spec.summary)
    return summary


def _json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def _csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields or ["t"])
        writer.writeheader()
        writer.writerows(rows)
