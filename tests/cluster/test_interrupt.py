"""Ctrl-C on a sweep running on Dask (the local cluster, and a real scheduler with two workers):
the runs not finished are cancelled, the command stops within seconds, and what finished is kept."""
from __future__ import annotations

import csv
import json
import time

from tests.ctrl_c import interrupt_cli, table_rows, wait_for
from tests.restart_scenario import restart_scenario

SCENARIO = restart_scenario("longish", duration="6h", clients=300)


def test_ctrl_c_cancels_the_rest_and_keeps_the_finished_points(tmp_path):
    (tmp_path / "s.yaml").write_text(SCENARIO)
    out = tmp_path / "sweep"

    def first_point_done(proc) -> None:
        for line in proc.stdout:
            if "1/6 done (point" in line:
                return
        raise AssertionError("the sweep ended before a point finished")

    code, err = interrupt_cli(["sweep", "s.yaml", "--vary", "fleet.sim_clients=200,250,300,350,400,450",
                               "--out", str(out)], tmp_path, first_point_done, timeout=60)
    assert code == 130, err
    assert "points finished" in err and "holds them (marked incomplete)" in err
    assert "Traceback" not in err
    kept = json.loads((out / "sweep.json").read_text())["points"]
    assert 1 <= len(kept) < 6
    assert all((out / p["run_dir"] / "gates.json").exists() for p in kept)


def test_ctrl_c_on_a_named_cluster_cancels_its_tasks_and_keeps_the_finished_runs(tmp_path, dask_cluster):
    """A real `dask scheduler` and two workers: after the Ctrl-C the scheduler holds none of the
    sweep's tasks (the outstanding ones were cancelled, not left to run), and every run that
    finished is on disk and in the table."""
    from distributed import Client

    (tmp_path / "s.yaml").write_text(SCENARIO)
    out = tmp_path / "sweep"
    table = out / "sweep.csv"

    def some_finished(proc) -> None:  # the table's first row: polled with a deadline, not slept on
        wait_for(lambda: table_rows(table) >= 1, proc, "a finished run")

    with Client(dask_cluster) as client:
        code, err = interrupt_cli(["sweep", "s.yaml", "--vary", "fleet.sim_clients=200,250,300,350,400,450",
                                   "--out", str(out), "--cluster", dask_cluster], tmp_path, some_finished,
                                  timeout=60)
        assert code == 130, err
        assert "cancelled" in err and "Traceback" not in err, err
        deadline = time.monotonic() + 20
        while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)):  # by value: the
            # scheduler cannot import the tests
            assert time.monotonic() < deadline, "the scheduler still holds the sweep's tasks"
            time.sleep(0.1)
        assert not any(client.processing().values())
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert 1 <= len(rows) < 6
    assert all((out / r["run_dir"] / "gates.json").exists() for r in rows)
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["incomplete"].startswith("interrupted (Ctrl-C)") and len(doc["points"]) == len(rows)
