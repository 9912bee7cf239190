"""One number, one place: every count the report prints for a run is the count its gates judged.

A sampled simulation (more clients than the model runs agents, plus a 500-client ledger sample)
is where two sources could disagree: the report once showed 19,796 duplicates in the gate and
before/after tables and 197,960 in the delivery table. Here a real sampled simulation is run
and rendered, and every table's count is read back from summary.md and checked against
summary.json and gates.json.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sim.engine")

SCENARIO = """
name: sampled-agreement
description: a short legacy run of a fleet the model samples (above sim.engine.MAX_AGENTS clients)
seed: 11
duration: 4m
system: {behaviour: legacy, token_ttl: 2m}
fleet:
  clients: 20
  sim_clients: 6000
  profile: legacy
  arrival: {ramp: 20s}
  messages: {every: 30s}
  network: {drops: {every: 2m}}
faults:
  - {at: 2m, kind: token_expiry, fraction: 1.0}
gates:
  - {name: no 403s, metric: http_403, stat: count, op: "==", value: 0}
  - {name: no duplicates, metric: duplicates_displayed, stat: count, op: "==", value: 0}
  - {name: nothing lost, metric: lost_messages, stat: count, op: "==", value: 0}
  - {name: no forced refresh, metric: manual_refreshes, stat: count, op: "==", value: 0}
  - {name: few 1006, metric: 'closes{code="1006"}', stat: count, op: "<=", value: 10}
"""
GATE_KEYS = {"no 403s": "http_403", "no duplicates": "duplicates_displayed", "nothing lost": "lost_messages",
             "no forced refresh": "manual_refreshes"}


def _tables(md: str) -> dict[str, list[dict[str, str]]]:
    """Every Markdown table under its section title (the first of each section), as rows of dicts."""
    out: dict[str, list[dict[str, str]]] = {}
    for section in re.split(r"^## ", md, flags=re.M)[1:]:
        title, _, body = section.partition("\n")
        lines = []
        for ln in body.splitlines():
            if ln.startswith("|"):
                lines.append(ln)
            elif lines:
                break  # the first table only
        if not lines:
            continue
        header = [c.strip() for c in lines[0].strip("|").split("|")]
        rows = [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[2:]
                if not ln.startswith("|---")]
        out[title.strip()] = [r for r in rows if len(r) == len(header)]
    return out


def _count(text: str) -> int:
    return int(re.match(r"[\d,]+", text.replace("\\", "")).group().replace(",", ""))


def _legacy(rows: list[dict]) -> dict:
    """The legacy run's row (its label may go on with the weight it was counted at)."""
    return next(r for r in rows if r["run"].split(" (")[0] == "legacy")


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    root = tmp_path_factory.mktemp("sampled")
    (root / "s.yaml").write_text(SCENARIO)
    legacy = root / "legacy"
    done = subprocess.run([sys.executable, "-m", "commands.cli", "run", str(root / "s.yaml"), "--engine", "simulate",
                           "--out", str(legacy)], capture_output=True, text=True, timeout=240)
    assert done.returncode in (0, 1), done.stderr
    assert json.loads((legacy / "meta.json").read_text())["sampling"]["exact"] is False
    # the same record as a "fixed" run, so the before/after table shows the same counts on both sides
    fixed = root / "fixed"
    shutil.copytree(legacy, fixed)
    meta = json.loads((fixed / "meta.json").read_text())
    (fixed / "meta.json").write_text(json.dumps({**meta, "profile": "fixed"}))
    from reports.render import render

    index = render([legacy, fixed], root / "report")
    return legacy, _tables((index.parent / "summary.md").read_text(encoding="utf-8"))


def test_every_table_prints_the_gates_counts(sampled):
    run, tables = sampled
    summary = json.loads((run / "summary.json").read_text())
    gates = {g["name"]: g for g in json.loads((run / "gates.json").read_text())}
    for name, key in GATE_KEYS.items():
        assert gates[name]["observed"] == summary[key], name
    shown = {r["gate"]: r for r in tables["Gate verdicts"]}
    for name, key in GATE_KEYS.items():
        assert _count(shown[name]["observed"]) == summary[key], name
    delivery = _legacy(tables["Message delivery"])
    assert _count(delivery["duplicates"]) == summary["duplicates_displayed"]
    assert _count(delivery["lost"]) == summary["lost_messages"]
    assert _count(delivery["indeterminate"]) == summary["messages_indeterminate"]
    assert _count(delivery["sent"]) == summary["messages_sent"]
    before_after = {r["metric"]: r for r in tables["Before / after"]}
    for label, key in (("403 auth errors", "http_403"), ("duplicate messages", "duplicates_displayed"),
                       ("manual refreshes", "manual_refreshes"), ("lost messages", "lost_messages")):
        row = before_after[label]
        before = next(v for k, v in row.items() if k.startswith("before:"))
        assert _count(before) == summary[key], label  # a 4-minute run: the count over its length
        assert "/day" not in before
    closes = _legacy(tables["Closes by code"])
    assert {code: _count(closes[code]) for code in summary["closes_by_code"]} == summary["closes_by_code"]
    assert _count(shown["few 1006"]["observed"]) == summary["closes_by_code"]["1006"]


def test_the_timeline_shows_403s_refreshes_and_closes_with_the_same_totals(sampled):
    run, tables = sampled
    summary = json.loads((run / "summary.json").read_text())
    rows = tables["Timeline: 403s, manual refreshes and closes"]
    totals = {r["what"]: _count(r["count in 4m"]) for r in rows}  # the first run's table
    assert totals["HTTP 403 (handshake refused)"] == summary["http_403"] > 0
    assert totals["manual refreshes"] == summary["manual_refreshes"]
    assert totals["close 1006"] == summary["closes_by_code"]["1006"]


def test_storms_are_shown_apart_from_the_arrival_ramp(sampled):
    _, tables = sampled
    rows = tables["Reconnects per second: storms, apart from the arrival ramp"]
    ramp = [r for r in rows if r["what"] == "arrival ramp"]
    assert ramp and ramp[0]["for"] == "20.0s" and "never a storm" in ramp[0]["detail"]
