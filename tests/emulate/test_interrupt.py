"""Ctrl-C in the middle of an emulation keeps what the clients recorded (events.jsonl) and the
server's delivery log (sent.csv): the workers write their records when interrupted and the engine
merges them, as a whole run does; on either clock."""
from __future__ import annotations

import json
import time

import pytest

from formats.record import files
from tests.ctrl_c import interrupt_cli

SCENARIO = """\
name: interrupted
seed: 5
duration: {duration}
clock: {clock}
time_scale: 20
system: {behaviour: fixed, token_ttl: 10m}
fleet:
  clients: 20
  profile: fixed
  arrival: {ramp: 30s}
  messages: {every: 1m}
"""


@pytest.mark.timeout(150)
@pytest.mark.parametrize("clock, duration", [("wall", "20m"), ("virtual", "12h")])
def test_ctrl_c_during_an_emulation_keeps_the_clients_records(tmp_path, clock, duration):
    path, out = tmp_path / "interrupted.yaml", tmp_path / "out"
    path.write_text(SCENARIO.replace("{clock}", clock).replace("{duration}", duration))

    def fleet_connected(proc) -> None:
        deadline = time.monotonic() + 90
        for line in proc.stdout:  # the live view's lines: interrupt once the whole fleet is connected
            if "active=20 " in line:
                return
            assert time.monotonic() < deadline, "the fleet never connected"
        pytest.fail(f"the run ended before its fleet connected: {proc.stderr.read()}")

    code, err = interrupt_cli(["run", str(path), "--out", str(out)], tmp_path, fleet_connected)
    assert code == 130, err
    events = [json.loads(line) for line in (out / files.EVENTS).read_text().splitlines()]
    opened = {e["client"] for e in events if e["kind"] == "open"}
    assert len(opened) == 20  # every client's records survived, not only some worker's
    meta = json.loads((out / files.META).read_text())
    assert meta["counts"]["events"] == len(events)
    sent = (out / files.SENT).read_text().splitlines()
    assert meta["counts"]["sent"] == len(sent) - 1 > 0  # the server's delivery log, fetched after the Ctrl-C
    assert "interrupted" in meta[files.META_INCOMPLETE]
