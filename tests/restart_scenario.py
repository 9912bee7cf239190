"""The small scenario the many-runs tests and benches share: a fixed fleet with drops and one
server restart, judged by its p50 duration (varied by name, seed, length, fleet and extra faults)."""
from __future__ import annotations


def restart_scenario(name: str = "tiny", *, seed: int = 3, duration: str = "2h", clients: int = 40,
                     extra_faults: tuple[str, ...] = ()) -> str:
    faults = "".join(f"  - {f}\n" for f in ("{at: 1h, kind: server_restart}", *extra_faults))
    return f"""name: {name}
seed: {seed}
duration: {duration}
system: {{behaviour: fixed, token_ttl: 15m, live_expiry: true}}
fleet:
  clients: {clients}
  profile: fixed
  network: {{drops: {{every: 30m}}}}
faults:
{faults}gates:
  - {{name: p50 connection duration, metric: connection_duration, stat: p50, op: ">=", value: 5m}}
"""
