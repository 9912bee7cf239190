"""The gate language: parsed, checked `Gate` objects from gate files or inline lists.

A gate reads `metric{tag="v"}` aggregated by `stat` over a `phase` of the run and
compares it with `op` against `value` (a number, a duration, `Nx baseline`, a share
of the fleet — `0.3x fleet` or `30% of fleet` — or a list for `between` / `in`).
A fleet share is judged against the fleet the run drove (`fleet.clients` emulated,
`fleet.sim_clients` simulated), so one gate means the same at any fleet size.
Everything a run cannot express is rejected here, when the file is loaded, not when
the run is over.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from formats.faults import FAULT_KINDS
from formats.yamlfile import read_yaml
from system.errors import UsageError
from system.units import parse_duration, parse_rate

OPS = ("<", "<=", ">", ">=", "==", "!=", "between", "in")
SIMPLE_STATS = ("count", "rate", "mean", "min", "max", "value", "min_fraction", "max_window_count", "growth")
_QUANTILE = re.compile(r"^p\(?\s*(\d+(?:\.\d+)?)\s*\)?$")
_BASELINE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x\s*baseline\s*$")
_FLEET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(x|%\s*of)\s*fleet\s*$")
_METRIC = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<tags>.*)\})?$")
_TAG = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*[=:]\s*(?:"([^"]*)"|\'([^\']*)\'|([^,\s]+))\s*(?:,|$)')


@dataclass(frozen=True)
class Phase:
    """A part of the run tied to the fault timeline: the whole run, or before / during / after a fault kind.

    `fault` is a fault kind or `*` (any fault). `after` covers `within` seconds from the end of
    each fault of that kind.
    """

    when: str = "run"            # run | before | during | after
    fault: str | None = None
    within: float | None = None

    def to_dict(self) -> dict | None:
        if self.when == "run":
            return None
        out: dict[str, Any] = {self.when: self.fault}
        if self.within is not None:
            out["within"] = self.within
        return out


@dataclass(frozen=True)
class Gate:
    name: str
    metric: str
    stat: str                                  # one of SIMPLE_STATS or "quantile"
    op: str
    value: float | tuple[float, ...] | None    # None when relative to the baseline
    tags: tuple[tuple[str, str], ...] = ()
    quantile: float | None = None              # 0..1 when stat == "quantile"
    baseline_factor: float | None = None       # `3x baseline` -> 3.0
    fleet_factor: float | None = None          # `0.3x fleet` / `30% of fleet` -> 0.3
    baseline: Phase = Phase("before", "*")
    window: float | None = None                # seconds, for max_window_count
    phase: Phase = Phase()
    strict: bool = True
    promql: str | None = None
    description: str = ""
    spec: Mapping[str, Any] = field(default_factory=dict, compare=False)  # as written, for reports

    @property
    def selector(self) -> str:
        tags = ",".join(f'{k}="{v}"' for k, v in self.tags)
        return f"{self.metric}{{{tags}}}" if tags else self.metric

    @property
    def stat_label(self) -> str:
        return f"p{self.quantile * 100:g}" if self.stat == "quantile" else self.stat

    def to_dict(self) -> dict:
        return dict(self.spec)


def _fail(source: str, index: int, key: str, expected: str, got: Any) -> UsageError:
    return UsageError(f"{source}: $[{index}].{key}: expected {expected}, got {got!r}")


def _parse_metric(text: str, source: str, i: int) -> tuple[str, tuple[tuple[str, str], ...]]:
    m = _METRIC.match(text.strip())
    if not m:
        raise _fail(source, i, "metric", 'a metric name with optional tags, e.g. closes{code="4401"}', text)
    tags_text = (m.group("tags") or "").strip()
    tags: list[tuple[str, str]] = []
    pos = 0
    while pos < len(tags_text):
        t = _TAG.match(tags_text, pos)
        if not t or t.end() == pos:
            raise _fail(source, i, "metric", 'tags written as key="value", separated by commas', text)
        tags.append((t.group(1), next(g for g in t.groups()[1:] if g is not None)))
        pos = t.end()
    return m.group("name"), tuple(tags)


def _parse_stat(text: Any, source: str, i: int) -> tuple[str, float | None]:
    stat = str(text).strip().lower()
    if stat in ("med", "median"):
        return "quantile", 0.5
    if stat in ("avg", "average"):
        return "mean", None
    if stat in SIMPLE_STATS:
        return stat, None
    m = _QUANTILE.match(stat)
    if m and 0 < float(m.group(1)) < 100:
        return "quantile", float(m.group(1)) / 100.0
    raise _fail(source, i, "stat", "count, rate, mean, median, min, max, value, pN or p(N) with 0<N<100, "
                "min_fraction, max_window_count or growth", text)


def _number(value: Any, source: str, i: int, key: str) -> float:
    if isinstance(value, bool):
        raise _fail(source, i, key, "a number or a duration such as '2h'", value)
    if isinstance(value, (int, float)):
        return float(value)
    for parse in (parse_duration, parse_rate):  # "2h" -> seconds; "2/d" -> per second (for `rate`)
        try:
            return parse(value)
        except ValueError:
            pass
    raise _fail(source, i, key, "a number, a duration such as '2h', a rate such as '2/d', 'Nx baseline', "
                "or a share of the fleet such as '0.3x fleet' or '30% of fleet'", value)


def _fleet_share(text: str, source: str, i: int) -> float:
    """`0.3x fleet` -> 0.3, `30% of fleet` -> 0.3."""
    m = _FLEET.match(text)
    if not m:
        raise _fail(source, i, "value", "a share of the fleet written 'Nx fleet' (e.g. '0.3x fleet') or "
                    "'N% of fleet' (e.g. '30% of fleet')", text)
    share = float(m.group(1)) / (1.0 if m.group(2) == "x" else 100.0)
    if share <= 0:
        raise _fail(source, i, "value", "a positive share of the fleet", text)
    return share


def _parse_phase(spec: Mapping[str, Any] | None, source: str, i: int, key: str) -> Phase:
    if not spec:
        return Phase()
    whens = [w for w in ("before", "during", "after") if w in spec]
    if len(whens) != 1:
        raise _fail(source, i, key, "exactly one of before / during / after naming a fault kind", dict(spec))
    when = whens[0]
    fault = str(spec[when])

    if fault != "*" and fault not in FAULT_KINDS:
        raise _fail(source, i, f"{key}.{when}", "a fault kind (" + ", ".join(FAULT_KINDS) + ") or '*'", fault)
    within = spec.get("within")
    if within is not None and when != "after":
        raise _fail(source, i, f"{key}.within", "'within' only with 'after'", within)
    if when == "after" and within is None:
        raise _fail(source, i, f"{key}.within", "a duration: how long after the fault the phase lasts", None)
    return Phase(when, fault, None if within is None else _number(within, source, i, f"{key}.within"))


def parse_gate(spec: Mapping[str, Any], source: str = "<gates>", index: int = 0) -> Gate:
    i = index
    if not isinstance(spec, Mapping):
        raise UsageError(f"{source}: $[{i}]: expected a mapping with name, metric, stat, op and value, got {spec!r}")
    for key in ("name", "metric", "stat", "op", "value"):
        if key not in spec:
            raise _fail(source, i, key, "a value (every gate needs name, metric, stat, op and value)", None)
    unknown = set(spec) - {"name", "metric", "stat", "op", "value", "window", "phase", "baseline", "strict",
                           "promql", "description"}
    if unknown:
        raise UsageError(f"{source}: $[{i}]: unknown field(s) {sorted(unknown)}; expected name, metric, stat, op, "
                         "value, window, phase, baseline, strict, promql, description")
    metric, tags = _parse_metric(str(spec["metric"]), source, i)
    stat, quantile = _parse_stat(spec["stat"], source, i)
    op = str(spec["op"]).strip()
    if op not in OPS:
        raise _fail(source, i, "op", "one of " + ", ".join(OPS), spec["op"])
    raw = spec["value"]
    factor = fleet = None
    value: float | tuple[float, ...] | None
    if op in ("between", "in"):
        if not isinstance(raw, (list, tuple)) or (op == "between" and len(raw) != 2) or not raw:
            raise _fail(source, i, "value", "[low, high]" if op == "between" else "a non-empty list", raw)
        value = tuple(_number(v, source, i, "value") for v in raw)
    elif isinstance(raw, str) and _BASELINE.match(raw):
        factor, value = float(_BASELINE.match(raw).group(1)), None
    elif isinstance(raw, str) and "fleet" in raw:
        fleet, value = _fleet_share(raw, source, i), None
    else:
        value = _number(raw, source, i, "value")
    window = None
    if "window" in spec:
        window = _number(spec["window"], source, i, "window")
        if window <= 0:
            raise _fail(source, i, "window", "a positive duration", spec["window"])
    if stat == "max_window_count" and window is None:
        raise _fail(source, i, "window", "a duration (max_window_count counts events per rolling window)", None)
    strict = spec.get("strict", True)
    if not isinstance(strict, bool):
        raise _fail(source, i, "strict", "true or false", strict)
    baseline = _parse_phase(spec.get("baseline"), source, i, "baseline") if "baseline" in spec else Phase("before", "*")
    return Gate(
        name=str(spec["name"]), metric=metric, tags=tags, stat=stat, quantile=quantile, op=op, value=value,
        baseline_factor=factor, fleet_factor=fleet, baseline=baseline, window=window,
        phase=_parse_phase(spec.get("phase"), source, i, "phase"), strict=strict,
        promql=spec.get("promql"), description=str(spec.get("description", "")), spec=dict(spec),
    )


def parse_gates(specs: Iterable[Mapping[str, Any]], source: str = "<gates>") -> list[Gate]:
    gates = [parse_gate(spec, source, i) for i, spec in enumerate(specs)]
    names = [g.name for g in gates]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"{source}: gate names must be unique (JUnit and gates.json key on them); repeated: {dupes}")
    return gates


def read_gate_file(path: str | Path) -> list[dict]:
    """The raw gate specs of a gate file: a YAML list, or a mapping with a `gates:` list."""
    path = Path(path)
    doc = read_yaml(path)
    if isinstance(doc, Mapping) and "gates" in doc:
        doc = doc["gates"]
    if not isinstance(doc, list):
        raise UsageError(f"{path}: expected a list of gates (or a mapping with a 'gates:' list), got {type(doc).__name__}")
    return [dict(g) if isinstance(g, Mapping) else g for g in doc]


def load_gates(source: str | Path | Iterable[Mapping[str, Any]]) -> list[Gate]:
    """Gates from a gate file path or a list of specs (e.g. `Scenario.gates`)."""
    if isinstance(source, (str, Path)):
        return parse_gates(read_gate_file(source), source=str(source))
    return parse_gates(list(source))
