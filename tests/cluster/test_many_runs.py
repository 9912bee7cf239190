"""Replications, sweeps and a failing job on a real Dask cluster (a `dask scheduler` and two
`dask worker` subprocesses): the same seeds give the same tables as on the local cluster."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from distributed import Client, get_task_stream

from cluster.executor import Job, run_jobs
from commands.cli import main
from formats.scenario import from_dict
from sim.replicate import _seed, replicate
from commands.sweep import sweep
from tests.restart_scenario import restart_scenario

SMALL = restart_scenario()
GRID = {"fleet.sim_clients": [10, 30], "profile": ["legacy", "fixed"]}
TABLES = ("summary.json", "connections.csv", "timeseries.csv", "events.jsonl", "gates.json")


def _digest(run_dir: Path) -> dict[str, str]:
    return {name: hashlib.sha256((run_dir / name).read_bytes()).hexdigest() for name in TABLES
            if (run_dir / name).exists()}


def _scenario(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SMALL)
    return path


def test_a_sweep_on_the_cluster_gives_the_local_table(tmp_path, dask_cluster):
    path = _scenario(tmp_path)
    local = sweep(path, GRID, tmp_path / "local", echo=lambda *_: None, workers=2)
    with Client(dask_cluster) as client, get_task_stream(client) as stream:
        remote = sweep(path, GRID, tmp_path / "remote", echo=lambda *_: None, cluster=dask_cluster)
        workers = set(client.scheduler_info(n_workers=-1)["workers"])
    assert len(workers) == 2 and {t["worker"] for t in stream.data} == workers  # both workers took points
    assert remote == json.loads((tmp_path / "remote" / "sweep.json").read_text())
    assert [p["params"] for p in remote["points"]] == [p["params"] for p in local["points"]]
    assert [p["summary"] for p in remote["points"]] == [p["summary"] for p in local["points"]]
    assert [p["gates"] for p in remote["points"]] == [p["gates"] for p in local["points"]]
    assert len(remote["points"]) == 4
    for p in remote["points"]:  # the records came back whole from the workers
        assert _digest(tmp_path / "remote" / p["run_dir"]) == _digest(tmp_path / "local" / p["run_dir"])
        assert len(_digest(tmp_path / "remote" / p["run_dir"])) == len(TABLES)


def test_replications_on_the_cluster_give_the_local_intervals(tmp_path, dask_cluster):
    sc = from_dict(__import__("yaml").safe_load(SMALL))
    local = replicate(sc, tmp_path / "local", 3, workers=2)
    remote = replicate(sc, tmp_path / "remote", 3, cluster=dask_cluster)
    assert remote["replications"] == local["replications"]
    assert remote["replications"]["seeds"] == [3, 4, 5]
    assert len(set(remote["replications"]["metrics"]["reconnect_attempts"]["values"])) > 1  # three draws
    for run in remote["replications"]["runs"]:
        assert _digest(tmp_path / "remote" / run) == _digest(tmp_path / "local" / run)


def test_a_failed_job_is_named_and_the_others_finish(tmp_path, dask_cluster, capsys):
    sc = from_dict(__import__("yaml").safe_load(SMALL))
    jobs = [Job(f"seed {seed}", _seed, (sc, cal, {}), dest=tmp_path / f"seed-{seed}")
            for seed, cal in ((3, None), (4, str(tmp_path / "missing.json")), (5, None))]
    done = run_jobs(jobs, cluster=dask_cluster, title="replications")
    assert [d.ok for d in done] == [True, False, True]
    assert "missing.json" in done[1].error and done[1].error.startswith("ValueError")
    assert "FAILED seed 4: ValueError" in capsys.readouterr().err
    assert (tmp_path / "seed-3" / "summary.json").exists() and (tmp_path / "seed-5" / "summary.json").exists()
    assert not (tmp_path / "seed-4").exists()


def test_the_sweep_command_uses_the_environment(tmp_path, dask_cluster, monkeypatch, capsys):
    """`STORMBENCH_CLUSTER` names the scheduler when no --cluster is given."""
    monkeypatch.setenv("STORMBENCH_CLUSTER", dask_cluster)
    path, out = _scenario(tmp_path), tmp_path / "sweep"
    with Client(dask_cluster) as client, get_task_stream(client) as stream:
        assert main(["sweep", str(path), "--vary", "fleet.sim_clients=10,20,30", "--out", str(out)]) == 0
    assert len(stream.data) == 3  # the three points ran on that cluster
    doc = json.loads((out / "sweep.json").read_text())
    assert [p["run_dir"] for p in doc["points"]] == ["point-000", "point-001", "point-002"]
    assert "sweep of tiny: 3 to run" in capsys.readouterr().out


def test_an_unreachable_cluster_is_a_usage_error(tmp_path, capsys):
    path = _scenario(tmp_path)
    code = main(["sweep", str(path), "--vary", "fleet.sim_clients=10", "--out", str(tmp_path / "s"),
                 "--cluster", "tcp://127.0.0.1:9"])
    assert code == 2
    assert "--cluster tcp://127.0.0.1:9: no Dask scheduler answers there" in capsys.readouterr().err
