"""The emulation's client fleet on a real Dask cluster (`run --target URL --cluster ADDRESS`):
each of the two workers runs its share of the clients against a `stormbench serve` target, and
their records merge into one run record whose ledger checks out."""
from __future__ import annotations

import json

import yaml

from commands.cli import main
from harness.emulate.topology import ServerControl, ServerOptions

SCENARIO = {
    "name": "remote-fleet", "seed": 5, "duration": "40s", "time_scale": 2,
    "system": {"behaviour": "fixed", "token_ttl": "15m"},
    "fleet": {"clients": 10, "profile": "fixed", "arrival": {"ramp": "4s"}, "messages": {"every": "5s"}},
    "faults": [],
    "gates": [],
}


def test_a_fleet_on_two_workers_merges_into_one_record(tmp_path, dask_cluster, monkeypatch):
    server = ServerControl(ServerOptions(db=tmp_path / "s.db"), tmp_path / "logs")
    endpoints = server.start()
    try:
        monkeypatch.setenv("STORMBENCH_ADMIN_KEY", server.options.admin_key)
        (tmp_path / "s.yaml").write_text(yaml.safe_dump(SCENARIO))
        out = tmp_path / "run"
        code = main(["run", str(tmp_path / "s.yaml"), "--target", f"{endpoints.ws_url},{endpoints.http_url}",
                     "--cluster", dask_cluster, "--out", str(out)])
    finally:
        server.stop()
    assert code in (0, 3)  # no gate, or one the run could not resolve
    meta = json.loads((out / "meta.json").read_text())
    assert meta["topology"]["cluster"] == dask_cluster and meta["topology"]["workers"] == 2
    workers = meta["self_check"]["workers"]
    assert len({w["address"] for w in workers}) == 2  # one share on each Dask worker
    for w in workers:
        assert w["host"] == "127.0.0.1" and w["loop_lag_p99_s"] is not None
        assert abs(w["clock_offset_s"]) <= w["clock_offset_uncertainty_s"] + 0.05  # one machine, one clock
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    assert {e["client"] for e in events if e["kind"] == "open"} == {f"c{i:05d}" for i in range(10)}
    summary = json.loads((out / "summary.json").read_text())
    ledger = json.loads((out / "ledger_summary.json").read_text()) if (out / "ledger_summary.json").exists() else None
    assert summary["lost_messages"] == 0 and summary["duplicates_displayed"] == 0
    sent = (out / "sent.csv").read_text().splitlines()
    assert len(sent) > 10, "the clients sent messages that the server logged"
    assert ledger is None or ledger["lost"] == 0


def test_a_fleet_on_a_cluster_needs_a_target(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SCENARIO))
    code = main(["run", str(tmp_path / "s.yaml"), "--cluster", "tcp://127.0.0.1:9", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "--cluster with --engine emulate: give --target too" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_ctrl_c_on_a_fleet_on_the_cluster_keeps_the_partial_record(tmp_path, dask_cluster, monkeypatch):
    """A real Ctrl-C once every client of the two workers' shares is connected: the workers are told
    to stop, their records come back and merge, the record is marked incomplete, and the scheduler
    is left with none of the fleet's tasks."""
    from distributed import Client

    from tests.ctrl_c import interrupt_cli

    server = ServerControl(ServerOptions(db=tmp_path / "s.db"), tmp_path / "logs")
    endpoints = server.start()
    long_run = {**SCENARIO, "name": "remote-interrupted", "duration": "10m"}  # 5 min of wall time at x2

    def fleet_connected(proc) -> None:
        for line in proc.stdout:  # the live view's lines: the workers' tallies came through the cluster
            if "active=10 " in line:
                return
        raise AssertionError(f"the run ended before its fleet connected: {proc.stderr.read()}")

    try:
        monkeypatch.setenv("STORMBENCH_ADMIN_KEY", server.options.admin_key)
        (tmp_path / "s.yaml").write_text(yaml.safe_dump(long_run))
        out = tmp_path / "run"
        code, err = interrupt_cli(["run", "s.yaml", "--target", f"{endpoints.ws_url},{endpoints.http_url}",
                                   "--cluster", dask_cluster, "--out", str(out)], tmp_path, fleet_connected,
                                  timeout=90)
    finally:
        server.stop()
    assert code == 130, err
    assert "Traceback" not in err, err
    meta = json.loads((out / "meta.json").read_text())
    assert "interrupted (Ctrl-C)" in meta["incomplete"]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert {e["client"] for e in events if e["kind"] == "open"} == {f"c{i:05d}" for i in range(10)}  # both shares
    assert max(e["t"] for e in events) < 300  # the run stopped at the Ctrl-C, not at its end
    with Client(dask_cluster) as client:
        assert client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0
