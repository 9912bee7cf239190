"""The library's promises, emulated for real (slow: each scenario is one to three minutes of wall time).

- token-expiry-403: the legacy system shows HTTP 403s and manual refreshes and fails its gates;
  the fixed one has neither and passes.
- every library scenario: the fixed profile loses nothing and displays nothing twice.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.test_scenario import LIBRARY_NAMES

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def emulate(scenario: str, profile: str, out: Path) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, "-m", "commands.cli", "run", scenario, "--profile", profile,
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=800)
    assert (out / "summary.json").exists(), done.stderr[-3000:]
    return done.returncode, json.loads((out / "summary.json").read_text())


def test_token_expiry_403_legacy_fails_and_fixed_passes(tmp_path):
    code, legacy = emulate("token-expiry-403", "legacy", tmp_path / "legacy")
    assert code == 1
    assert legacy["http_403"] > 0 and legacy["manual_refreshes"] > 0
    code, fixed = emulate("token-expiry-403", "fixed", tmp_path / "fixed")
    assert (fixed["http_403"], fixed["manual_refreshes"]) == (0, 0)
    assert code == 0, json.loads((tmp_path / "fixed" / "gates.json").read_text())


@pytest.mark.parametrize("name", LIBRARY_NAMES)
def test_fixed_profile_loses_and_duplicates_nothing(name, tmp_path):
    _, summary = emulate(name, "fixed", tmp_path / name)
    assert summary["lost_messages"] == 0
    assert summary["duplicates_displayed"] == 0
    assert summary["messages_sent"] > 0          # the check had messages to judge
