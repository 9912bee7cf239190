"""Ctrl-C on replications and sweeps: pending runs are cancelled, the workers end within seconds, and
what finished is written (marked incomplete) for `report` to show as such."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.ctrl_c import interrupt_cli, table_rows, wait_for

pytestmark = pytest.mark.timeout(240)

SCENARIO = """name: slowish
seed: 3
duration: 6h
system: {behaviour: fixed, token_ttl: 15m, live_expiry: true}
fleet:
  clients: 200
  profile: fixed
  arrival: {ramp: 1m}
  network: {drops: {every: 30m}}
faults:
  - {at: 1h, kind: server_restart}
gates:
  - {name: recovers, metric: active_connections, stat: min_fraction, phase: {after: server_restart, within: 5m},
     op: ">=", value: 0.9}
"""


def group_gone(pgid: int, within: float = 5.0) -> bool:
    """Every process of the command's group has exited within a few seconds of it (the workers,
    and multiprocessing's resource tracker, which ends when its parent's pipe closes)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_ctrl_c_on_replications_keeps_the_finished_seeds(tmp_path):
    (tmp_path / "s.yaml").write_text(SCENARIO)
    out = tmp_path / "out"
    seen = {}

    def one_finished(proc) -> None:
        """The progress line of a finished seed: printed once the command holds it (a record on
        disk is not enough: it lands before the command takes it)."""
        seen["pgid"] = proc.pid
        for line in proc.stdout:
            if "/6 done (seed" in line:
                return
        raise AssertionError("the run ended before a replication finished")

    started = time.monotonic()
    code, err = interrupt_cli(["run", str(tmp_path / "s.yaml"), "--engine", "simulate", "--replications", "6",
                               "--out", str(out)], tmp_path, one_finished, timeout=30)
    assert code == 130, err
    assert "Traceback" not in err and "replications finished" in err, err
    assert group_gone(seen["pgid"]), "a worker outlived the command"
    block = json.loads((out / "summary.json").read_text())["replications"]
    assert block["incomplete"].startswith("interrupted (Ctrl-C)") and block["planned"] == 6
    assert 1 <= block["n"] < 6 and len(block["metrics"]["connections"]["values"]) == block["n"]
    folders = sorted(p.name for p in (out / "replications").iterdir()) if (out / "replications").exists() else []
    assert len(folders) < 5, f"every pending seed started anyway: {folders}"
    assert time.monotonic() - started < 200


def test_ctrl_c_on_a_sweep_writes_what_finished(tmp_path):
    (tmp_path / "s.yaml").write_text(SCENARIO)
    out = tmp_path / "sweep"
    seen = {}

    def first_point_kept(proc) -> None:  # the points run as Dask jobs, side by side
        seen["pgid"] = proc.pid
        wait_for(lambda: table_rows(out / "sweep.csv") >= 1, proc, "the first finished point")

    code, err = interrupt_cli(["sweep", str(tmp_path / "s.yaml"), "--vary", "fleet.sim_clients=50,200,400",
                               "--out", str(out)], tmp_path, first_point_kept, timeout=30)
    assert code == 130, err
    assert "of 3 points finished" in err and "Traceback" not in err, err
    assert group_gone(seen["pgid"])
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["incomplete"].startswith("interrupted (Ctrl-C)") and doc["planned"] == 3
    assert 1 <= len(doc["points"]) < 3 and all(p["gates"] and "incomplete" not in p for p in doc["points"])
    kept = {p["run_dir"] for p in doc["points"]}
    assert all((out / d).is_dir() == (d in kept) for d in ("point-000", "point-001", "point-002"))

    from reports.sweep import capacity_table, load_sweep

    sweep = load_sweep(out)
    _rows, lines = capacity_table(sweep)
    assert any(line.startswith("INCOMPLETE sweep: interrupted") for line in lines)


def test_report_of_an_interrupted_sweep_says_so(tmp_path):
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "sweep.json").write_text(json.dumps({
        "scenario": "s", "vary": {"fleet.sim_clients": [10, 20]}, "incomplete": "interrupted (Ctrl-C) after 3 s",
        "points": [{"params": {"fleet.sim_clients": 10}, "summary": {"clients_never_connected": 0},
                    "gates": [{"name": "g", "verdict": "pass", "strict": True}]},
                   {"params": {"fleet.sim_clients": 20}, "run_dir": "point-001", "incomplete": "interrupted"}]}))
    from reports.render import render

    html = render([tmp_path / "sweep"], tmp_path / "out").read_text()
    assert "INCOMPLETE sweep: interrupted (Ctrl-C) after 3 s" in html
    assert "20: incomplete: interrupted" in html
