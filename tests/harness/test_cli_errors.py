"""Bad input to `run`, `gates` and `main-job` as a new user meets it: exit 2 and one line naming the
file, the field or flag and what was expected; never a traceback, never an earlier result lost."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from commands.cli import main as stormbench
from formats.record import files
from tests.ctrl_c import interrupt_cli
from tests.harness.synth import session, write_record

ROOT = Path(__file__).resolve().parents[2]

TINY = """
name: tiny
seed: 3
duration: 10m
fleet: {clients: 20, profile: fixed, arrival: {ramp: 30s}}
gates:
  - {name: no 403, metric: %s, stat: count, op: "==", value: 0}
"""


def tiny(tmp_path: Path, metric: str = "http_403") -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY % metric)
    return path


@pytest.fixture
def run_dir(tmp_path):
    events = session("c0", "k0", [(0, 1, 30, 4401), (31, 31, None, None)])
    gates = [{"name": "few 4401", "metric": 'closes{code="4401"}', "stat": "count", "op": "<=", "value": 5}]
    return write_record(tmp_path / "run", events, duration=100, clients=1, gates=gates)


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_a_gate_on_an_unknown_metric_is_refused_before_the_run(tmp_path, capsys):
    out = tmp_path / "out"
    assert stormbench(["run", str(tiny(tmp_path, "http_404")), "--engine", "simulate", "--out", str(out)]) == 2
    err = error_line(capsys)
    assert "tiny.yaml: $.gates: $[0].metric: expected a metric a run record holds, got 'http_404'" in err
    assert "did you mean 'http_403'?" in err
    assert not out.exists()


def test_run_gates_file_with_an_unknown_metric_is_refused_before_the_run(tmp_path, capsys):
    gates = tmp_path / "g.yaml"
    gates.write_text("- {name: typo, metric: reconects, stat: count, op: '<', value: 5}\n")
    out = tmp_path / "out"
    assert stormbench(["run", str(tiny(tmp_path)), "--engine", "simulate", "--gates", str(gates),
                       "--out", str(out)]) == 2
    assert f"{gates}: $[0].metric" in error_line(capsys) and not out.exists()


def test_rejudging_with_an_unknown_metric_keeps_the_earlier_verdicts(run_dir, tmp_path, capsys):
    assert stormbench(["gates", str(run_dir), "--quiet"]) == 0
    before = (run_dir / files.GATES).read_text()
    gates = tmp_path / "g.yaml"
    gates.write_text("- {name: typo, metric: closes_total, stat: count, op: '<', value: 5}\n")
    assert stormbench(["gates", str(run_dir), "--gates", str(gates)]) == 2
    assert "got 'closes_total'" in error_line(capsys)
    assert (run_dir / files.GATES).read_text() == before


def test_a_gate_with_its_own_promql_may_name_any_metric(run_dir, tmp_path, capsys):
    gates = tmp_path / "g.yaml"
    gates.write_text("- {name: theirs, metric: their_metric, stat: count, op: '<', value: 5, "
                     "promql: 'sum(their_metric)'}\n")
    assert stormbench(["gates", str(run_dir), "--gates", str(gates), "--quiet"]) == 3  # no such scrape: unknown
    assert "their_metric" in json.loads((run_dir / files.GATES).read_text())[0]["provenance"]["reason"]


def test_run_out_that_cannot_be_a_directory(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    assert stormbench(["run", str(tiny(tmp_path)), "--engine", "simulate", "--out", str(afile)]) == 2
    assert f"--out {afile}: is a file, expected a directory" in error_line(capsys)
    assert stormbench(["run", str(tiny(tmp_path)), "--engine", "simulate", "--out", str(afile / "sub")]) == 2
    assert f"--out {afile / 'sub'}: cannot write there" in error_line(capsys)
    assert afile.read_text() == "keep me"


def test_run_refuses_emulate_flags_before_creating_the_record(tmp_path, capsys):
    out = tmp_path / "out"
    assert stormbench(["run", str(tiny(tmp_path)), "--engine", "simulate", "--toxiproxy-url",
                       "http://127.0.0.1:1", "--out", str(out)]) == 2
    assert "--toxiproxy-url: for --engine emulate only" in error_line(capsys)
    assert not out.exists()


def test_gates_out_that_cannot_be_written_keeps_the_record(run_dir, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    assert stormbench(["gates", str(run_dir), "--out", str(afile / "sub")]) == 2
    assert f"--out {afile / 'sub'}: cannot write gates.json and junit.xml there" in error_line(capsys)
    assert stormbench(["gates", "--gates", str(ROOT / "scenarios/gates/staging.yaml"),
                       "--emit-rules", str(afile / "rules.yml")]) == 2
    assert f"--emit-rules {afile / 'rules.yml'}: cannot write the rule file" in error_line(capsys)


def test_gates_on_a_file_or_with_two_sources(run_dir, capsys):
    scenario = run_dir / files.SCENARIO
    assert stormbench(["gates", str(scenario)]) == 2
    assert f"{scenario}: is a file, expected a run record directory" in error_line(capsys)
    assert stormbench(["gates", str(run_dir), "--prometheus", "http://127.0.0.1:9"]) == 2
    assert "not both" in error_line(capsys)
    assert stormbench(["gates", str(run_dir), "--window", "6h"]) == 2
    assert "--window: applies with --prometheus URL or --emit-rules FILE only" in error_line(capsys)


def test_gates_warns_when_the_record_is_incomplete(run_dir, capsys):
    meta = json.loads((run_dir / files.META).read_text())
    (run_dir / files.META).write_text(json.dumps({**meta, files.META_INCOMPLETE: "interrupted (Ctrl-C)"}))
    assert stormbench(["gates", str(run_dir), "--quiet"]) == 0
    assert "the run did not finish (interrupted (Ctrl-C))" in error_line(capsys)


def test_main_job_refuses_a_taken_directory_before_running_either_profile(tmp_path, capsys):
    root = tmp_path / "job"
    (root / "fixed").mkdir(parents=True)
    (root / "fixed" / files.SUMMARY).write_text("{}")
    assert stormbench(["main-job", "--scenario", str(tiny(tmp_path)), "--out", str(root), "--no-report"]) == 2
    assert f"--out {root / 'fixed'}: already holds a run record" in error_line(capsys)
    assert not (root / "legacy").exists()


def test_ctrl_c_keeps_the_partial_record_and_says_where(tmp_path):
    """A real SIGINT, as a terminal sends it, to a real `stormbench run` while its engine runs."""
    out = tmp_path / "out"

    def engine_running(proc) -> None:
        deadline = time.monotonic() + 60
        while not (out / files.EVENTS).exists():  # the engine's writer opened the record: it is running
            assert proc.poll() is None and time.monotonic() < deadline, "the engine never started"
            time.sleep(0.05)

    code, err = interrupt_cli(["run", "staging-day", "--engine", "simulate", "--out", str(out)], tmp_path,
                              engine_running)
    assert code == 130, err
    assert f"stormbench run: interrupted: the partial record is in {out} (not finalized or judged)" in err
    assert "Traceback" not in err
    assert "interrupted (Ctrl-C)" in json.loads((out / files.META).read_text())[files.META_INCOMPLETE]
    rerun = subprocess.run([sys.executable, "-m", "commands.cli", "run", "staging-day", "--engine", "simulate",
                            "--out", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 2 and "already holds a run record" in rerun.stderr


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path, capsys):
    path = tmp_path / "twice.yaml"
    path.write_text((TINY % "http_403").replace("seed: 3\n", "seed: 3\nseed: 4\n"))
    assert stormbench(["run", str(path), "--engine", "simulate", "--out", str(tmp_path / "out")]) == 2
    assert "twice.yaml: line 4, column 1: not valid YAML: key 'seed' appears twice (first on line 3)" \
        in error_line(capsys)


def test_an_unknown_server_trait_is_refused(tmp_path, capsys):
    path = tmp_path / "trait.yaml"
    path.write_text((TINY % "http_403") + "system: {behaviour: {base: fixed, legacy: [handshake_404]}}\n")
    assert stormbench(["run", str(path), "--engine", "simulate", "--out", str(tmp_path / "out")]) == 2
    from system.server.config import LEGACY_TRAITS

    assert (f"trait.yaml: $.system.behaviour.legacy[0]: expected a server trait ({', '.join(LEGACY_TRAITS)}), "
            "got 'handshake_404'") in error_line(capsys)


def test_a_missing_gate_file_names_the_scenario_that_points_to_it(tmp_path, capsys):
    path = tmp_path / "pointer.yaml"
    path.write_text((TINY % "http_403").split("gates:")[0] + "gates: gates/nosuch.yaml\n")
    assert stormbench(["run", str(path), "--engine", "simulate", "--out", str(tmp_path / "out")]) == 2
    assert (f"pointer.yaml: $.gates: expected a gate file (a path relative to the scenario file), but "
            f"{tmp_path / 'gates' / 'nosuch.yaml'} is not a file") in error_line(capsys)


def test_gates_on_a_folder_of_records_points_into_it(run_dir, capsys):
    parent = run_dir.parent
    assert stormbench(["gates", str(parent)]) == 2
    assert f"{parent}: not a run record: scenario.json is missing (the run records are in its folders run)" \
        in error_line(capsys)


def test_a_target_that_does_not_answer_is_refused_before_the_run(tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    assert stormbench(["run", str(tiny(tmp_path)), "--target", f"http://127.0.0.1:{port}", "--out", str(out)]) == 2
    assert f"--target http://127.0.0.1:{port}: nothing answers at http://127.0.0.1:{port}/healthz" \
        in error_line(capsys)
    assert stormbench(["run", str(tiny(tmp_path)), "--toxiproxy-url", f"http://127.0.0.1:{port}",
                       "--out", str(out)]) == 2
    assert f"--toxiproxy-url http://127.0.0.1:{port}: nothing answers at http://127.0.0.1:{port}/version" \
        in error_line(capsys)
    assert not out.exists()


def test_a_target_that_answers_anything_passes_the_check():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from commands.run import check_target

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        check_target(f"http://127.0.0.1:{server.server_address[1]}")  # a 404 is an answer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_cut_off_line_in_sent_csv_is_named(tmp_path, capsys):
    events = session("c0", "k0", [(0, 1, None, None)])
    run = write_record(tmp_path / "run", events, [("k0", "m1", 1, 2.0)], duration=100, clients=1)
    with open(run / files.SENT, "a") as f:
        f.write("k0,m2\n")  # what a crash mid-line leaves
    assert stormbench(["gates", str(run), "--gates", str(tiny(tmp_path)), "--quiet"]) == 2
    assert f"{run / files.SENT}:3: expected a value in every column (conversation, msg_id, seq, t), got 'k0,m2,,'" \
        in error_line(capsys)


def test_a_cut_off_last_event_line_is_left_out_with_a_warning(tmp_path, capsys):
    events = session("c0", "k0", [(0, 1, 30, 4401), (31, 31, None, None)])
    run = write_record(tmp_path / "run", events, duration=100, clients=1)
    with open(run / files.EVENTS, "a") as f:
        f.write('{"t": 50.0, "client": "c0", "ki')  # a process killed mid-write
    gates = tmp_path / "g.yaml"
    gates.write_text("- {name: two opens, metric: opens, stat: count, op: '==', value: 2}\n")
    assert stormbench(["gates", str(run), "--gates", str(gates), "--quiet"]) == 0  # both earlier opens count
    assert f"warning: {run / files.EVENTS}:{len(events) + 1}: the last line is cut off" in error_line(capsys)
    with open(run / files.EVENTS, "a") as f:
        f.write('\n{"t": 60.0, "client": "c0", "kind": "offline"}\n')  # now the bad line is not the last
    (run / files.CONNECTIONS).unlink()
    assert stormbench(["gates", str(run), "--gates", str(gates), "--quiet"]) == 2
    assert f"{run / files.EVENTS}:{len(events) + 1}: expected a JSON object" in error_line(capsys)


def test_a_cut_off_last_scrape_line_is_left_out_with_a_warning(tmp_path, capsys):
    events = session("c0", "k0", [(0, 1, None, None)])
    rss = [{"name": "process_resident_memory_bytes", "labels": {}, "value": 1e6}]
    run = write_record(tmp_path / "run", events, duration=100, clients=1, scrapes=[(10, rss), (20, rss)])
    with open(run / files.SCRAPES, "a") as f:
        f.write('{"t": 30, "samples": [{"na')
    gates = tmp_path / "g.yaml"
    gates.write_text("- {name: rss, metric: memory, stat: max, op: '<', value: 2000000}\n")
    assert stormbench(["gates", str(run), "--gates", str(gates), "--quiet"]) == 0
    assert f"warning: {run / files.SCRAPES}:3: the last line is cut off" in error_line(capsys)


@pytest.mark.parametrize("name, text, expected", [
    (files.META, "[1, 2]", "expected an object {...} at the top level, got list"),
    (files.SCENARIO, '"a string"', "expected an object {...} at the top level, got str"),
    (files.FAULTS, "[1, 2]", "expected a list of objects {...}"),
    (files.FAULTS, "{}", "expected a list [...] at the top level, got dict"),
])
def test_a_record_file_of_the_wrong_shape_is_named(run_dir, tmp_path, capsys, name, text, expected):
    phased = tmp_path / "phased.yaml"  # a gate that reads the fault schedule
    phased.write_text("- {name: p, metric: attempts, stat: count, op: '>=', value: 0, phase: {before: partition}}\n")
    (run_dir / name).write_text(text)
    assert stormbench(["gates", str(run_dir), "--gates", str(phased), "--quiet"]) == 2
    assert f"{run_dir / name}: {expected}" in error_line(capsys)


def test_a_non_number_in_a_derived_table_is_named_with_its_line(run_dir, tmp_path, capsys):
    lifetimes = tmp_path / "lifetimes.yaml"
    lifetimes.write_text("- {name: p50, metric: connection_duration, stat: p50, op: '>=', value: 1s}\n")
    assert stormbench(["gates", str(run_dir), "--gates", str(lifetimes), "--quiet"]) == 0  # derives the tables
    table = run_dir / files.CONNECTIONS
    lines = table.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("duration_s")] = "long"
    table.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    assert stormbench(["gates", str(run_dir), "--gates", str(lifetimes), "--quiet"]) == 2
    assert f"{table}:2: column 'duration_s': expected a number, got 'long'" in error_line(capsys)
