"""Replications, sweeps and the validation table: the model's commands."""
from __future__ import annotations

import json

import pytest

from commands.cli import UsageError
from formats.calibration import restart_downtime
from formats.scenario import from_dict
from formats.scenario import load as load_scenario
from sim.replicate import interval, replicate
from commands.sweep import parse_vary, sweep
from commands.validate import agrees, error_table
from tests.restart_scenario import restart_scenario

SMALL = restart_scenario()


def test_parse_vary_names_the_bad_item():
    assert parse_vary(["fleet.sim_clients=10,20", "profile=legacy,fixed"]) == {
        "fleet.sim_clients": [10, 20], "profile": ["legacy", "fixed"]}
    with pytest.raises(UsageError, match="fleet.sim_clients"):
        parse_vary(["fleet.sim_clients"])
    with pytest.raises(UsageError, match="at least one"):
        parse_vary([])


def test_interval_is_student_t():
    out = interval([1.0, 2.0, 3.0])
    assert out["mean"] == 2.0
    lo, hi = out["ci"]
    assert lo == pytest.approx(2.0 - 4.302653 / 3 ** 0.5, rel=1e-5) and hi == pytest.approx(4 - lo)
    assert interval([None, 5.0]) == {"mean": 5.0, "ci": None, "n": 1}


def test_replications_give_intervals_across_seeds(tmp_path):
    sc = from_dict(__import__("yaml").safe_load(SMALL))
    summary = replicate(sc, tmp_path / "run", 2, workers=2)
    block = summary["replications"]
    assert block["seeds"] == [3, 4]
    assert (tmp_path / "run" / "replications" / "seed-4" / "summary.json").exists()
    attempts = block["metrics"]["reconnect_attempts"]
    assert len(attempts["values"]) == 2 and attempts["values"][0] == summary["reconnect_attempts"]
    lo, hi = attempts["ci"]
    assert lo <= attempts["mean"] <= hi
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["replications"]["n"] == 2


