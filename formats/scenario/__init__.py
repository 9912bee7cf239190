"""Scenarios: the YAML format, its schema, the resolved dataclasses and the seeded draws.

`load(path, overrides)` is the one entry point engines and commands use.
"""
from formats.scenario.draws import (
    RealizedFault, arrival_times, client_id, client_rng, drop_times, message_times,
    numpy_stream, offline_periods, realize_faults, stream,
)
from formats.scenario.loader import from_dict, load
from formats.scenario.model import (
    FAULT_KINDS, Admission, ClientProfile, Fault, FleetSpec, Heartbeat, Offline,
    Scenario, SystemBehaviour, SystemSpec,
)

__all__ = [
    "FAULT_KINDS", "Admission", "ClientProfile", "Fault", "FleetSpec", "Heartbeat",
    "Offline", "RealizedFault", "Scenario", "SystemBehaviour", "SystemSpec", "arrival_times",
    "client_id", "client_rng", "drop_times", "from_dict", "load", "message_times", "numpy_stream",
    "offline_periods", "realize_faults", "stream",
]
