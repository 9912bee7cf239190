"""The client a scenario names, configured once for both engines.

The emulation's fleet and the SimPy model run the same `ClientPolicy`; they must
also give it the same configuration, or a difference between the engines would be
a difference of setup rather than of model.
"""
from __future__ import annotations

from harness.scenario.model import Scenario
from system.client.config import ClientConfig, Fixes

#: the longest a client refreshes ahead of expiry, whatever the token's lifetime
MAX_REFRESH_LEAD_S = 300.0


def client_config(scenario: Scenario) -> ClientConfig:
    """`fleet.profile`'s fixes, in scenario seconds. The token is refreshed a quarter of its
    lifetime early (at most 5 min), as a careful client does: the in-band refresh then has
    room even when the run is compressed."""
    p = scenario.fleet.profile
    fixes = Fixes.profile(p.base).with_changes(enable=p.enable, disable=p.disable)
    ttl = scenario.system.token_ttl
    return ClientConfig(fixes=fixes, token_ttl=ttl, refresh_lead=min(MAX_REFRESH_LEAD_S, ttl / 4))
