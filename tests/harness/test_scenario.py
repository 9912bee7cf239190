"""Scenario files: the library validates, errors name file/path/expectation, overrides and round trips."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from commands.cli import UsageError
from formats.scenario import from_dict, load
from formats.scenario.model import FAULT_KINDS

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"
LIBRARY_NAMES = ["staging-day", "deploy-storm", "token-expiry-403", "network-flap", "slow-network", "half-open",
                 "auth-outage", "load-spike"]


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


MINIMAL = "name: m\nduration: 1h\nfleet: {clients: 10}\n"


@pytest.mark.parametrize("name", LIBRARY_NAMES)
def test_library_scenarios_load_and_fit_the_wall_time_budget(name):
    scenario = load(LIBRARY / f"{name}.yaml")
    assert scenario.name == name
    assert scenario.wall_duration <= 180.0
    # at least 100 clients: one client is at most 1% of the fleet, which the 99% recovery gate resolves
    assert 100 <= scenario.fleet.clients <= 2000
    assert scenario.gates, "every library scenario is judged by gates"


def test_durations_and_rates_resolve_to_seconds():
    s = load(LIBRARY / "staging-day.yaml")
    assert s.duration == 86400.0
    assert s.system.token_ttl == 900.0
    assert s.system.heartbeat.interval == 30.0
    assert s.system.admission.handshake_rate == 2000.0
    assert s.fleet.offline.for_ == 30.0
    latency = next(f for f in s.faults if f.kind == "latency")
    assert (latency.at, latency.for_, latency.params["latency"], latency.params["jitter"]) == (43200.0, 600.0, 0.8, 0.2)
    assert s.gates_file.endswith("gates/staging.yaml") and len(s.gates) >= 7


def test_fault_defaults_are_filled(tmp_path):
    s = load(write(tmp_path, MINIMAL + "faults:\n  - {at: 5m, kind: server_restart}\n  - {at: 6m, kind: slicer}\n"))
    assert s.faults[0].params == {"mode": "graceful"}
    assert s.faults[1].params["average_size"] == 64 and s.faults[1].fraction == 1.0


def test_errors_name_file_json_path_and_expectation(tmp_path):
    path = write(tmp_path, """
name: bad
duration: 1h
fleet: {clients: 0, profile: {base: fixed, disable: [jiter]}}
system: {token_ttl: fast}
faults:
  - {at: 10m, kind: latency, latncy: 5s}
  - {at: 10m, kind: explode}
""")
    with pytest.raises(UsageError) as err:
        load(path)
    text = str(err.value)
    assert str(path) in text
    assert "$.fleet.clients: expected a positive integer" in text
    assert "$.fleet.profile.disable[0]: expected a client fix name" in text and "'jiter'" in text
    assert "$.system.token_ttl: expected a positive duration" in text and "'fast'" in text
    assert "$.faults[0]: 'latency' is a required property" in text
    assert "line 7: $.faults[0].latncy: unknown field (did you mean 'latency'?); expected one of at, for, " \
           "fraction, jitter, kind, latency, stream" in text
    assert "$.faults[1].kind: expected a fault kind" in text


def test_yaml_syntax_error_names_line(tmp_path):
    with pytest.raises(UsageError, match=r"s\.yaml: line \d+, column \d+: not valid YAML"):
        load(write(tmp_path, "name: x\nduration: [1h\n"))


def test_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read"):
        load(tmp_path / "nope.yaml")


def test_fault_after_the_end_is_rejected(tmp_path):
    with pytest.raises(UsageError, match=r"\$\.faults\[0\]\.at: expected a time before the end"):
        load(write(tmp_path, MINIMAL + "faults: [{at: 2h, kind: partition}]\n"))


def test_bad_gate_fails_at_load_with_its_index(tmp_path):
    text = MINIMAL + "gates:\n  - {name: a, metric: attempts, stat: count, op: '<', value: 1}\n" \
                     "  - {name: b, metric: attempts, stat: p101, op: '<', value: 1}\n"
    with pytest.raises(UsageError, match=r"\$\.gates\[1\]\.stat|\$\[1\]\.stat"):
        load(write(tmp_path, text))


def test_profile_override_names_the_whole_system():
    s = load(LIBRARY / "token-expiry-403.yaml", {"profile": "legacy"})
    assert s.system.behaviour.base == "legacy" and s.fleet.profile.base == "legacy"
    fixed = load(LIBRARY / "token-expiry-403.yaml")
    assert fixed.system.behaviour.base == "fixed" and fixed.fleet.profile.base == "fixed"


def test_overrides_seed_clients_time_scale_and_dotted_paths():
    s = load(LIBRARY / "network-flap.yaml", {"seed": 99, "clients": 50, "time_scale": 5.0, "fleet.sim_clients": 7,
                                             "system.token_ttl": "1m"})
    assert (s.seed, s.fleet.clients, s.time_scale, s.fleet.sim_clients, s.system.token_ttl) == (99, 50, 5.0, 7, 60.0)


def test_bad_override_reported_like_a_bad_field():
    with pytest.raises(UsageError, match=r"\$\.fleet\.clients: expected a positive integer"):
        load(LIBRARY / "network-flap.yaml", {"clients": -3})


def test_mixed_profiles(tmp_path):
    s = load(write(tmp_path, MINIMAL.replace("fleet: {clients: 10}", """fleet:
  clients: 10
  profile: {base: fixed, disable: [jitter, exp_backoff]}
