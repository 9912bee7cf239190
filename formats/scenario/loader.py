"""YAML scenario file -> validated, overridden, resolved `Scenario`.

Overrides are applied to the raw document *before* validation, so a bad `--clients`
is reported exactly like a bad `fleet.clients` in the file.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

from formats import calibration
from system.errors import UsageError
from formats.scenario.model import (
    CLIENT_TIMES, DURATION_PARAMS, FAULT_PARAMS, Admission, ClientProfile, Fault, FleetSpec, Heartbeat,
    Offline, Scenario, SystemBehaviour, SystemSpec,
)
from formats.scenario.fixes import FIX_KEYS, apply_fixes, fix_overrides
from formats.scenario.schema import validate
from formats.yamlfile import key_lines, read_yaml
from system.units import parse_duration, parse_rate

# Short override names (the `stormbench run` flags) and what they set. `profile` names the
# whole system, client and server alike; `clients` sets the emulated and simulated fleet.
SHORT_OVERRIDES: Mapping[str, tuple[str, ...]] = {
    "seed": ("seed",),
    "clients": ("fleet.clients", "fleet.sim_clients"),
    "time_scale": ("time_scale",),
    "clock": ("clock",),
    "profile": ("system.behaviour", "fleet.profile"),
}


def apply_overrides(document: dict, overrides: Mapping[str, Any] | None) -> dict:
    """A copy of `document` with overrides set; keys are short names or dotted paths."""
    doc = copy.deepcopy(document)
    overrides = dict(overrides or {})
    enable, disable = fix_overrides(overrides)
    for key, value in overrides.items():
        if value is None or key in FIX_KEYS:
            continue
        for dotted in SHORT_OVERRIDES.get(key, (key,)):
            node = doc
            *parents, leaf = dotted.split(".")
            for part in parents:
                child = node.get(part)
                if child is None:
                    child = node[part] = {}
                if not isinstance(child, dict):
                    raise UsageError(f"override {key}={value!r}: {part!r} is not a mapping in the scenario")
                node = child
            node[leaf] = value
    apply_fixes(doc, enable, disable)  # after `profile`: fixes are on top of the profile named
    return doc


def load(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Load, override, validate and resolve a scenario file (YAML or the JSON of `scenario.json`)."""
    path = Path(path)
    document = read_yaml(path)
    if not isinstance(document, dict):
        raise UsageError(f"{path}: expected a mapping of scenario fields at the top level, got {type(document).__name__}")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return from_dict(apply_overrides(document, given), source=str(path), base_dir=path.parent,
                         lines=key_lines(path))
    except UsageError as exc:
        if not given:
            raise
        note = ", ".join(f"{k}={v!r}" for k, v in given.items())
        raise UsageError(f"{exc}\n  (the scenario as overridden by: {note})") from None


def from_dict(document: Mapping[str, Any], source: str = "<scenario>", base_dir: Path | None = None,
              lines: Mapping[tuple, int] | None = None) -> Scenario:
    validate(document, source, lines=lines)
    _check_server_traits(document, source)
    gates_spec = document.get("gates", [])
    gates_file = None
    if isinstance(gates_spec, str):
        from formats.gates.spec import read_gate_file

        gates_path = Path(gates_spec)
        if not gates_path.is_absolute():
            gates_path = (base_dir or Path.cwd()) / gates_path
        gates_file = str(gates_path)
        if not gates_path.is_file():
            raise UsageError(f"{source}: $.gates: expected a gate file (a path relative to the scenario file), "
                             f"but {gates_path} is not a file")
        gates_spec = read_gate_file(gates_path)
    from formats.gates.evaluate import check_metrics  # checked now so a bad gate fails before a run starts
    from formats.gates.spec import parse_gates

    gates_source = gates_file or f"{source}: $.gates"
    gates = parse_gates(gates_spec, source=gates_source)
    check_metrics(gates, gates_source)
    scenario = Scenario(
        name=document["name"],
        description=document.get("description", ""),
        seed=int(document.get("seed", 0)),
        duration=parse_duration(document["duration"]),
        time_scale=float(document.get("time_scale", 1.0)),
        clock=document.get("clock", "wall"),
        system=_system(document.get("system", {})),
        fleet=_fleet(document["fleet"]),
        faults=tuple(_fault(f) for f in document.get("faults", [])),
        gates=tuple(dict(g) for g in gates_spec),
        checked_gates=tuple(gates),
        gates_file=gates_file,
        source=source,
    )
    _check_timeline(scenario, source)
    return scenario


