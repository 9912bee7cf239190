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
from formats.record.finalize import MESSAGE_FIGURES, WEIGHTED_FIGURES
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
    assert summary["scaled"]["message_sample"] == {"clients": sample, "scale": clients / sample,
                                                   "figures": list(MESSAGE_FIGURES)}


@pytest.mark.parametrize("clients, max_agents, weight", [(1200, 10**6, 1), (2000, 500, 4)])
def test_connection_counts_agree_across_connections_timeseries_summary_and_report(tmp_path, clients, max_agents,
                                                                                  weight):
    """A weighted agent's connection is one row of connections.csv with its weight (not `weight`
    copies): the summary's counts are the weighted sums, the timeseries counts clients, and the
    report shows the summary's figures with the weight next to them."""
    out = tmp_path / "run"
    summary = simulate(legacy_chat(clients), out, max_agents=max_agents, exact_limit=0)
    conns = pd.read_csv(out / "connections.csv")
    ts = pd.read_csv(out / "timeseries.csv")
    assert ("weight" in conns.columns) == (weight > 1)  # an unweighted record keeps the emulation's columns
    w = conns["weight"] if weight > 1 else pd.Series(1, index=conns.index)
    assert set(w) == {weight} and conns["client"].nunique() <= clients // weight
    failed = conns["http_status"].notna()
    assert summary["connections"] == w[~failed].sum() > 0
    assert summary["handshake_failures"] == w[failed].sum()
    assert summary["censored_connections"] == (w * conns["censored"]).sum()
    assert summary["attempts"] == ts["attempts"].sum() and summary["reconnect_attempts"] == ts["reconnects"].sum()
    assert ts["opens"].sum() == summary["connections"]  # every open in the run is a connection row's
    closed = conns[conns["close_code"].notna()]
    assert summary["closes_by_code"]
    for code, n in summary["closes_by_code"].items():
        assert n == ts[f"closes_{code}"].sum() == w[closed.index][closed["close_code"] == int(code)].sum()
    assert ("scaled" in summary and "weight" in summary["scaled"]) == (weight > 1)
    if weight > 1:
        assert summary["scaled"]["weight"] == {"clients_per_agent": weight, "figures": list(WEIGHTED_FIGURES)}
    report = to_markdown(build([load_run(out)], []))
    survival = next(line for line in report.splitlines() if line.startswith("| run ") and "censored" in line)
    rows = report.splitlines()[report.splitlines().index(survival) + 2]
    assert f"| {summary['connections']:,} | {summary['censored_connections']:,} |" in rows
    assert ("weight 4" in rows) == (weight > 1)


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
