"""The whole report: files written, user text escaped, missing parts noted, bad input refused."""
import base64
import json
import re

import pytest

from commands.cli import main as stormbench
from reports import render
from formats.record.run import RecordError
from tests.reports.synthetic import SyntheticRun, write_run

HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def legacy_fixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    gates = [{"name": "p95 connection duration", "verdict": "fail", "strict": True, "observed": 900,
              "op": ">=", "threshold": 7200, "provenance": {"metric": "connection_duration", "stat": "p95",
                                                     "connections": 3, "censored": 1}}]
    legacy = write_run(root / "legacy", SyntheticRun(
        name=HOSTILE, description=HOSTILE, profile="legacy", duration=3600, storm=(100, 130, 20),
        closes={"4401": [5, 6, 7], "1006": [10]}, faults=[{"at": 100, "for": 60, "kind": "partition"}],
        lost={3}, duplicated={4}, gates=gates, failed_handshakes=[403, 403],
        scenario_gates=[{"name": "p95", "metric": "connection_duration", "stat": "p95", "op": ">=", "value": "2h"}],
        summary={"duration_p95_s": 900}))
    fixed = write_run(root / "fixed", SyntheticRun(name=HOSTILE, profile="fixed", duration=3600,
                                                   gates=[dict(gates[0], verdict="pass", observed=8000)],
                                                   summary={"duration_p95_s": 8000}))
    sim = write_run(root / "sim", SyntheticRun(name=HOSTILE, engine="simulate", profile="fixed", duration=3600,
                                               clients=1000, base_attempts=2))
    index = render([legacy, fixed, sim], root / "out")
    return index, index.read_text(encoding="utf-8")


def test_writes_index_markdown_and_every_png_it_embeds(legacy_fixed):
    index, html = legacy_fixed
    embedded = re.findall(r'<img src="data:image/png;base64,([^"]+)"[^>]*data-file="([^"]+)"', html)
    names = {name for _, name in embedded}
    assert {"survival.png", "attempts.png", "closes.png", "active.png", "delivery.png",
            "overlay_survival_0.png", "overlay_attempts_0.png"} <= names
    for data, name in embedded:
        png = base64.b64decode(data)
        assert png.startswith(b"\x89PNG") and (index.parent / name).read_bytes() == png
    assert (index.parent / "summary.md").is_file()
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html  # no network


def test_user_text_is_escaped_in_html_and_markdown(legacy_fixed):
    index, html = legacy_fixed
    assert "<script>" not in html and "onerror=alert(1)>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    md = (index.parent / "summary.md").read_text(encoding="utf-8")
    assert "<script>" not in md and "\\<script\\>" in md


def test_before_after_table_is_filled_with_measured_values(legacy_fixed):
    index, html = legacy_fixed
    md = (index.parent / "summary.md").read_text(encoding="utf-8")
    table = md[md.index("## Before / after"):md.index("## Connection lifetimes")]
    assert "legacy vs fixed" in table
    assert "| metric | before: legacy (legacy, emulate) | after: fixed (fixed, emulate) | change | seed system" in table
    assert "| 403 auth errors | 2 in 1h | 0 in 1h | -100% | \\~20/day → \\~1/day |" in table
    assert "seed system (scenarios/expectations/seed.yaml)" in table and "DESIGN.md" not in md
    assert "| connection duration p95 | 15m | 2h13m | +789% |" in table


def test_gate_verdicts_show_provenance(legacy_fixed):
    _, html = legacy_fixed
    assert '<td class="fail">fail</td>' in html and '<td class="pass">pass</td>' in html
    assert "connections: 3; censored: 1" in html and "{&quot;connections" not in html  # sentences, not JSON


def test_missing_files_skip_their_sections_with_a_note(tmp_path):
    run = write_run(tmp_path / "partial", SyntheticRun(omit=("timeseries.csv", "ledger.csv", "gates.json")))
    (run / "connections.csv").write_text("client,conn\nc0,1\n")  # damaged: no duration column
    html = render([run], tmp_path / "out").read_text()
    assert "connections.csv: missing column(s) duration_s, censored" in html
    assert "partial: no gates.json — verdicts not shown" in html
    assert "timeseries.csv: missing" in html and "ledger.csv: missing" in html
    assert "survival.png" not in html and "attempts.png" not in html


