"""The live view of a real emulation on either clock, drawn on a real terminal (a pty) as a
person watching `stormbench run` sees it: every gate of the run in every frame, the faults in
force since the frame before (a partition shorter than the interval between two updates, and
an instant server restart, included), a progress bar with a wall-clock ETA, and rates in
scenario time."""
from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from formats.record import files

TIME_SCALE = 24
SCENARIO = f"""\
name: live-demo
seed: 4
duration: 4m
time_scale: {TIME_SCALE}
system: {{behaviour: fixed, token_ttl: 15m}}
fleet:
  clients: 8
  profile: fixed
  arrival: {{ramp: 10s}}
  messages: {{every: 30s}}
  network: {{drops: {{every: 1m}}}}
faults:
  - {{at: 100s, for: 5s, kind: partition, fraction: 0.5}}
  - {{at: 160s, kind: server_restart}}
gates:
  - {{name: no forced refresh, metric: manual_refreshes, stat: count, op: "==", value: 0}}
  - {{name: few 4401, metric: 'closes{{code="4401"}}', stat: count, op: "<=", value: 3}}
  - {{name: p50 lifetime, metric: connection_duration, stat: p50, op: ">=", value: 5s}}
  - {{name: nothing lost, metric: lost_messages, stat: count, op: "==", value: 0}}
"""
GATES = ("no forced refresh", "few 4401", "p50 lifetime", "nothing lost")
TITLE = "stormbench emulate — live-demo"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def run_on_a_terminal(args: list[str], cwd: Path, timeout: float = 120) -> tuple[int, str]:
    """`python -m commands.cli ARGS` with stdout and stderr on a pty of 160x60 (what the CLI's
    `isatty` and rich's terminal detection see); returns the exit code and all it drew."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 160, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")}
    proc = subprocess.Popen([sys.executable, "-m", "commands.cli", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, env={**env, "TERM": "xterm-256color"})
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
            assert time.monotonic() < deadline, "the run did not end in time"
        return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def frames(drawn: str) -> list[str]:
    """Each drawing of the live panel, escape codes removed."""
    text = ANSI.sub("", drawn)
    return [TITLE + part.split("└", 1)[0] for part in text.split(TITLE)[1:]]


def row(frame: str, label: str) -> str:
    """The value cell of the panel row whose label starts with `label`."""
    for line in frame.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃").split("│")]
        if len(cells) == 2 and cells[0].startswith(label.strip()):
            return cells[1]
    raise AssertionError(f"no row {label!r} in\n{frame}")


def busiest_scenario_second(events: list[dict]) -> int:
    per_second: dict[int, int] = {}
    for e in events:
        if e["kind"] == "attempt":
            per_second[int(e["t"])] = per_second.get(int(e["t"]), 0) + 1
    return max(per_second.values())


@pytest.mark.timeout(180)
@pytest.mark.parametrize("clock, drawings", [("wall", 10), ("virtual", 4)])
def test_the_live_view_of_a_real_run_on_a_terminal(tmp_path, clock, drawings):
    """Wall: 10 s of wall time drawn a few times a second. Virtual: the view is updated every
    minute of scenario time and drawn at most four times a wall second, so a fault between two
    drawings shows in the next one, the last included."""
    (tmp_path / "live.yaml").write_text(SCENARIO)
    out = tmp_path / "run"
    code, drawn = run_on_a_terminal(["run", "live.yaml", "--clock", clock, "--out", str(out)], tmp_path)
    assert code in (0, 1, 3), drawn[-3000:]
    shown = frames(drawn)
    assert len(shown) >= drawings, drawn[-3000:]
    for frame in shown:  # every gate of the run, in every frame
        assert all(f"  {gate}" in frame for gate in GATES), frame
    last = shown[-1]
    assert "ok so far" in row(last, "  no forced refresh") and "at the end" in row(last, "  p50 lifetime")

    faults = [row(f, "faults in force since the last") for f in shown]
    # 5 s of partition at x24 lasts 0.2 wall seconds, less than the interval between two updates
    assert any("partition" in f for f in faults), faults
    assert any("server_restart" in f for f in faults), faults  # instant: never "in force" at an update
    assert faults[0] == "none"
    if clock == "wall":  # drawn after the restart had been shown: none since
        assert faults[-1] == "none"

    progress = [row(f, "progress") for f in shown]
    assert any(re.fullmatch(r"\[#*-+\] \d+% eta \S+ \(at \d\d:\d\d:\d\d\)", p) for p in progress), progress
    assert progress[-1] == "[####################] 100%"
    clocks = [row(f, "scenario clock") for f in shown]
    assert clocks[-1] == "4m / 4m", clocks

    # rates per scenario second: never above what the record holds in its busiest scenario
    # second, doubled for a window straddling two (per wall second they would be x24)
    events = [json.loads(line) for line in (out / files.EVENTS).read_text().splitlines()]
    rates = [float(row(f, "attempts per scenario second")) for f in shown]
    assert max(rates) > 0, rates
    assert max(rates) <= 2 * busiest_scenario_second(events), (rates, busiest_scenario_second(events))


@pytest.mark.timeout(240)
def test_the_main_job_on_a_terminal_prints_plain_lines_not_two_panels(tmp_path):
    """On the virtual clock the main job runs both profiles at once in two processes sharing one
    terminal: two panels would overwrite each other, so each prints plain lines."""
    (tmp_path / "live.yaml").write_text(SCENARIO)
    code, drawn = run_on_a_terminal(["main-job", "--scenario", "live.yaml", "--clock", "virtual", "--no-report",
                                     "--out", "job"], tmp_path, timeout=200)
    assert code in (0, 1, 3), drawn[-3000:]
    text = ANSI.sub("", drawn)
    assert TITLE not in text
    assert text.count("[live-demo] t=4m/4m [####################] 100%") == 2, text[-3000:]  # each profile's last
    assert "gate verdicts" in text
