"""`stormbench validate` end to end: a real emulation and the model on one scenario (slow)."""
from __future__ import annotations

import json

import pytest

from commands.cli import main

TINY = """name: validate-tiny
seed: 9
duration: 10m
time_scale: 10
system: {behaviour: fixed, token_ttl: 15m, heartbeat: {interval: 30s, timeout: 20s}}
fleet:
  clients: 20
  profile: fixed
  network: {drops: {every: 5m}}
faults:
  - {at: 5m, kind: server_restart, mode: graceful}
"""


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_validate_prints_the_error_table(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    code = main(["validate", str(path), "--out", str(tmp_path / "v")])
    out = capsys.readouterr().out
    assert code in (0, 1)
    doc = json.loads((tmp_path / "v" / "validate.json").read_text())
    metrics = [r["metric"] for r in doc["rows"]]
    assert metrics == ["duration_p50_s", "duration_p95_s", "reconnect_attempts", "peak_reconnects_per_s",
                       "peak_reconnects_per_s_5s"]
    assert all(m in out for m in metrics)
    assert doc["rows"][2]["emulated"] > 0 and doc["rows"][2]["model"] > 0  # both engines saw the restart
    assert all(r["verdict"] in ("within", "interval", "unknown", "unresolved", "NO") for r in doc["rows"])
    peaks = [r for r in doc["rows"] if r["metric"].startswith("peak_")]
    assert all(r["resolution_s"] >= 0.002 * 10 and r["bin_s"] in (1, 5) for r in peaks)  # at least the floor x10
    assert code == (1 if any(r["verdict"] == "NO" for r in doc["rows"]) else 0)
    assert f"exit {code}:" in out


def test_the_rolling_peak_averages_a_burst_over_five_seconds(tmp_path):
    """`peak_reconnects_per_s_5s`: a 1-s spike of 100 and a 5-s plateau of 20/s both read 20/s, where
    the 1-s peak reads 100 and 20; a run shorter than the window gives its mean."""
    import pandas as pd

    from formats.record.finalize import PEAK_WINDOW_S, rolling_peak

    assert PEAK_WINDOW_S == 5
    spike = pd.Series([0, 0, 100, 0, 0, 0, 0, 0])
    plateau = pd.Series([0, 20, 20, 20, 20, 20, 0, 0])
    assert (spike.max(), rolling_peak(spike, 5)) == (100, 20.0)
    assert (plateau.max(), rolling_peak(plateau, 5)) == (20, 20.0)
    assert rolling_peak(pd.Series([3, 6]), 5) == 4.5
    assert rolling_peak(pd.Series([], dtype=float), 5) == 0.0


def test_validate_reuses_an_emulated_record_and_derives_a_newer_metric(tmp_path, capsys):
    """`--emulated DIR` whose summary predates a metric: it is derived again from the record, so the
    table compares like with like (here the model against its own record standing in for one)."""
    from sim.engine import simulate
    from formats.scenario import from_dict
    import yaml

    sc = from_dict(yaml.safe_load(TINY))
    simulate(sc, tmp_path / "emu")
    summary = json.loads((tmp_path / "emu" / "summary.json").read_text())
    del summary["peak_reconnects_per_s_5s"]
    (tmp_path / "emu" / "summary.json").write_text(json.dumps(summary))
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    code = main(["validate", str(path), "--emulated", str(tmp_path / "emu"), "--out", str(tmp_path / "v")])
    doc = json.loads((tmp_path / "v" / "validate.json").read_text())
    row = {r["metric"]: r for r in doc["rows"]}["peak_reconnects_per_s_5s"]
    assert row["emulated"] is not None and row["emulated"] > 0
    assert code in (0, 1) and "peak_reconnects_per_s_5s" in capsys.readouterr().out


def test_several_emulated_records_are_compared_by_their_means(tmp_path, capsys):
    """One emulated run's peaks vary from run to run on a shared machine, so `--emulated` repeated
    (or `--emulations K`) compares the engines' means: the emulated value is the records' mean and
    the model's interval is where the mean of that many runs falls (narrower than one run's)."""
    import dataclasses

    import yaml

    from formats.scenario import from_dict
    from sim.engine import simulate
    from sim.replicate import prediction_interval

    sc = from_dict(yaml.safe_load(TINY))
    records = []
    for seed in (9, 10):  # the model's own runs stand in for two emulations
        simulate(dataclasses.replace(sc, seed=seed), tmp_path / f"emu-{seed}")
        records.append(json.loads((tmp_path / f"emu-{seed}" / "summary.json").read_text()))
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    code = main(["validate", str(path), "--replications", "3", "--out", str(tmp_path / "v"),
                 "--emulated", str(tmp_path / "emu-9"), "--emulated", str(tmp_path / "emu-10")])
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "v" / "validate.json").read_text())
    row = {r["metric"]: r for r in doc["rows"]}["reconnect_attempts"]
    assert row["emulated_values"] == [r["reconnect_attempts"] for r in records]
    assert row["emulated"] == pytest.approx(sum(row["emulated_values"]) / 2)
    assert row["model_pi"] == pytest.approx(prediction_interval(row["model_values"], runs=2))
    one = prediction_interval(row["model_values"])
    assert row["model_pi"][1] - row["model_pi"][0] < one[1] - one[0]
    assert "model 95% (mean of 2)" in out and code in (0, 1)
    refused = main(["validate", str(path), "--emulations", "2", "--emulated", str(tmp_path / "emu-9"),
                    "--out", str(tmp_path / "v2")])
    assert refused == 2
