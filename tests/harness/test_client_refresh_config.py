"""The client a library scenario configures against that scenario's own auth outage.

`formats.scenario.clients.client_config` gives both engines their client; staging-day's gate
"no 4401 spikes" holds only if that client rides out staging-day's 5-min auth outage with its
15-min tokens, wherever the outage falls in the refresh cycle. Played sans-IO against
`tests/client/auth_world.AuthWorld` (a live-expiry server with the 10-s grace the model uses),
so a change of the scenario's TTL or outage, or of the client's refresh policy, that breaks the
gate shows here in a second rather than in a two-minute run."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from formats.scenario import load
from formats.scenario.clients import client_config
from system.client.policy import ClientPolicy
from tests.client.auth_world import AuthWorld

STAGING = Path(__file__).resolve().parents[2] / "scenarios" / "staging-day.yaml"


def outcomes(profile: str, phases: int = 40) -> list[AuthWorld]:
    """One client per phase: the outage starts at `phases` points spread over one token lifetime."""
    scenario = load(STAGING, {"profile": profile})
    [outage] = [f for f in scenario.faults if f.kind == "auth_outage"]
    config = client_config(scenario)
    ttl = scenario.system.token_ttl
    worlds = []
    for k in range(phases):
        start = 2 * ttl + k * ttl / phases
        policy = ClientPolicy(config, random.Random(k), f"c{k:05d}")
        worlds.append(AuthWorld(policy, ttl=ttl, outage=(start, start + outage.for_))
                      .run(until=start + outage.for_ + 2 * ttl))
    return worlds


def test_staging_day_outage_is_shorter_than_half_the_token_life():
    """The premise of the next test, stated: if the scenario changes, the client may have to."""
    scenario = load(STAGING)
    [outage] = [f for f in scenario.faults if f.kind == "auth_outage"]
    config = client_config(scenario)
    assert outage.for_ < (1 - config.refresh_at) * scenario.system.token_ttl - config.max_delay


def test_staging_day_fixed_client_never_closes_4401_in_its_auth_outage():
    worlds = outcomes("fixed")
    assert [w.closes_4401 for w in worlds] == [[]] * len(worlds)
    assert all(w.lapsed_for == 0.0 for w in worlds)


def test_staging_day_legacy_client_does():
    lapsed = [w for w in outcomes("legacy") if w.lapsed_for > 0]
    assert len(lapsed) >= 10 and all(w.closes_4401 for w in lapsed)


@pytest.mark.parametrize("profile", ["fixed", "legacy"])
def test_client_config_keeps_the_legacy_lead_below_the_token_life(profile):
    config = client_config(load(STAGING, {"profile": profile}))
    assert 0 < config.refresh_lead < config.token_ttl
    assert 0 <= config.refresh_jitter < config.refresh_at < 1
