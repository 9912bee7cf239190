"""The client a scenario names, configured once for both engines.

The emulation's fleet and the SimPy model run the same `ClientPolicy`; they must
also give it the same configuration, or a difference between the engines would be
a difference of setup rather than of model.
"""
from __future__ import annotations

from formats.scenario.model import Scenario
from system.client.config import ClientConfig, Fixes

#: the longest the legacy client refreshes ahead of expiry, whatever the token's lifetime
MAX_REFRESH_LEAD_S = 300.0


def client_config(scenario: Scenario) -> ClientConfig:
    """`fleet.profile`'s fixes, in scenario seconds. The fixed client refreshes at a jittered
    half-life and retries until it gets a token (`ClientConfig.refresh_at`, the policy's
    `_refresh_time`): it rides out a token-service outage up to about half the token's lifetime.
    The legacy client refreshes once, a quarter of the lifetime early (at most 5 min). Time
    constants the scenario states under `fleet` (`CLIENT_TIMES`, e.g. `restart_window`) replace
    the defaults."""
    p = scenario.fleet.profile
    fixes = Fixes.profile(p.base).with_changes(enable=p.enable, disable=p.disable)
    ttl = scenario.system.token_ttl
    return ClientConfig(fixes=fixes, token_ttl=ttl, refresh_lead=min(MAX_REFRESH_LEAD_S, ttl / 4),
                        **dict(scenario.fleet.client_times))
