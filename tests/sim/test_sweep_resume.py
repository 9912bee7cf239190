"""A sweep streams its table as runs finish and resumes: a real Ctrl-C (SIGINT to a real
subprocess) leaves a readable partial table that the report draws, and the same command again runs
only the missing point x seed runs, ending with the table an uninterrupted sweep writes."""
from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import pytest

from commands.cli import main
from commands.sweep import sweep
from formats.calibration import DEFAULT_PATH
from tests.ctrl_c import interrupt_cli, table_rows, wait_for
from tests.restart_scenario import restart_scenario

pytestmark = pytest.mark.timeout(300)

GRID = ["--vary", "fleet.sim_clients=200,250,300", "--replications", "2"]  # 3 points x 2 seeds = 6 runs


def rows(out: Path) -> list[dict]:
    with (out / "sweep.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def canonical(out: Path) -> str:
    return json.dumps(json.loads((out / "sweep.json").read_text()), sort_keys=True)


@pytest.mark.slow  # (a killed sweep's resume, below, is in the fast suite)
def test_an_interrupted_sweep_resumes_and_ends_as_an_uninterrupted_one(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(restart_scenario("resume", duration="6h", clients=300))
    out = tmp_path / "sweep"

    def one_row(proc) -> None:  # the table's first row is the event: polled with a deadline
        wait_for(lambda: table_rows(out / "sweep.csv") >= 1, proc, "a finished run")

    code, err = interrupt_cli(["sweep", "s.yaml", *GRID, "--out", str(out)], tmp_path, one_row, timeout=60)
    assert code == 130, err
    assert "Traceback" not in err and "the same command resumes the sweep" in err, err
    before = rows(out)
    assert 1 <= len(before) < 6, "the Ctrl-C came after every run had finished"
    partial = json.loads((out / "sweep.json").read_text())
    assert partial["incomplete"].startswith("interrupted (Ctrl-C)") and partial["planned"] == 3

    from reports.render import render  # the capacity report draws from the partial table

    html = render([out], tmp_path / "report").read_text()
    assert "INCOMPLETE sweep: interrupted (Ctrl-C)" in html
    assert list((tmp_path / "report").rglob("*.png"))

    assert main(["sweep", str(path), *GRID, "--out", str(out)]) == 0
    said = capsys.readouterr().out
    missing = 6 - len(before)
    assert f"resuming {out}: {len(before)} of 6 runs (point x seed) already done, skipped; {missing} to run" in said
    assert f"sweep of resume: {missing} to run" in said  # only the missing runs went to the cluster
    after = rows(out)
    assert after[:len(before)] == before  # the kept rows untouched, the new ones appended
    assert sorted(r["run_dir"] for r in after) == sorted(
        f"point-00{i}{s}" for i in range(3) for s in ("", "/replications/seed-4"))

    whole = tmp_path / "whole"
    sweep(path, {"fleet.sim_clients": [200, 250, 300]}, whole, replications=2, echo=lambda *_: None)
    assert canonical(out) == canonical(whole)
    assert "incomplete" not in json.loads((out / "sweep.json").read_text())
    key = lambda r: r["run_dir"]  # noqa: E731 - the rows arrive in finishing order
    assert sorted(after, key=key) == sorted(rows(whole), key=key)


def test_a_different_sweep_in_the_directory_is_named(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(restart_scenario("small", clients=10))
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--vary", "fleet.sim_clients=10", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["sweep", str(path), "--vary", "fleet.sim_clients=10,20", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds a different sweep (vary: {'fleet.sim_clients': [10]} there, " \
           "{'fleet.sim_clients': [10, 20]} now)" in err
    path.write_text(restart_scenario("small", clients=10, seed=4))  # the same name and grid, another seed
    assert main(["sweep", str(path), "--vary", "fleet.sim_clients=10", "--out", str(out)]) == 2
    assert "the points' scenarios or gates (an edited scenario or gate file)" in capsys.readouterr().err
    assert len(rows(out)) == 1


def test_a_killed_sweep_leaves_a_readable_table_and_resumes(tmp_path, capsys):
    """SIGKILL to the command and its local workers: no handler runs, yet every row written is whole,
    the report says the sweep is incomplete, and the same command finishes it."""
    path = tmp_path / "s.yaml"
    path.write_text(restart_scenario("killed", duration="6h", clients=300))
    out = tmp_path / "sweep"
    vary = ["--vary", "fleet.sim_clients=200,250,300,350"]

    code, _ = interrupt_cli(["sweep", "s.yaml", *vary, "--out", str(out)], tmp_path,
                            lambda proc: wait_for(lambda: table_rows(out / "sweep.csv") >= 1, proc, "a finished run"),
                            sig=signal.SIGKILL)
    assert code == -signal.SIGKILL
    kept = rows(out)
    assert 1 <= len(kept) < 4 and all(r["failed_gates"] in ("", "p50 connection duration") for r in kept)

    from reports.sweep import capacity_table, load_sweep

    _rows, lines = capacity_table(load_sweep(out))
    assert any(line.startswith("INCOMPLETE sweep: running or stopped:") for line in lines), lines

    assert main(["sweep", str(path), *vary, "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"{len(kept)} of 4 runs (point x seed) already done, skipped; {4 - len(kept)} to run" in said
    assert sorted(r["run_dir"] for r in rows(out)) == [f"point-00{i}" for i in range(4)]
    assert "incomplete" not in json.loads((out / "sweep.json").read_text())


def test_failed_runs_leave_the_sweep_incomplete_and_the_same_command_retries_them(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(restart_scenario("retried", clients=10))
    out = tmp_path / "sweep"
    args = ["sweep", str(path), "--vary", "fleet.sim_clients=10,20", "--out", str(out)]
    out.mkdir()
    for point in ("point-000", "point-001"):  # a file where each run's record must land: both runs fail
        (out / point).write_text("in the way")
    assert main(args) == 1
    err = " ".join(capsys.readouterr().err.split())  # unwrapped
    assert "FAILED point 0 (fleet.sim_clients=10, seed 3): FileExistsError" in err, err
    assert "2 of 2 points did not finish (a run failed, named above); the same command retries them" in err
    assert rows(out) == [] and json.loads((out / "sweep.json").read_text())["incomplete"]

    for point in ("point-000", "point-001"):
        (out / point).unlink()
    assert main(args) == 0
    assert [r["run_dir"] for r in sorted(rows(out), key=lambda r: r["run_dir"])] == ["point-000", "point-001"]
    assert "incomplete" not in json.loads((out / "sweep.json").read_text())
