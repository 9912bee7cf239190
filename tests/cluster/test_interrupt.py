"""Ctrl-C on a sweep running on the local Dask cluster: the points not finished are cancelled, the
command stops within seconds, and what finished is kept."""
from __future__ import annotations

import json

from tests.ctrl_c import interrupt_cli
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
