"""`stormbench validate` end to end: a real emulation and the model on one scenario (slow)."""
from __future__ import annotations

import json

import pytest

from harness.cli import main
from sim.validate_cli import agrees

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
    assert metrics == ["duration_p50_s", "duration_p95_s", "reconnect_attempts", "peak_reconnects_per_s"]
    assert all(m in out for m in metrics)
    assert doc["rows"][2]["emulated"] > 0 and doc["rows"][2]["model"] > 0  # both engines saw the restart
    assert code == (0 if all(agrees(r, 0.10) for r in doc["rows"]) else 1)
