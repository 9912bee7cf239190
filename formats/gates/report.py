"""Verdicts for people and for CI: the rich table, JUnit XML, and writing both files of a run record."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from formats.gates.verdict import FAIL, PASS, UNKNOWN, Verdict, exit_code, write_gates_json
from formats.gates.wording import evidence, quantity, verdict_sentence, where
from formats.record import files
from formats.record.run import RunRecord
from formats.record.writer import write_atomic

STYLE = {PASS: "green", FAIL: "bold red", UNKNOWN: "yellow"}
LOG_WIDTH = 120  # columns of a table printed into a file or CI log (rich would wrap it at 80)


def output_console() -> Console:
    """The terminal's width on a terminal; LOG_WIDTH when the output goes to a file or a CI log."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=LOG_WIDTH)


def verdict_table(verdicts: list[Verdict], title: str = "gates") -> Table:
    table = Table(title=title)
    for col in ("gate", "verdict", "observed", "op", "threshold", "where / why"):
        table.add_column(col)
    for v in verdicts:
        label = v.verdict.upper() + ("" if v.strict else " (advisory)")
        metric, stat = str(v.provenance.get("metric", "")), str(v.provenance.get("stat", ""))
        table.add_row(v.name, f"[{STYLE[v.verdict]}]{label}[/]", quantity(metric, stat, v.observed), v.op,
                      quantity(metric, stat, v.threshold, with_noun=False), where(v))
    return table


def print_verdicts(verdicts: list[Verdict], title: str = "gates", console: Console | None = None, *,
                   outcome: bool = True, quiet: bool = False) -> None:
    """The table, then (with `outcome`) the line saying what it adds up to and the exit code.
    `quiet` leaves out the gates that passed, and prints nothing at all when none is left:
    a CI log stays short, but a failure still says which gate and why."""
    out = console or output_console()
    shown = [v for v in verdicts if v.verdict != PASS] if quiet else verdicts
    if not shown:
        return
    out.print(verdict_table(shown, f"{title}: the gates that did not pass" if quiet else title))
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


@dataclass(frozen=True)
class Suite:
    """What a CI server shows a run as: scenario, profile and engine in the suite's and the classes'
    names (a legacy and a fixed run of one scenario must not collide), when it ran and how long."""
    scenario: str
    profile: str = ""
    engine: str = ""
    timestamp: str = ""   # ISO 8601, when the run started
    time_s: float = 0.0   # wall seconds the run took

    @classmethod
    def of(cls, rec: RunRecord, scenario: str | None = None) -> "Suite":
        meta = rec.meta
        return cls(scenario or str(rec.scenario.get("name", rec.dir.name)), rec.profile, rec.engine,
                   str(meta.get("started_at", "")), float(meta.get("wall_time_s") or 0.0))

    @property
    def name(self) -> str:
        detail = ", ".join(x for x in (f"profile {self.profile}" if self.profile else "",
                                       f"engine {self.engine}" if self.engine else "") if x)
        return f"{self.scenario} ({detail})" if detail else self.scenario

    @property
    def classname(self) -> str:
        return ".".join(x for x in ("stormbench", self.scenario, self.profile, self.engine) if x)


def junit_xml(verdicts: list[Verdict], suite: Suite) -> str:
    """One testcase per gate: a strict failure is a <failure>, an unknown gate <skipped>; advisory
    failures pass and say so in <system-out>. Messages carry numbers with units; bodies the
    evidence as sentences."""
    failures = sum(1 for v in verdicts if v.strict and v.verdict == FAIL)
    skipped = sum(1 for v in verdicts if v.verdict == UNKNOWN)
    time_s = f"{suite.time_s:.3f}"
    root = ET.Element("testsuites", name="stormbench", tests=str(len(verdicts)), failures=str(failures),
                      time=time_s)
    attrs = {"name": suite.name, "tests": str(len(verdicts)), "failures": str(failures), "errors": "0",
             "skipped": str(skipped), "time": time_s}
    if suite.timestamp:
        attrs["timestamp"] = suite.timestamp
    ts = ET.SubElement(root, "testsuite", attrs)
    for v in verdicts:
        case = ET.SubElement(ts, "testcase", classname=suite.classname, name=v.name, time="0")
        message = verdict_sentence(v)
        body = "\n".join(evidence(v))
        if v.verdict == FAIL and v.strict:
            el = ET.SubElement(case, "failure", message=message, type="GateFailed")
            el.text = body
        elif v.verdict == UNKNOWN:
            ET.SubElement(case, "skipped", message=f"unknown: {v.provenance.get('reason', '')}")
        else:
            out = ET.SubElement(case, "system-out")
            out.text = ("advisory gate failed: " if v.verdict == FAIL else "") + body
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_verdicts(verdicts: list[Verdict], out_dir: str | Path, suite: Suite | str) -> int:
    """`gates.json` and `junit.xml` into `out_dir` (usually the run record); returns the exit code.
    A bare name as `suite` is taken from the run record in `out_dir` when there is one."""
    out_dir = Path(out_dir)
    if isinstance(suite, str):
        suite = Suite.of(RunRecord(out_dir), suite) if (out_dir / files.SCENARIO).exists() else Suite(suite)
    write_gates_json(verdicts, out_dir / files.GATES)
    write_atomic(out_dir / files.JUNIT, junit_xml(verdicts, suite))
    return exit_code(verdicts)