def test_sweep_writes_a_capacity_directory(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(SMALL)
    doc = sweep(path, {"fleet.sim_clients": [10, 30], "profile": ["legacy", "fixed"]}, tmp_path / "sweep",
                echo=lambda *_: None)
    assert len(doc["points"]) == 4
    on_disk = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert on_disk["vary"] == {"fleet.sim_clients": [10, 30], "profile": ["legacy", "fixed"]}
    by = {(p["params"]["fleet.sim_clients"], p["params"]["profile"]): p for p in on_disk["points"]}
    assert by[(30, "fixed")]["summary"]["clients"] == 30
    # every point is judged by the scenario's gates
    assert all(p["gates"] and p["gates"][0]["name"] == "p50 connection duration" for p in on_disk["points"])
    assert by[(30, "legacy")]["summary"]["reconnect_attempts"] > by[(30, "fixed")]["summary"]["reconnect_attempts"]
    from reports.sweep import load_sweep
    assert load_sweep(tmp_path / "sweep").fleet_param == "fleet.sim_clients"


def test_sweep_follows_as_many_agents_as_asked(tmp_path):
    """`--agents`: every point's model follows at most that many clients one by one; the sweep's
    header says so, and resuming it with another count is refused (the points would not compare)."""
    path = tmp_path / "tiny.yaml"
    path.write_text(SMALL)
    doc = sweep(path, {"fleet.sim_clients": [12, 30]}, tmp_path / "sweep", echo=lambda *_: None, agents=10)
    weights = {p["params"]["fleet.sim_clients"]: json.loads((tmp_path / "sweep" / p["run_dir"] / "meta.json")
                                                            .read_text())["sampling"]["weight"] for p in doc["points"]}
    assert weights == {12: 2, 30: 3}
    assert json.loads((tmp_path / "sweep" / "sweep.json").read_text())["agents"] == 10
    with pytest.raises(UsageError, match="agents"):
        sweep(path, {"fleet.sim_clients": [12, 30]}, tmp_path / "sweep", echo=lambda *_: None)


def test_error_table_is_relative_to_the_emulation():
    rows = error_table({"a": 110, "b": 0, "c": None}, {"a": 100, "b": 0, "c": 5}, metrics=("a", "b", "c"))
    assert [r["error"] for r in rows] == [pytest.approx(0.10), 0.0, None]


def test_sweep_with_a_bad_value_runs_nothing(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(SMALL)
    with pytest.raises(UsageError, match=r"(?s)fleet.sim_clients=abc.*positive integer"):
        sweep(path, {"fleet.sim_clients": [10, "abc"]}, tmp_path / "sweep", echo=lambda *_: None)
    assert not (tmp_path / "sweep").exists()


def test_sweep_with_a_gate_on_an_unknown_metric_runs_nothing(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(SMALL)
    gates = tmp_path / "gates.yaml"
    gates.write_text("- {name: typo, metric: http_404, stat: count, op: '==', value: 0}\n")
    with pytest.raises(UsageError, match=r"gates.yaml.*http_404.*did you mean 'http_403'"):
        sweep(path, {"fleet.sim_clients": [10, 30]}, tmp_path / "sweep", gates_file=str(gates), echo=lambda *_: None)
    assert not (tmp_path / "sweep").exists()


@pytest.mark.timeout(120)
def test_calibrate_measures_a_real_server(tmp_path):
    from commands.calibrate import calibrate
    from sim.calibration import load, save

    cal = calibrate(samples=8, burst=8, agent="echo")
    assert cal.handshake_servers >= 1
    assert 0 < cal.handshake_service.mean < 1.0 and 0 < cal.token_latency.mean < 1.0
    assert cal.measured["burst_handshakes_per_s"] > 0 and cal.restart_downtime_s > 0
    assert cal.close_service is not None and 0 < cal.close_service.mean < 1.0  # a forced expiry's close burst
    tb = cal.testbed  # bursts through a real proxy: the client's and the proxy's CPU, and the server's
    assert tb is not None and tb.cores >= 1
    assert 0 < tb.token_cost.mean < 0.1 and 0 < tb.connect_cost.mean < 0.1
    assert 0 < tb.server_token.mean < 0.1 and 0 < tb.server_connect.mean < 0.1
    assert cal.measured["testbed_connect_burst"]["requests"] == 8
    save(cal, tmp_path / "cal.json")
    again, name = load(tmp_path / "cal.json")
    assert again == cal and name.endswith("cal.json")
    # what a scenario that states no restart downtime takes, read from the file calibrate wrote
    assert restart_downtime(tmp_path / "cal.json") == cal.restart_downtime_s


def test_a_scenario_without_a_restart_downtime_takes_the_calibrated_one(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nduration: 1h\nfleet: {clients: 2}\n")
    assert load_scenario(path).system.restart_downtime == restart_downtime() > 0
    path.write_text("name: s\nduration: 1h\nsystem: {restart_downtime: 7s}\nfleet: {clients: 2}\n")
    assert load_scenario(path).system.restart_downtime == 7


def test_both_engines_unable_to_estimate_agree():
    rows = error_table({"p": None, "q": 5}, {"p": None, "q": None}, metrics=("p", "q"))
    assert [agrees(r, 0.1) for r in rows] == [True, False]


def test_run_with_replications_and_a_calibration_file(tmp_path, capsys):
    """`stormbench run --engine simulate --replications 2 --calibration FILE`: both seeds run, the
    finalized summary keeps the intervals, and the record names the calibration file."""
    from commands.cli import main
    from sim.calibration import load, save

    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(SMALL)
    cal_file = tmp_path / "cal.json"
    save(load()[0], cal_file)
    out = tmp_path / "run"
    code = main(["run", str(scenario), "--engine", "simulate", "--replications", "2",
                 "--calibration", str(cal_file), "--out", str(out)])
    assert code in (0, 1)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["replications"]["seeds"] == [3, 4]
    assert summary["replications"]["metrics"]["reconnect_attempts"]["values"][0] == summary["reconnect_attempts"]
    assert (out / "gates.json").exists()
    assert (out / "replications" / "seed-4" / "summary.json").exists()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["calibration"]["name"] == str(cal_file)
    assert "replications: 2 seeds" in capsys.readouterr().out


@pytest.mark.parametrize("flags, named", [
    (["--replications", "3"], "--replications"),
    (["--calibration", "cal.json"], "--calibration"),
])
def test_run_refuses_model_flags_for_the_emulation(tmp_path, capsys, flags, named):
    from commands.cli import main

    code = main(["run", "token-expiry-403", "--out", str(tmp_path / "o"), *flags])
    assert code == 2
    err = capsys.readouterr().err
    assert named in err and "--engine simulate only" in err
    assert not (tmp_path / "o").exists()


def test_run_names_a_bad_calibration_file_and_replication_count(tmp_path, capsys):
    from commands.cli import main

    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(SMALL)
    bad = tmp_path / "cal.json"
    bad.write_text("{not json")
    assert main(["run", str(scenario), "--engine", "simulate", "--calibration", str(bad),
                 "--out", str(tmp_path / "o")]) == 2
    assert f"{bad}: not valid JSON" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(scenario), "--engine", "simulate", "--replications", "0"])
    assert exit_.value.code == 2
    assert "--replications: expected at least 1" in capsys.readouterr().err


def test_calibrate_and_validate_refuse_bad_paths_before_measuring(tmp_path, capsys):
    """An unwritable calibration file and a missing emulated record are said before a minute of
    measurement or a whole emulation, not after."""
    from commands.cli import main

    nowhere = tmp_path / "no-such-dir" / "cal.json"
    assert main(["calibrate", "--out", str(nowhere)]) == 2
    assert f"--out {nowhere}: cannot write a calibration file there" in capsys.readouterr().err
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(SMALL)
    missing = tmp_path / "never-ran"
    assert main(["validate", str(scenario), "--emulated", str(missing), "--out", str(tmp_path / "v")]) == 2
    assert f"--emulated {missing}: does not exist" in capsys.readouterr().err


def test_replication_verdicts_judge_the_interval():
    from commands.sweep import replication_verdicts

    def runs(values, verdicts=None):
        return [[{"name": "rec", "strict": True, "op": ">=", "threshold": 0.99, "observed": v,
                  "verdict": (verdicts or {}).get(i) or ("pass" if v >= 0.99 else "fail")}]
                for i, v in enumerate(values)]

    block = {"seeds": [1, 2, 3], "metrics": {}}
    assert replication_verdicts(block, runs([1.0, 1.0, 1.0]))["gates"][0]["interval_verdict"] == "pass"
    assert replication_verdicts(block, runs([0.5, 0.6, 0.55]))["gates"][0]["interval_verdict"] == "fail"
    straddles = replication_verdicts(block, runs([0.995, 0.97, 0.999]))
    assert straddles["gates"][0]["interval_verdict"] == "unknown"
    assert straddles["pass_probability"] == pytest.approx(2 / 3)
    undecided = replication_verdicts(block, runs([1.0, None, 1.0], {1: "unknown"}))
    assert undecided["gates"][0]["interval_verdict"] == "unknown"


def test_sweep_points_carry_replications(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(SMALL)
    doc = sweep(path, {"fleet.sim_clients": [20]}, tmp_path / "sweep", echo=lambda *_: None, replications=2)
    [point] = doc["points"]
    block = point["replications"]
    assert block["n"] == 2 and block["seeds"] == [3, 4] and 0.0 <= block["pass_probability"] <= 1.0
    [gate] = block["gates"]
    assert len(gate["values"]) == 2 and gate["interval_verdict"] in ("pass", "fail", "unknown")
    assert len(block["metrics"]["connections"]["values"]) == 2
    assert (tmp_path / "sweep" / "point-000" / "replications" / "seed-4" / "summary.json").exists()


def test_sweep_varies_one_fix_at_a_time_on_a_base_profile(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(SMALL)
    doc = sweep(path, {"fix": ["none", "refresh_before_reconnect", "jitter"]}, tmp_path / "sweep",
                echo=lambda *_: None, base={"profile": "legacy", "fix": ["exp_backoff"]})
    assert [p["profile"] for p in doc["points"]] == [
        "legacy+exp_backoff", "legacy+exp_backoff+refresh_before_reconnect", "legacy+exp_backoff+jitter"]
    scenario = json.loads((tmp_path / "sweep" / "point-001" / "scenario.json").read_text())
    assert scenario["fleet"]["profile"]["enable"] == ["exp_backoff", "refresh_before_reconnect"]


def test_ablate_names_the_fix_that_removes_the_403s(tmp_path, capsys):
    from commands.cli import main

    code = main(["ablate", "token-expiry-403", "--clients", "100", "--fixes", "jitter,refresh_before_reconnect",
                 "--out", str(tmp_path / "ablate")])
    out = capsys.readouterr().out
    assert code == 0
    assert "http_403 removed by: refresh_before_reconnect" in out
    assert "gate 'no handshake 403' (fails on legacy) passes with: refresh_before_reconnect" in out
    assert "legacy+jitter:" in out and "legacy+refresh_before_reconnect:" in out


def test_a_weighted_simulation_reports_counts_for_the_whole_fleet(tmp_path):
    from formats.record import RunRecord
    from sim.engine import simulate

    doc = __import__("yaml").safe_load(SMALL)
    doc["fleet"]["sim_clients"] = 200
    sc = from_dict(doc)
    exact = simulate(sc, tmp_path / "exact")
    weighted = simulate(sc, tmp_path / "weighted", max_agents=50)
    assert (exact["sampling_weight"], weighted["sampling_weight"]) == (1, 4)
    assert weighted["clients"] == 200 and weighted["clients_connected_at_end"] % 4 == 0
    # every count is for the 200 clients, not the 50 agents: close to the exact run's, not a quarter of it
    for key in ("connections", "attempts", "peak_active"):
        assert 0.7 * exact[key] <= weighted[key] <= 1.3 * exact[key], key
    assert weighted["closes_by_code"]["1012"] == exact["closes_by_code"]["1012"] == 200
    assert RunRecord(tmp_path / "weighted").timeseries["attempts"].sum() == weighted["attempts"]


def test_a_missing_calibration_file_is_a_usage_error_before_a_sweep_runs(tmp_path, capsys):
    from commands.cli import main

    out = tmp_path / "sweep"
    code = main(["sweep", "token-expiry-403", "--vary", "fleet.sim_clients=50,60", "--out", str(out),
                 "--calibration", str(tmp_path / "nowhere.json")])
    err = capsys.readouterr().err
    assert code == 2 and "nowhere.json" in err and "calibration file not found" in err, err
    assert not (out / "sweep.csv").exists()


def test_an_ablation_run_again_resumes_and_names_its_calibration_file(tmp_path, capsys):
    from commands.cli import main
    from formats.calibration import DEFAULT_PATH

    args = ["ablate", "token-expiry-403", "--clients", "50", "--fixes", "jitter", "--out", str(tmp_path / "a"),
            "--calibration", str(DEFAULT_PATH)]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    again = capsys.readouterr().out
    assert "resuming" in again and "2 of 2 runs" in again, again
    assert first.splitlines()[-3:] == again.splitlines()[-3:]  # the same ablation, none of it run twice
    meta = json.loads(next((tmp_path / "a").rglob("meta.json")).read_text())
    assert meta["calibration"]["name"] == str(DEFAULT_PATH)
