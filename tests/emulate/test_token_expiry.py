"""The 403 bug, reproduced for real: mass token expiry, then reconnects.

Legacy (client reconnects with its cached token; server answers HTTP 403 at the
handshake) → 403s and manual refreshes, and the gates fail; fixed → neither, and
they pass. Drops force the reconnects that meet the expired tokens.
"""
from __future__ import annotations

import json

import pytest

from harness.emulate.engine import emulate
from formats.gates.evaluate import evaluate
from formats.gates.spec import load_gates
from formats.record import RunRecord, finalize
from formats.scenario import from_dict

GATES = [
    {"name": "no 403", "metric": "http_403", "stat": "count", "op": "==", "value": 0},
    {"name": "no forced refresh", "metric": "manual_refreshes", "stat": "count", "op": "==", "value": 0},
]


def scenario(profile: str):
    return from_dict({
        "name": "token-expiry-test", "seed": 5, "duration": "120s", "time_scale": 8,
        "system": {"behaviour": profile, "token_ttl": "15m"},
        "fleet": {"clients": 10, "profile": profile, "arrival": {"ramp": "5s"},
                  "network": {"drops": {"every": "30s"}}},
        "faults": [{"at": "15s", "kind": "token_expiry"}],
        "gates": GATES,
    })


@pytest.mark.parametrize("profile", ["legacy", "fixed"])
def test_token_expiry_403_legacy_fails_fixed_passes(profile, tmp_path):
    out = tmp_path / profile
    emulate(scenario(profile), out, progress=lambda s: None)
    summary = finalize(out)
    verdicts = {v.name: v for v in evaluate(load_gates(GATES), RunRecord(out))}
    statuses = [json.loads(l).get("status") for l in (out / "events.jsonl").read_text().splitlines()
                if '"handshake_failed"' in l]
    if profile == "legacy":
        assert summary["http_403"] > 0 and 403 in statuses
        assert summary["manual_refreshes"] > 0
        assert verdicts["no 403"].verdict == "fail" and verdicts["no forced refresh"].verdict == "fail"
    else:
        assert summary["http_403"] == 0 and 403 not in statuses
        assert summary["manual_refreshes"] == 0
        assert verdicts["no 403"].verdict == "pass" and verdicts["no forced refresh"].verdict == "pass"
        assert summary["lost_messages"] == 0