system:
  behaviour: {base: fixed, legacy: [handshake_403]}""")))
    assert s.fleet.profile.disable == ("jitter", "exp_backoff")
    assert s.system.behaviour.legacy == ("handshake_403",)


@pytest.mark.parametrize("name", LIBRARY_NAMES)
def test_to_dict_round_trips_through_json_and_the_schema(name):
    s = load(LIBRARY / f"{name}.yaml")
    again = from_dict(json.loads(json.dumps(s.to_dict())))
    assert again.to_dict() == s.to_dict()
    assert (again.fleet, again.system, again.faults) == (s.fleet, s.system, s.faults)


def test_schema_knows_every_fault_kind():
    schema = json.loads((LIBRARY / "scenario.schema.json").read_text())
    assert tuple(schema["$defs"]["fault"]["properties"]["kind"]["enum"]) == FAULT_KINDS


@pytest.mark.parametrize("extra, message", [
    ("system: legacy\n", "$.system: expected a mapping of fields (key: value), got 'legacy'"),
    ("faults: {at: 1m, kind: partition}\n", "$.faults: expected a list, got {"),
    ("gates: [{name: g, metric: attempts, stat: count, op: '<', value: 1, strict: 'no'}]\n",
     "$.gates[0].strict: expected true or false, got 'no'"),  # not the description of $.gates around it
    ("gates: [just text]\n", "$.gates[0]: expected a mapping of fields (key: value), got 'just text'"),
])
def test_a_field_of_the_wrong_shape_says_what_shape_is_expected(tmp_path, extra, message):
    with pytest.raises(UsageError) as err:
        load(write(tmp_path, MINIMAL + extra))
    assert message in str(err.value)


def test_client_time_constants_are_stated_under_fleet(tmp_path):
    """`fleet.restart_window` and the other client time constants reach the one client config both
    engines use, and survive the run record's round trip; the others keep their defaults."""
    from formats.scenario.clients import client_config
    from system.client.config import ClientConfig

    s = load(write(tmp_path, "name: m\nduration: 1h\nfleet: {clients: 10, restart_window: 1m, max_delay: 2m}\n"))
    config = client_config(s)
    assert (config.restart_window, config.max_delay) == (60.0, 120.0)
    assert config.base_delay == ClientConfig.base_delay
    assert from_dict(json.loads(json.dumps(s.to_dict()))).fleet == s.fleet
    assert client_config(load(write(tmp_path, MINIMAL))).restart_window == ClientConfig.restart_window


@pytest.mark.parametrize("fleet, message", [
    ("{clients: 10, restart_window: soon}", "$.fleet.restart_window: expected a duration"),
    ("{clients: 10, base_delay: 1m, max_delay: 10s}", "$.fleet.max_delay: expected at least base_delay (60s), got 10s"),
    ("{clients: 10, restart_windw: 1m}", "restart_windw"),
])
def test_bad_client_time_constants_name_the_field(tmp_path, fleet, message):
    with pytest.raises(UsageError) as err:
        load(write(tmp_path, f"name: m\nduration: 1h\nfleet: {fleet}\n"))
    assert message in str(err.value)


def test_an_unknown_key_is_named_by_its_line_with_the_nearest_field(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("name: typo\nseed: 1\nduration: 10m\nfleet:\n  clients: 10\n  sim_client: 100\nfalts: []\n")
    with pytest.raises(UsageError) as err:
        load(path)
    text = str(err.value)
    assert "line 6: $.fleet.sim_client: unknown field (did you mean 'sim_clients'?)" in text
    assert "line 7: $.falts: unknown field (did you mean 'faults'?)" in text


def test_fixes_on_top_of_a_profile_name_the_system():
    from formats.scenario.fixes import profile_label

    legacy = load(LIBRARY / "token-expiry-403.yaml", {"profile": "legacy", "fix": ["refresh_before_reconnect"]})
    assert legacy.fleet.profile.enable == ("refresh_before_reconnect",) and legacy.system.behaviour.base == "legacy"
    assert profile_label(legacy.to_dict()) == "legacy+refresh_before_reconnect"
    both = load(LIBRARY / "token-expiry-403.yaml", {"profile": "legacy", "fixes": "jitter+handshake_403"})
    assert both.system.behaviour.fixed == ("handshake_403",)
    assert profile_label(both.to_dict()) == "legacy+jitter+handshake_403"
    fewer = load(LIBRARY / "token-expiry-403.yaml", {"profile": "fixed", "no_fix": ["jitter", "no_shedding"]})
    assert profile_label(fewer.to_dict()) == "fixed-jitter-no_shedding"
    with pytest.raises(UsageError, match=r"--fix 'refresh_before_reconect': not a fix \(did you mean "
                                         r"'refresh_before_reconnect'\?\)"):
        load(LIBRARY / "token-expiry-403.yaml", {"fix": "refresh_before_reconect"})
