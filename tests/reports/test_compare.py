"""The before/after table: who is before, per-day normalisation, change in percent."""
from pathlib import Path

import pytest

from reports.compare import change_text, compare
from reports.record import load_run
from tests.reports.synthetic import SyntheticRun, write_run


def _run(tmp_path, name, **kw):
    return load_run(write_run(tmp_path / name, SyntheticRun(**kw)))


def test_legacy_is_before_and_fixed_after_whatever_the_order(tmp_path):
    fixed = _run(tmp_path, "b", profile="fixed", duration=43200, failed_handshakes=[403],
                 summary={"duration_p95_s": 7300, "manual_refreshes": 1})
    legacy = _run(tmp_path, "a", profile="legacy", duration=43200, failed_handshakes=[403] * 10,
                  summary={"duration_p95_s": 900, "manual_refreshes": 15, "storms": 25})
    [comp] = compare([fixed, legacy])
    assert comp.legacy_vs_fixed and comp.before is legacy and comp.after is fixed
    rows = {r.metric.key: r for r in comp.rows}
    # half a day of scenario time: counts double when stated per day
    assert rows["http_403"].before == pytest.approx(20) and rows["http_403"].after == pytest.approx(2)
    assert rows["http_403"].change_text == "-90%"
    assert rows["storms"].before == pytest.approx(50)
    assert rows["manual_refreshes"].after_text == "1 in 12h"  # half a day: the count over its length
    assert rows["duration_p95_s"].before_text == "15m" and rows["duration_p95_s"].after_text == "2h01m"
    assert rows["duration_p95_s"].change_text == "+711%"


def test_unobserved_p95_is_unknown_not_zero(tmp_path):
    a = _run(tmp_path, "a", profile="legacy", summary={"duration_p95_s": 900})
    b = _run(tmp_path, "b", profile="fixed", summary={"duration_p95_s": None})
    row = next(r for r in compare([a, b])[0].rows if r.metric.key == "duration_p95_s")
    assert row.after is None and "unknown" in row.after_text and row.change_text == "n/a"


def test_unreached_p95_shows_the_longest_observed_lifetime_as_a_lower_bound(tmp_path):
    a = _run(tmp_path, "a", profile="legacy", summary={"duration_p95_s": 600})
    b = _run(tmp_path, "b", profile="fixed", summary={"duration_p95_s": None, "duration_observed_max_s": 1800})
    row = next(r for r in compare([a, b])[0].rows if r.metric.key == "duration_p95_s")
    assert row.after is None and row.after_text == "> 30m (not reached)" and row.change_text == "> +200%"
    shorter = _run(tmp_path, "c", profile="fixed", summary={"duration_p95_s": None, "duration_observed_max_s": 300})
    row = next(r for r in compare([a, shorter])[0].rows if r.metric.key == "duration_p95_s")
    assert row.after_text == "> 5m (not reached)" and row.change_text == "n/a"  # the bound says nothing of the sign


def test_without_a_legacy_fixed_pair_runs_are_compared_in_order(tmp_path):
    runs = [_run(tmp_path, n, profile={"base": "fixed", "disable": ["jitter"]}) for n in ("x", "y", "z")]
    comps = compare(runs)
    assert [(c.before.label, c.after.label) for c in comps] == [("x", "y"), ("y", "z")]
    assert not comps[0].legacy_vs_fixed
    assert runs[0].profile == "fixed-jitter"  # named by its fixes


def test_legacy_and_fixed_pair_per_engine(tmp_path):
    runs = [_run(tmp_path, f"{e}-{p}", engine=e, profile=p)
            for e in ("emulate", "simulate") for p in ("legacy", "fixed")]
    pairs = {(c.before.label, c.after.label) for c in compare(runs)}
    assert pairs == {("emulate-legacy", "emulate-fixed"), ("simulate-legacy", "simulate-fixed")}


@pytest.mark.parametrize("before, after, text", [
    (50, 2, "-96%"), (0, 0, "0%"), (0, 3, "new (was 0)"), (None, 3, "n/a"), (10, 15, "+50%")])
def test_change_text(before, after, text):
    assert change_text(before, after) == text


def test_the_storm_row_names_the_rule_both_runs_were_counted_by(tmp_path):
    rule = "60-s peaks of reconnects ≥ 10% of the fleet above their surroundings (Poisson p < 1e-09)"
    legacy = _run(tmp_path, "a", profile="legacy", summary={"storms": 40, "storm_rule": rule})
    fixed = _run(tmp_path, "b", profile="fixed", summary={"storms": 2, "storm_rule": rule})
    row = next(r for r in compare([legacy, fixed])[0].rows if r.metric.key == "storms")
    assert row.metric.label == f"reconnection storms: {rule}" and row.change_text == "-95%"


def test_storms_counted_by_different_rules_do_not_compare(tmp_path):
    legacy = _run(tmp_path, "a", profile="legacy", summary={"storms": 40})        # finalized before rules were named
    fixed = _run(tmp_path, "b", profile="fixed", summary={"storms": 2, "storm_rule": "60-s peaks ..."})
    row = next(r for r in compare([legacy, fixed])[0].rows if r.metric.key == "storms")
    assert "different rules" in row.metric.label and row.change_text == "n/a"
    assert row.before == pytest.approx(40 * 86400 / 600)   # the counts are still shown


def test_counts_are_over_the_run_length_and_per_day_only_from_a_day_on(tmp_path):
    short = _run(tmp_path, "short", profile="legacy", duration=1800, failed_handshakes=[403] * 757)
    day = _run(tmp_path, "day", profile="fixed", duration=86400, failed_handshakes=[403] * 20)
    rows = {r.metric.key: r for r in compare([short, day])[0].rows}
    assert rows["http_403"].before_text == "757 in 30m"   # was 36336/day (757 in 30m)
    assert rows["http_403"].after_text == "20/day"


def test_unlike_runs_are_compared_per_client_and_not_as_before_after(tmp_path):
    emulated = _run(tmp_path, "emu", engine="emulate", profile="fixed", clients=300, failed_handshakes=[403] * 3,
                    duration=86400)
    simulated = _run(tmp_path, "sim", engine="simulate", profile="fixed", clients=100_000,
                     failed_handshakes=[403] * 1000, duration=86400)
    [comp] = compare([emulated, simulated])
    assert not comp.legacy_vs_fixed and comp.per_client
    row = next(r for r in comp.rows if r.metric.key == "http_403")
    assert row.before == pytest.approx(10.0) and row.after == pytest.approx(10.0) and row.change_text == "+0%"
    assert row.before_text.startswith("10.0 per 1,000 clients per day (3 in 24h, 300 clients)")


def test_the_seed_expectations_come_from_the_repository_file():
    import yaml

    from reports.compare import METRICS, SEED_FILE
    root = Path(__file__).resolve().parents[2]
    rows = yaml.safe_load((root / "scenarios" / SEED_FILE).read_text())["rows"]
    seeded = {m.key: (m.seed_before, m.seed_after) for m in METRICS if m.seed_before}
    assert seeded == {r["key"]: (r["before"], r["after"]) for r in rows}
