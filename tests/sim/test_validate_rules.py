"""How `stormbench validate` judges a row: within tolerance of the model's mean, inside the model's
interval for one run, or not comparable where the emulation could not resolve a per-second peak."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from formats.record.resolution import time_resolution
from sim.replicate import prediction_interval, spread
from commands.validate import (
    DISAGREE, INTERVAL, UNKNOWN, UNRESOLVED, WITHIN, error_table, format_table, judge, peak_resolution,
    time_scale_for,
)


def test_prediction_interval_is_students_t_for_one_more_run():
    # mean 3, sd sqrt(2.5), t(0.975, 4) = 2.776445, one run: sqrt(1 + 1/5)
    lo, hi = prediction_interval([1, 2, 3, 4, 5])
    half = 2.776445 * 2.5 ** 0.5 * 1.2 ** 0.5
    assert (lo, hi) == pytest.approx((3 - half, 3 + half), rel=1e-5)
    assert prediction_interval([4]) is None and prediction_interval([None, 2]) is None
    s = spread([10, 12, None, 14])
    assert s["mean"] == 12 and s["n"] == 3 and s["values"] == [10, 12, None, 14]
    assert s["ci"][1] - s["ci"][0] < s["pi"][1] - s["pi"][0]  # one run is noisier than the mean


def row(model, emulated, *, values=None, resolution=None):
    sp = {"m": spread(values)} if values else None
    return error_table({"m": model}, {"m": emulated}, ("m",), spread=sp, resolution={"m": resolution})[0]


def test_each_rule_and_its_verdict():
    assert judge(row(105, 100), 0.1)[0] == WITHIN
    assert judge(row(None, None), 0.1)[0] == UNKNOWN
    assert judge(row(150, 100), 0.1)[0] == DISAGREE
    assert judge(row(None, 100), 0.1) == (DISAGREE, "only the emulation could estimate it")
    # a quantile beyond what the run observed: the emulation and some model seeds could not estimate it
    partly = row(None, None, values=[None, 1400.0, 900.0])
    assert partly["model"] == 1150.0
    assert judge(partly, 0.1) == (UNKNOWN, "the emulation could not estimate it, nor could the model with 1 of 3 seeds")
    assert judge(row(None, None, values=[1400.0, 900.0]), 0.1)[0] == DISAGREE
    noisy = row(None, 100, values=[60, 140, 90, 130, 70])  # mean 98: within 10% of the mean
    assert noisy["model"] == 98 and judge(noisy, 0.1)[0] == WITHIN
    wide = row(None, 130, values=[60, 140, 90, 130, 70])  # 33% off the mean, inside one run's interval
    verdict, why = judge(wide, 0.1)
    assert verdict == INTERVAL and "95% interval" in why
    tight = row(None, 130, values=[97, 98, 99, 98, 98])
    assert judge(tight, 0.1)[0] == DISAGREE


def test_an_unresolved_peak_says_why_and_which_time_scale_resolves_it():
    res = {"resolution_s": 1.8, "bin_s": 1, "peak_t": 733.0, "time_scale": 30.0}
    verdict, why = judge(row(150, 100, resolution=res), 0.1)
    assert verdict == UNRESOLVED
    assert "60 ms late" in why and "1.80 s" in why and "> 10% of the 1-s bin" in why and "--time-scale 1.7 " in why
    fine = {**res, "resolution_s": 0.09}  # a herd displaced by 9% of a bin changes its count by at most 9%
    assert judge(row(150, 100, resolution=fine), 0.1)[0] == DISAGREE
    assert judge(row(150, 100, resolution={**res, "resolution_s": 0.3}), 0.4)[0] == DISAGREE
    assert judge(row(105, 100, resolution=res), 0.1)[0] == WITHIN  # agreeing is agreeing at any resolution
    table = format_table([row(105, 100), row(150, 100, resolution=res)], 0.1)
    assert "exit 0: 1 within 10%, 0 inside the model's interval, 0 unknown to both, " \
           "1 not comparable at this time scale, 0 disagree" in table
    assert "exit 1:" in format_table([row(150, 100)], 0.1)


def test_time_resolution_is_the_longest_loop_lag_near_the_moment_times_the_scale():
    check = {"lag_spikes": [[10.0, 0.004], [700.0, 0.05], [733.5, 0.02]], "workers": [{"loop_lag_max_s": 0.05}],
             "lag_spike_floor_s": 0.002}
    assert time_resolution(check, 30, (730, 740)) == pytest.approx(0.6)
    assert time_resolution(check, 30) == pytest.approx(1.5)
    assert time_resolution(check, 30, (100, 200)) == pytest.approx(0.06)  # no spike: the floor bounds it
    assert time_resolution(check, 30, (699, 699.5)) == pytest.approx(1.5)  # blocked from 698.5 to 700
    assert time_resolution(check, 720, (100, 101)) == pytest.approx(1.44)  # x720: a second is 1.4 ms of wall
    older = {"workers": [{"loop_lag_max_s": 0.01}, {"loop_lag_max_s": 0.03}]}  # before spikes were timed
    assert time_resolution(older, 10, (0, 5)) == pytest.approx(0.3)
    assert time_resolution({}, 10) is None


def test_peak_resolution_looks_around_the_emulated_peak(tmp_path):
    counts = [0] * 100
    counts[40:45] = [5, 20, 30, 20, 5]
    counts[80] = 40  # the 1-s peak, alone
    (tmp_path / "timeseries.csv").write_text("t,reconnects\n" + "".join(f"{t},{c}\n" for t, c in enumerate(counts)))
    spikes = [[41.5, 0.05], [80.2, 0.003]]
    (tmp_path / "meta.json").write_text(json.dumps({"self_check": {"lag_spikes": spikes}}))
    one = peak_resolution(tmp_path, "peak_reconnects_per_s", 20.0)
    assert one["peak_t"] == 80 and one["resolution_s"] == pytest.approx(0.06)
    five = peak_resolution(tmp_path, "peak_reconnects_per_s_5s", 20.0)
    assert five["peak_t"] == 40 and five["resolution_s"] == pytest.approx(1.0) and five["bin_s"] == 5
    assert time_scale_for(five, 0.1) == pytest.approx(10.0)  # 0.05 s of wall lag = 0.5 s of scenario time
    assert time_scale_for(five, 0.5) == 20.0  # already resolved: never above the run's own


def test_a_duration_difference_below_the_emulations_resolution_is_not_judged():
    """Load-spike's p50 is a shed connection's life: 4 ms emulated (a close round trip at x2), 0 in
    the model: -100%, but both within the 4 ms the emulation can resolve at x2."""
    res = {"resolution_s": 0.004, "bin_s": None, "time_scale": 2.0}
    verdict, why = judge(row(0.0, 0.004, resolution=res), 0.1)
    assert verdict == UNRESOLVED and "within the emulation's time resolution" in why
    assert judge(row(0.0, 0.05, resolution=res), 0.1)[0] == DISAGREE


def _timeseries(run: Path, per_second: dict[int, int], end: int) -> None:
    run.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"{t},{per_second.get(t, 0)}" for t in range(end))
    (run / "timeseries.csv").write_text("t,reconnects\n" + rows + "\n")


def test_an_unresolved_peak_is_compared_at_the_finest_bin_the_emulation_resolves(tmp_path):
    """At x720 a 50 ms loop stall around the herd is 36 s of scenario time: neither the 1-s nor the
    5-s peak can be placed, nor any bin shorter than 360 s at a 10% tolerance; the row compares the
    highest mean rate over 600 s, named so, with the model's mean over its seeds."""
    from commands.validate import peak_over, resolved_peak_row

    emu = tmp_path / "emulate"
    _timeseries(emu, {t: 10 for t in range(1000, 1060)}, 3000)  # 600 reconnects in one minute
    (emu / "meta.json").write_text(json.dumps({"self_check": {"lag_spikes": [[1030.0, 0.05]], "lag_spike_floor_s": 0.002}}))
    models = []
    for k, rate in enumerate((8, 12)):  # two seeds: 480 and 720 reconnects in that minute
        _timeseries(tmp_path / f"m{k}", {t: rate for t in range(1010, 1070)}, 3000)
        models.append(tmp_path / f"m{k}")
    assert peak_over(emu, 1) == 10 and peak_over(emu, 5) == 10
    row = resolved_peak_row([emu], models, 720, 0.10)
    assert row["metric"] == "peak_reconnects_per_s_600s" and row["bin_s"] == 600
    assert row["emulated"] == pytest.approx(1.0)  # 600 reconnects / 600 s
    assert row["model"] == pytest.approx(1.0)  # (480 + 720) / 2 / 600
    assert row["resolution_s"] == pytest.approx(36.0)
    assert judge(row, 0.10)[0] == "within"
    quiet = tmp_path / "quiet"  # no stall beyond the floor: 1.44 s at x720, resolved at 15 s
    _timeseries(quiet, {t: 10 for t in range(1000, 1060)}, 3000)
    (quiet / "meta.json").write_text(json.dumps({"self_check": {"lag_spikes": [], "lag_spike_floor_s": 0.002}}))
    assert resolved_peak_row([quiet], models, 720, 0.10)["bin_s"] == 15
    both = resolved_peak_row([emu, quiet], models, 720, 0.10)  # two runs: the median (lower) resolution decides
    assert both["bin_s"] == 15 and both["emulated_values"] == [peak_over(emu, 15), peak_over(quiet, 15)]
