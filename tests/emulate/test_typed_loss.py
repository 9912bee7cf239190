"""What users type, lost by the legacy client and kept by the fixed one, under one fault plan.

A blackhole (`partition`: timeout toxics with timeout 0 on both streams of the proxy) swallows
every byte while neither end notices until its heartbeat gives up. The legacy client keeps typing
into the dead socket and never resends: those messages never reach the server, and the run
record's `lost_user_messages` counts them. The fixed client keeps each message until the server
acks it and resends it on the next socket, so the same plan loses nothing. Both runs are real:
the server, the embedded proxy and the clients on loopback, on the virtual clock (repeatable from
the seed, seconds of CPU).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from formats.record import finalize
from formats.record.derive import read_events
from formats.scenario import from_dict
from harness.emulate.engine import emulate

PARTITION_AT, PARTITION_FOR = 180.0, 120.0


def scenario(profile: str) -> dict:
    return {
        "name": f"typed-into-a-blackhole-{profile}", "seed": 7, "duration": "10m", "clock": "virtual",
        "system": {"behaviour": profile, "token_ttl": "15m", "heartbeat": {"interval": "20s", "timeout": "20s"}},
        "fleet": {"clients": 4, "profile": profile, "arrival": {"ramp": "30s"}, "messages": {"every": "10s"}},
        "faults": [{"at": f"{PARTITION_AT:g}s", "for": f"{PARTITION_FOR:g}s", "kind": "partition"}],
        "gates": [],
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for profile in ("legacy", "fixed"):
        out[profile] = tmp_path_factory.mktemp(profile) / "run"
        emulate(from_dict(scenario(profile)), out[profile], progress=lambda snapshot: None)
    return out


def never_received(run: Path) -> list[float]:
    """When each typed message the server never received was typed."""
    received = set(pd.read_csv(run / "received.csv", dtype=str)["msg_id"])
    return [r["t"] for r in read_events(run / "events.jsonl")
            if r.get("kind") == "sent" and r["msg_id"] not in received]


def test_the_legacy_client_loses_what_it_types_into_a_blackholed_socket(runs):
    s = finalize(runs["legacy"])
    assert s["user_messages_sent"] > s["user_messages_indeterminate"], s
    assert s["lost_user_messages"] >= 1, s
    lost_at = never_received(runs["legacy"])
    assert len(lost_at) >= s["lost_user_messages"]
    # every one was typed while the blackhole was in force: the loss is the partition's
    assert all(PARTITION_AT <= t < PARTITION_AT + PARTITION_FOR for t in lost_at), lost_at
    assert s["lost_messages"] == 0, s  # the server -> client ledger alone sees nothing wrong


def test_the_fixed_client_resends_and_loses_nothing_under_the_same_faults(runs):
    faults = [json.loads((runs[p] / "faults.json").read_text()) for p in ("legacy", "fixed")]
    assert faults[0] == faults[1] and faults[0][0]["kind"] == "partition"
    s = finalize(runs["fixed"])
    assert s["user_messages_sent"] > s["user_messages_indeterminate"], s
    assert (s["lost_user_messages"], s["duplicated_user_messages"]) == (0, 0), s
    resent = [r for r in read_events(runs["fixed"] / "events.jsonl") if r.get("kind") == "resent"]
    assert any(PARTITION_AT <= r["t"] for r in resent), "the fixed client never had to resend"
