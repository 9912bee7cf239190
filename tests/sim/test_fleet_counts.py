"""Fleet-scale counts add up: every count in a sampled run is scaled by what it was measured on.

At fleet scale the model follows the chat messages of a sample of clients only
(`sim.engine.LEDGER_SAMPLE`), so message counts (displays, duplicates) are scaled by fleet clients
per sampled client, and connection counts by the agents' weight. The summary, the ledger summary,
the timeseries and the report must then all say the same number of duplicates.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from formats.scenario import from_dict
from reports.page_markdown import to_markdown
from reports.record import load_run
from reports.render import build
from reports.series import delivery
from sim.engine import LEDGER_SAMPLE, simulate


def legacy_chat(clients: int):
    """Legacy churn opens a second socket per token change: every message then shows twice."""
    return from_dict({
        "name": "fleet-counts", "seed": 5, "duration": "2h",
        "system": {"behaviour": "legacy", "token_ttl": "15m", "live_expiry": True},
        "fleet": {"clients": clients, "profile": "legacy", "arrival": {"ramp": "5m"},
                  "messages": {"every": "5m"}},
    })


@pytest.mark.parametrize("clients, max_agents, weight", [(1200, 10**6, 1), (2000, 1000, 2)])
def test_duplicates_agree_across_summary_ledger_timeseries_and_report(tmp_path, clients, max_agents, weight):
    out = tmp_path / "run"
    summary = simulate(legacy_chat(clients), out, max_agents=max_agents, exact_limit=0)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["sampling"]["weight"] == weight
    sample = meta["sampling"]["ledger_clients"]
    assert sample == LEDGER_SAMPLE and clients // weight > sample  # messages really are sampled
    ledger = json.loads((out / "ledger_summary.json").read_text())
    ts = pd.read_csv(out / "timeseries.csv")

    assert ledger["duplicates"] > 0
    assert summary["duplicates_displayed"] == pytest.approx(ledger["duplicates"], abs=1)
    assert ts["duplicates"].sum() == pytest.approx(ledger["duplicates"], abs=1)
    # every display, first or again, is in the timeseries; the ledger splits them
    assert ts["displayed"].sum() == pytest.approx(ledger["displayed"] + ledger["duplicates"], abs=2)
    run = load_run(out)
    counts, source = delivery(run)
    assert source == "summary.json (the gates' numbers)"
    assert counts["duplicates"] == pytest.approx(summary["duplicates_displayed"], abs=1)
    # the report says how the run counted, next to its figures
    report = to_markdown(build([run], []))
    assert f"messages of {sample} clients, scaled" in report
    assert (f"each simulated client stood for {weight}" in report) == (weight > 1)
    # sent messages are scaled the same way: about one per client every 5 min over the 2 h
    assert ledger["sent"] == pytest.approx(clients * 2 * 60 / 5, rel=0.15)


def partitioned_chat(profile: str, clients: int):
    """A partition blackholes a third of the fleet for two minutes while its users type: the legacy
    client sends into the dead socket and never resends; the fixed one resends what was not acked."""
    return from_dict({
        "name": "typed-lost", "seed": 3, "duration": "1h",
        "system": {"behaviour": profile, "token_ttl": "15m"},
        "fleet": {"clients": clients, "profile": profile, "arrival": {"ramp": "1m"},
                  "messages": {"every": "1m"}},
        "faults": [{"at": "30m", "for": "2m", "kind": "partition", "fraction": 0.3}],
    })


@pytest.mark.parametrize("profile", ["legacy", "fixed"])
def test_a_sampled_run_judges_the_messages_users_typed(tmp_path, profile):
    """Above its exact size the model still judges the client-to-server direction, on its message
    sample scaled to the fleet, as a full record is judged from received.csv."""
    sampled = simulate(partitioned_chat(profile, 2 * LEDGER_SAMPLE), tmp_path / "sampled", exact_limit=0)
    exact = simulate(partitioned_chat(profile, 2 * LEDGER_SAMPLE), tmp_path / "exact")
    assert sampled["user_messages_sent"] > 0 and exact["user_messages_sent"] > 0
    if profile == "legacy":
        assert sampled["lost_user_messages"] > 0 and exact["lost_user_messages"] > 0
    else:
        assert sampled["lost_user_messages"] == exact["lost_user_messages"] == 0
    scale = 2  # fleet clients per sampled client
    assert sampled["user_messages_sent"] % scale == 0
    assert abs(sampled["user_messages_sent"] - exact["user_messages_sent"]) <= 0.1 * exact["user_messages_sent"]