def _check_server_traits(document: Mapping[str, Any], source: str) -> None:
    """The switches of `system.behaviour` are the server's legacy traits; the schema can only say
    snake_case, and an unknown one would be ignored by the model and refused by the server mid-run."""
    from system.server.config import LEGACY_TRAITS

    behaviour = (document.get("system") or {}).get("behaviour")
    if not isinstance(behaviour, Mapping):
        return
    for side in ("legacy", "fixed"):
        for i, trait in enumerate(behaviour.get(side) or ()):
            if trait not in LEGACY_TRAITS:
                raise UsageError(f"{source}: $.system.behaviour.{side}[{i}]: expected a server trait "
                                 f"({', '.join(LEGACY_TRAITS)}), got {trait!r}")
    fixed = list(behaviour.get("fixed") or ())
    for i, trait in enumerate(behaviour.get("legacy") or ()):
        if trait in fixed:  # the engines would have to guess which side wins
            raise UsageError(f"{source}: $.system.behaviour.legacy[{i}]: {trait!r} is also listed in "
                             f"$.system.behaviour.fixed[{fixed.index(trait)}]; expected each trait on one side only")


def _system(doc: Mapping[str, Any]) -> SystemSpec:
    behaviour = doc.get("behaviour", "fixed")
    if isinstance(behaviour, str):
        behaviour = {"base": behaviour}
    heartbeat = doc.get("heartbeat", {})
    admission = doc.get("admission", {})
    defaults = SystemSpec()
    return SystemSpec(
        behaviour=SystemBehaviour(
            base=behaviour["base"],
            legacy=tuple(behaviour.get("legacy", ())),
            fixed=tuple(behaviour.get("fixed", ())),
        ),
        token_ttl=parse_duration(doc.get("token_ttl", defaults.token_ttl)),
        heartbeat=Heartbeat(
            interval=parse_duration(heartbeat.get("interval", defaults.heartbeat.interval)),
            timeout=parse_duration(heartbeat.get("timeout", defaults.heartbeat.timeout)),
        ),
        admission=Admission(
            max_connections=admission.get("max_connections"),
            handshake_rate=parse_rate(admission["handshake_rate"]) if "handshake_rate" in admission else None,
        ),
        live_expiry=bool(doc.get("live_expiry", defaults.live_expiry)),
        restart_downtime=(parse_duration(doc["restart_downtime"]) if "restart_downtime" in doc
                          else calibration.restart_downtime()),
    )


def _optional_duration(doc: Mapping[str, Any] | None, key: str) -> float | None:
    if not doc or key not in doc:
        return None
    return parse_duration(doc[key])


def _fleet(doc: Mapping[str, Any]) -> FleetSpec:
    profile = doc.get("profile", "fixed")
    if isinstance(profile, str):
        profile = {"base": profile}
    network = doc.get("network", {})
    offline = network.get("offline")
    return FleetSpec(
        clients=int(doc["clients"]),
        sim_clients=int(doc.get("sim_clients", doc["clients"])),
        profile=ClientProfile(
            base=profile["base"],
            enable=tuple(profile.get("enable", ())),
            disable=tuple(profile.get("disable", ())),
        ),
        ramp=parse_duration(doc.get("arrival", {}).get("ramp", 0)),
        message_every=_optional_duration(doc.get("messages"), "every"),
        drop_every=_optional_duration(network.get("drops"), "every"),
        offline=Offline(parse_duration(offline["every"]), parse_duration(offline["for"])) if offline else None,
        client_times=tuple((name, parse_duration(doc[name])) for name in CLIENT_TIMES if name in doc),
    )


def _fault(doc: Mapping[str, Any]) -> Fault:
    kind = doc["kind"]
    params = {}
    for name, default in FAULT_PARAMS[kind].items():
        value = doc.get(name, default)
        params[name] = parse_duration(value) if name in DURATION_PARAMS else value
    return Fault(
        at=parse_duration(doc["at"]),
        kind=kind,
        for_=_optional_duration(doc, "for"),
        fraction=float(doc.get("fraction", 1.0)),
        params=params,
    )


def _check_timeline(scenario: Scenario, source: str) -> None:
    """What the schema cannot say: times relative to the run's duration."""
    for i, fault in enumerate(scenario.faults):
        if fault.at >= scenario.duration:
            raise UsageError(
                f"{source}: $.faults[{i}].at: expected a time before the end of the run "
                f"(duration {scenario.duration:g}s), got {fault.at:g}s")
    if scenario.fleet.ramp > scenario.duration:
        raise UsageError(f"{source}: $.fleet.arrival.ramp: expected at most the duration "
                         f"({scenario.duration:g}s), got {scenario.fleet.ramp:g}s")
    times = dict(scenario.fleet.client_times)
    base, cap = times.get("base_delay"), times.get("max_delay")
    from system.client.config import ClientConfig  # the defaults of whichever bound is not stated
    base = ClientConfig.base_delay if base is None else base
    cap = ClientConfig.max_delay if cap is None else cap
    if cap < base:
        raise UsageError(f"{source}: $.fleet.max_delay: expected at least base_delay ({base:g}s), got {cap:g}s")
