"""Verdicts for people and for CI: the rich table, JUnit XML, and writing both files of a run record."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.gates.verdict import FAIL, PASS, UNKNOWN, Verdict, exit_code, write_gates_json
from harness.record import files
from harness.record.writer import write_atomic

STYLE = {PASS: "green", FAIL: "bold red", UNKNOWN: "yellow"}
LOG_WIDTH = 120  # columns of a table printed into a file or CI log (rich would wrap it at 80)


def output_console() -> Console:
    """The terminal's width on a terminal; LOG_WIDTH when the output goes to a file or a CI log."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=LOG_WIDTH)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _where(v: Verdict) -> str:
    p = v.provenance
    if v.verdict == UNKNOWN:
        return p.get("reason", "")
    where = p.get("where", {})
    if "window" in where:
        w = where["window"]
        return f"window {w['start_s']:g}-{w['end_s']:g}s: {w['count']} events"
    if "connections_below_threshold" in where:
        return f"{where['connections_below_threshold']} connections below the threshold"
    if "worst" in where:
        w = where["worst"]
        return f"{w['connected_clients']:g}/{w['fleet_expected']:g} clients at {w['at_s']:g}s"
    if "busiest_seconds" in where and where["busiest_seconds"]:
        t, n = where["busiest_seconds"][0]
        return f"busiest second {t}s: {n}"
    if "lower_bound" in p:
        return f"> {p['lower_bound']:g}s (censored)"
    if "baseline" in p:
        return f"baseline {p['baseline']['value']:.4g}"
    return ""


def verdict_table(verdicts: list[Verdict], title: str = "gates") -> Table:
    table = Table(title=title)
    for col in ("gate", "verdict", "observed", "op", "threshold", "where / why"):
        table.add_column(col)
    for v in verdicts:
        label = v.verdict.upper() + ("" if v.strict else " (advisory)")
        table.add_row(v.name, f"[{STYLE[v.verdict]}]{label}[/]", _fmt(v.observed), v.op, _fmt(v.threshold),
                      _where(v))
    return table


def print_verdicts(verdicts: list[Verdict], title: str = "gates", console: Console | None = None, *,
                   outcome: bool = True) -> None:
    """The table, then (with `outcome`) the line saying what it adds up to and the exit code."""
    out = console or output_console()
    out.print(verdict_table(verdicts, title))
    if outcome:
        out.print(outcome_line(verdicts), highlight=False)


def outcome_line(verdicts: list[Verdict]) -> str:
    """What the table adds up to and the exit code it gives, in the README's terms."""
    strict = [v for v in verdicts if v.strict]
    counts = {k: sum(1 for v in strict if v.verdict == k) for k in (PASS, FAIL, UNKNOWN)}
    advisory_failed = sum(1 for v in verdicts if not v.strict and v.verdict == FAIL)
    code = exit_code(verdicts)
    word = {0: "every strict gate passed" if strict else "no strict gate to judge", 1: "a strict gate failed",
            3: "a strict gate is unknown, none failed"}[code]
    parts = [f"{counts[PASS]} passed", f"{counts[FAIL]} failed", f"{counts[UNKNOWN]} unknown"]
    extra = f"; {advisory_failed} advisory failed (not counted)" if advisory_failed else ""
    return f"exit {code}: {word} ({', '.join(parts)} of {len(strict)} strict{extra})"


def junit_xml(verdicts: list[Verdict], suite: str) -> str:
    """One testcase per gate: a strict failure is a <failure>, an unknown gate <skipped>; advisory
    failures pass and say so in <system-out>."""
    failures = sum(1 for v in verdicts if v.strict and v.verdict == FAIL)
    skipped = sum(1 for v in verdicts if v.verdict == UNKNOWN)
    root = ET.Element("testsuites", name="stormbench", tests=str(len(verdicts)), failures=str(failures))
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(verdicts)), failures=str(failures),
                       errors="0", skipped=str(skipped))
    for v in verdicts:
        case = ET.SubElement(ts, "testcase", classname=f"stormbench.gates.{suite}", name=v.name)
        message = f"observed {_fmt(v.observed)} {v.op} {_fmt(v.threshold)} is {v.verdict}"
        detail = json.dumps(v.provenance, indent=2, default=str)
        if v.verdict == FAIL and v.strict:
            el = ET.SubElement(case, "failure", message=message, type="GateFailed")
            el.text = detail
        elif v.verdict == UNKNOWN:
            el = ET.SubElement(case, "skipped", message=f"unknown: {v.provenance.get('reason', '')}")
        else:
            out = ET.SubElement(case, "system-out")
            out.text = ("advisory gate failed: " if v.verdict == FAIL else "") + message + "\n" + detail
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_verdicts(verdicts: list[Verdict], run_dir: str | Path, suite: str) -> int:
    """`gates.json` and `junit.xml` into the run record; returns the exit code."""
    run_dir = Path(run_dir)
    write_gates_json(verdicts, run_dir / files.GATES)
    write_atomic(run_dir / files.JUNIT, junit_xml(verdicts, suite))
    return exit_code(verdicts)