def test_invalid_json_is_named_with_its_line(tmp_path):
    run = write_run(tmp_path / "bad", SyntheticRun())
    (run / "summary.json").write_text('{"engine": "emulate",\n "clients": }')
    html = render([run], tmp_path / "out").read_text()
    assert "summary.json: not valid JSON (line 2, column 13" in html


def test_a_directory_without_a_run_record_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordError, match="no run-record files found"):
        render([tmp_path / "empty"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_prints_the_index_path_and_exits_2_on_bad_input(tmp_path, capsys):
    run = write_run(tmp_path / "run", SyntheticRun())
    assert stormbench(["report", str(run), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out" / "index.html")
    assert stormbench(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "nope: not a directory" in err


def test_sweep_renders_a_capacity_curve_and_recommends_a_setting(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    points = []
    for delay, breaks_at in ((5, 10000), (30, 100000)):
        for fleet in (1000, 10000, 100000):
            failed = fleet >= breaks_at
            points.append({"params": {"fleet.sim_clients": fleet, "client.max_delay": delay},
                           "summary": {"peak_reconnects_per_s": fleet / delay},
                           "gates": [{"name": "no storm", "verdict": "fail" if failed else "pass", "strict": True}]})
    (sweep / "sweep.json").write_text(json.dumps({"scenario": "deploy-storm", "points": points,
                                                  "vary": {"fleet.sim_clients": [], "client.max_delay": []}}))
    html = render([sweep], tmp_path / "out").read_text()
    assert "capacity_0.png" in html
    assert "<td>client.max_delay=5</td><td>1,000</td><td>10,000: no storm</td>" in html
    assert "recommended: client.max_delay=30 (holds 10,000 clients, every gate)" in html


def test_prometheus_verdicts_of_a_run_are_shown_beside_the_record_ones(tmp_path):
    run = write_run(tmp_path / "run", SyntheticRun(gates=[{"name": "p50", "verdict": "pass", "strict": True}]))
    (run / "prometheus_gates.json").write_text(json.dumps([
        {"name": "p50", "verdict": "unknown", "strict": True, "observed": 91.6, "op": ">=", "threshold": 90,
         "provenance": {"bucket": [60, 120]}}]))
    html = render([run], tmp_path / "out").read_text()
    assert "run, judged by Prometheus: 0 pass, 0 fail, 1 unknown" in html
    assert "run (wall clock): 1 pass, 0 fail, 0 unknown" in html  # the clock that judged it


def test_a_pairwise_comparison_has_no_seed_column(tmp_path):
    runs = [write_run(tmp_path / e, SyntheticRun(engine=e, profile="fixed")) for e in ("emulate", "simulate")]
    md = (render(runs, tmp_path / "out").parent / "summary.md").read_text()
    table = md[md.index("## Before / after"):md.index("## Connection lifetimes")]
    assert "side by side (not before/after; different engines or fleet sizes" in table
    assert "seed system" not in table and "before:" not in table and "after:" not in table
    assert "per 1,000 clients per day" in table


@pytest.mark.parametrize("name, text, note", [
    ("ledger.csv", "kind,client,conversation,msg_id,seq,t\n", None),  # a run that delivered nothing
    ("ledger.csv", "kind,client,conversation,msg_id,seq,t\ndisplayed,c0,k0,m1,abc,1.0\n",
     "ledger.csv: 1 non-numeric value(s) in column seq read as missing"),
    ("timeseries.csv", "t,attempts\n0,1\nabc,2\n,3\n", "timeseries.csv: 2 row(s) without a time (column t) left out"),
    ("timeseries.csv", "t,attempts\n0,x\n1,2\n", "timeseries.csv: 1 non-numeric value(s) in column attempts"),
])
def test_damaged_tables_are_rendered_with_a_note(tmp_path, name, text, note):
    run = write_run(tmp_path / "damaged", SyntheticRun())
    (run / name).write_text(text)
    html = render([run], tmp_path / "out").read_text()
    if note:
        assert note in html


def test_an_incomplete_run_says_so(tmp_path):
    run = write_run(tmp_path / "partial", SyntheticRun())
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({**meta, "incomplete": "interrupted (Ctrl-C) after 12 s"}))
    html = render([run], tmp_path / "out").read_text()
    assert "INCOMPLETE RUN: interrupted (Ctrl-C) after 12 s" in html


def test_cli_takes_a_folder_of_run_records_such_as_a_main_job(tmp_path, capsys):
    job = tmp_path / "runs" / "main-job"
    write_run(job / "legacy", SyntheticRun(profile="legacy", failed_handshakes=[403]))
    write_run(job / "fixed", SyntheticRun(profile="fixed"))
    (job / "report").mkdir()  # the job's own report folder holds no record and is passed over
    (job / "report" / "index.html").write_text("old")
    assert stormbench(["report", str(job), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "summary.md").read_text(encoding="utf-8")
    assert "before: legacy (legacy, emulate) | after: fixed (fixed, emulate)" in md
    write_run(tmp_path / "runs" / "solo", SyntheticRun(name="solo"))
    assert stormbench(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "all")]) == 0  # two levels down
    assert "3 run(s)" in (tmp_path / "all" / "summary.md").read_text(encoding="utf-8")
    assert stormbench(["report", str(tmp_path / "out")]) == 2  # a report folder is no run record
    assert "no run-record files found" in capsys.readouterr().err


def test_the_verdict_banner_comes_first_and_says_what_failed_and_why(legacy_fixed):
    index, html = legacy_fixed
    assert html.index('id="verdict"') < html.index('id="runs"') < html.index('id="gates"')
    assert '<div class="banner fail"><strong>legacy (' in html
    assert "FAIL — 1 of 1 strict gates failed: p95 connection duration" in html
    assert "p95 connection duration: p95 15m; gate &gt;= 2h" in html
    assert '<div class="banner pass"><strong>fixed (' in html and "PASS — every strict gate passed (1)" in html
    md = (index.parent / "summary.md").read_text(encoding="utf-8")
    assert md.index("## Verdict") < md.index("## Runs")


def test_failed_count_gates_show_their_busiest_seconds_as_a_table(tmp_path):
    gates = [{"name": "no 403s", "verdict": "fail", "strict": True, "observed": 1140.0, "op": "==", "threshold": 0,
              "provenance": {"metric": "http_403", "stat": "count", "phase": "run", "events": 1140,
                             "where": {"busiest_seconds": [[754, 1140]]}}}]
    html = render([write_run(tmp_path / "run", SyntheticRun(gates=gates))], tmp_path / "out").read_text()
    assert "run: busiest windows of the failed gates" in html
    assert "<td>no 403s</td><td>second 12m34s</td><td>1,140</td>" in html
    assert "busiest_seconds" not in html and "1,140 HTTP 403s; gate == 0" in html


def test_a_weighted_run_says_how_many_clients_each_agent_stood_for(tmp_path):
    run = tmp_path / "big"
    run.mkdir()
    (run / "scenario.json").write_text(json.dumps({"name": "s", "duration": 60, "fleet": {"clients": 10}}))
    (run / "meta.json").write_text(json.dumps({"engine": "simulate", "sampling": {"agents": 5000, "weight": 200}}))
    (run / "summary.json").write_text(json.dumps({"clients": 1000000, "reconnect_attempts": 200000}))
    html = render([run], tmp_path / "out").read_text()
    assert "1,000,000 (each simulated client stood for 200)" in html


def test_the_self_check_reads_as_sentences_not_json(tmp_path):
    run = write_run(tmp_path / "run", SyntheticRun())
    meta = json.loads((run / "meta.json").read_text())
    check = {"workers": [{"pid": 1, "loop_lag_p99_s": 0.0123, "loop_lag_max_s": 0.05, "cpu_mean_pct": 31.0,
                          "fds_max": 70}], "lag_spikes": [[754.0, 0.05]], "lag_spike_floor_s": 0.002,
             "fd_limit_per_process": 1024, "fleet_bound_by_fds": 250, "load_generator_bottleneck": False,
             "bottleneck_reasons": []}
    (run / "meta.json").write_text(json.dumps({**meta, "self_check": check}))
    html = render([run], tmp_path / "out").read_text()
    assert ("self-check: the load generator was not the bottleneck (1 worker); the event loop lagged 12.3 ms at "
            "p99 (worker 0); 1 stall of the event loop of at least 2 ms; the longest 50 ms at 12m34s of scenario "
            "time; worker 0 used 31% of a core on average") in html
    assert "loop_lag_p99_s" not in html and "lag_spikes" not in html
