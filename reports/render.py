"""Assemble a report from run-record (and sweep) directories and write it out.

Every section states what it could not show and why (a missing file, a run without a
time series) instead of silently leaving a gap: a reader must be able to tell "no
storms" from "no data".
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from formats.gates import wording
from formats.gates.verdict import FAIL, PASS, UNKNOWN, Verdict, exit_code
from formats.record.files import META_INCOMPLETE
from formats.record.selfcheck import describe as describe_self_check
from reports import figures, series
from reports.compare import Comparison, compare
from reports.document import Banner, Document, Image, Note, Section, Table
from reports.page_html import to_html
from reports.page_markdown import to_markdown
from formats.record.run import RecordError
from reports.record import Run, is_sweep, load_run, number
from reports.sweep import CAPACITY_HEADERS, Sweep, capacity_table, load_sweep
from system.units import format_duration, format_instant

DEFAULT_OUT_ROOT = Path(__file__).resolve().parent / "out"
SEED_CITATION = "scenarios/expectations/seed.yaml"
BUSIEST_ROWS = 3


def render(run_dirs: list[Path], out: Path | None = None) -> Path:
    """Write index.html, summary.md and the PNGs for `run_dirs`; returns the index.html path.

    Raises RecordError when a path is not a run record or sweep (nothing is written then).
    """
    if not run_dirs:
        raise RecordError("no run directories given (expected at least one RUN_DIR)")
    paths = [Path(p) for p in run_dirs]
    runs: list[Run] = []
    sweeps: list[Sweep] = []
    for path in paths:
        if is_sweep(path):
            sweeps.append(load_sweep(path))
        else:
            runs.append(load_run(path))
    doc = build(runs, sweeps)
    out = Path(out) if out is not None else DEFAULT_OUT_ROOT / _slug(paths)
    out.mkdir(parents=True, exist_ok=True)
    for image in doc.images():
        (out / image.name).write_bytes(image.png)
    (out / "summary.md").write_text(to_markdown(doc), encoding="utf-8")
    index = out / "index.html"
    index.write_text(to_html(doc), encoding="utf-8")
    return index


def build(runs: list[Run], sweeps: list[Sweep]) -> Document:
    names = sorted({r.scenario_name for r in runs} | {s.scenario for s in sweeps})
    doc = Document(
        title=f"stormbench report — {', '.join(names)}",
        subtitle=f"{len(runs)} run(s), {len(sweeps)} sweep(s); all times are scenario time",
    )
    if runs:
        doc.sections += [
            _verdicts(runs), _overview(runs), _gates(runs), _comparisons(compare(runs), runs), _survival(runs),
            _timeline(runs), _attempts(runs), _closes(runs), _active(runs), _delivery(runs), _overlay(runs),
        ]
    doc.sections += [_capacity(s, i) for i, s in enumerate(sweeps)]
    return doc


def _overview(runs: list[Run]) -> Section:
    section = Section("Runs", "runs")
    rows = []
    for run in runs:
        meta = run.meta or {}
        wall = number(meta.get("wall_time_s"))
        rows.append([
            run.label, run.scenario_name, run.engine, run.profile,
            _clients(run) + _message_sample(run), _dur(run.duration_s), clock_of(run),
            str(meta.get("time_scale", "")),
            _dur(wall), str(meta.get("started_at", "")), str(meta.get("seed", "")),
        ])
    section.blocks.append(Table(["run", "scenario", "engine", "profile", "clients", "duration", "clock",
                                 "time scale", "wall time", "started", "seed"], rows))
    for run in runs:
        description = (run.scenario or {}).get("description")
        if description:
            section.blocks.append(Note(f"{run.label}: {description}"))
        incomplete = (run.meta or {}).get(META_INCOMPLETE)
        if incomplete:
            section.blocks.append(Note(f"{run.label}: INCOMPLETE RUN: {incomplete} — every figure covers only "
                                       "what was recorded before it stopped"))
        for warning in (run.meta or {}).get("warnings") or []:
            section.blocks.append(Note(f"{run.label}: warning: {warning}"))
        check = (run.meta or {}).get("self_check")
        if isinstance(check, dict) and check:
            section.blocks.append(Note(f"{run.label}: self-check: {'; '.join(describe_self_check(check))}"))
        for note in run.notes:
            section.blocks.append(Note(f"{run.label}: {note} — sections that need it are skipped"))
    return section


def clock_of(run: Run) -> str:
    """Which clock judged a run: the model's, or the emulation's virtual or wall clock (a record
    from before clocks existed ran on the wall)."""
    if run.engine != "emulate":
        return "model"
    clock = (run.meta or {}).get("clock") or {}
    return f"{clock.get('kind', 'wall')} clock"


def _gates(runs: list[Run]) -> Section:
    section = Section("Gate verdicts", "gates")
    for run in runs:
        if run.gates is None:
            section.blocks.append(Note(f"{run.label}: no gates.json — verdicts not shown"))
        elif not run.gates:
            section.blocks.append(Note(f"{run.label}: gates.json lists no gates"))
        else:
            section.blocks.append(_verdict_table(f"{run.label} ({clock_of(run)}){_sampling(run)}", run.gates))
            busiest = _busiest_table(run.label, run.gates)
            if busiest is not None:
                section.blocks.append(busiest)
        if run.prometheus_gates:
            section.blocks.append(_verdict_table(f"{run.label}, judged by Prometheus", run.prometheus_gates))
    return section


def _as_verdict(gate: Any) -> Verdict:
    """A gates.json row as a Verdict, tolerating a damaged one (missing keys, a non-numeric value)."""
    gate = gate if isinstance(gate, dict) else {"name": str(gate)}
    prov = gate.get("provenance")
    return Verdict(str(gate.get("name", "")), str(gate.get("verdict", UNKNOWN)), bool(gate.get("strict", True)),
                   number(gate.get("observed")), str(gate.get("op", "")), gate.get("threshold"),
                   prov if isinstance(prov, dict) else {})


def _verdicts(runs: list[Run]) -> Section:
    """The answer first: per run, pass / fail / unknown, what failed and why in one sentence."""
    section = Section("Verdict", "verdict")
    for run in runs:
        if not run.gates:
            section.blocks.append(Banner(UNKNOWN, f"{run.label}: no verdict", "the run record holds no gates.json "
                                         "(run `stormbench gates RUN_DIR` to judge it)"))
            continue
        verdicts = [_as_verdict(g) for g in run.gates]
        code = exit_code(verdicts)
        overall = {0: PASS, 1: FAIL, 3: UNKNOWN}[code]
        failed = [v for v in verdicts if v.strict and v.verdict == FAIL]
        unknown = [v for v in verdicts if v.strict and v.verdict == UNKNOWN]
        who = f"{run.label} ({run.scenario_name}, {run.profile}, {run.engine})"
        if failed:
            first = failed[0]
            headline = f"{who}: FAIL — {len(failed)} of {sum(v.strict for v in verdicts)} strict gates failed: " \
                       f"{', '.join(v.name for v in failed)}"
            why = wording.where(first)
            detail = f"{first.name}: {wording.verdict_sentence(first)}" + (f" ({why})" if why else "")
        elif unknown:
            headline = f"{who}: UNKNOWN — {', '.join(v.name for v in unknown)} could not be judged, none failed"
            detail = f"{unknown[0].name}: {unknown[0].provenance.get('reason', 'no reason recorded')}"
        else:
            headline = f"{who}: PASS — every strict gate passed ({sum(v.strict for v in verdicts)})"
            detail = ""
        section.blocks.append(Banner(overall, headline, detail))
    return section


def _verdict_table(label: str, verdicts: list[Any]) -> Table:
    rows = []
    for v in (_as_verdict(g) for g in verdicts):
        verdict = v.verdict
        metric, stat = str(v.provenance.get("metric", "")), str(v.provenance.get("stat", ""))
        rows.append([
            v.name, (verdict, verdict if verdict in (PASS, FAIL, UNKNOWN) else ""),
            "strict" if v.strict else "advisory", wording.quantity(metric, stat, v.observed),
            f"{v.op} {wording.quantity(metric, stat, v.threshold, with_noun=False)}".strip(),
            "; ".join(wording.evidence(v)[1:]),
        ])
    counts = {v: sum(1 for r in rows if r[1][0] == v) for v in (PASS, FAIL, UNKNOWN)}
    caption = f"{label}: {counts[PASS]} pass, {counts[FAIL]} fail, {counts[UNKNOWN]} unknown"
    return Table(["gate", "verdict", "kind", "observed", "threshold", "why (evidence)"], rows, caption)


def _busiest_table(label: str, verdicts: list[Any]) -> Table | None:
    """Where in time the failed count gates failed: their busiest seconds or window, as a small table."""
    rows = []
    for v in (_as_verdict(g) for g in verdicts):
        where = v.provenance.get("where") or {}
        for t, n in (where.get("busiest_seconds") or [])[:BUSIEST_ROWS]:
            rows.append([v.name, f"second {_at(number(t))}", _fmt(n)])
        window = where.get("window")
        if isinstance(window, dict):
            rows.append([v.name, f"{_dur(number(window.get('start_s')))}–{_dur(number(window.get('end_s')))}",
                         _fmt(window.get("count"))])
    return Table(["gate", "when (scenario time)", "events"], rows, f"{label}: busiest windows of the failed gates") \
        if rows else None


def _comparisons(comparisons: list[Comparison], runs: list[Run]) -> Section:
    section = Section("Before / after", "before-after")
    if not comparisons:
        section.blocks.append(Note("needs two runs with summary.json: `stormbench report LEGACY_RUN FIXED_RUN` "
                                   "(a legacy and a fixed run of one scenario, e.g. from `stormbench run SCENARIO "
                                   "--profile legacy` and `--profile fixed`), or `stormbench main-job`, which "
                                   "runs both"))
        return section
    for comp in comparisons:
        b, a = comp.before, comp.after
        rows = [[r.metric.label, r.before_text, r.after_text, r.change_text] for r in comp.rows]
        if comp.legacy_vs_fixed:  # the seed's expectations are about exactly this pair
            headers = ["metric", f"before: {b.label} ({b.profile}, {b.engine}{_sampling(b)})",
                       f"after: {a.label} ({a.profile}, {a.engine}{_sampling(a)})", "change"]
            headers.append(f"seed system ({SEED_CITATION})")
            for row, r in zip(rows, comp.rows):
                row.append(f"{r.metric.seed_before} → {r.metric.seed_after}" if r.metric.seed_before else "")
            caption = f"{b.scenario_name} ({b.engine}) — legacy vs fixed"
        else:
            headers = ["metric", f"{b.label} ({b.profile}, {b.engine}, {_fmt(b.clients)} clients{_sampling(b)})",
                       f"{a.label} ({a.profile}, {a.engine}, {_fmt(a.clients)} clients{_sampling(a)})",
                       "second vs first"]
            caption = (f"{b.scenario_name} and {a.scenario_name} side by side (not before/after; "
                       + ("different engines or fleet sizes, so counts are per 1,000 clients per day)"
                          if comp.per_client else "not a legacy and a fixed run of one scenario)"))
        section.blocks.append(Table(headers, rows, caption))
    section.blocks.append(Note("counts are the run records' summaries (the gates' numbers): over the run's own "
                               "length, per day only for runs of a day or longer; p95 is the Kaplan–Meier "
                               "estimate (unknown when the run was too short to observe it)"))
    return section


def _sampling(run: Run) -> str:
    """How a simulated run counted, next to the figures it affects: the agents' weight (each
    counted connection stands for that many clients) and the message sample the delivery counts
    were scaled from; nothing for a run that followed every client."""
    weight = number(((run.meta or {}).get("sampling") or {}).get("weight"))
    parts = [f"weight {weight:g}"] if weight is not None and weight > 1 else []
    messages = _message_sample(run)
    if messages:
        parts.append(messages.strip(" ()"))
    return f" ({'; '.join(parts)})" if parts else ""


def _message_sample(run: Run) -> str:
    """A note of the message sample when the model followed the chat of some clients only."""
    sampling = (run.meta or {}).get("sampling") or {}
    weight, messages = number(sampling.get("weight")) or 1, number(sampling.get("ledger_clients"))
    if messages is None or not run.clients or messages >= run.clients / max(weight, 1):
        return ""
    return f" (messages of {_fmt(messages)} clients, scaled)"


def _line_style(run: Run) -> str:
    """Simulation dashed, emulation solid, in every overlay plot."""
    return "--" if run.engine == "simulate" else "-"


def _survival(runs: list[Run]) -> Section:
    section = Section("Connection lifetimes", "survival")
    curves, styles, labels = [], [], []
    for run in runs:
        data = series.survival_of(run)
        if data is None:
            section.blocks.append(Note(f"{run.label}: no connection lifetimes (connections.csv missing or empty)"))
            continue
        curves.append(data)
        styles.append(_line_style(run))
        labels.append(f"{run.label}{_sampling(run)}")
    if curves:
        lines = {(g.stat, g.op, g.seconds): g for r in runs for g in series.lifetime_gate_lines(r)}
        fig = figures.survival(curves, list(lines.values()), styles)
        section.blocks.insert(0, _image("survival.png", fig,
                                       "Kaplan–Meier survival of connection lifetimes"))
        section.blocks.insert(1, Table(
            ["run", "connections", "censored", "p50 (KM)", "p95 (KM)"],
            [[label, _fmt(d.curve.n), _fmt(d.curve.n - d.curve.events), _q(d.p50), _q(d.p95)]
             for label, d in zip(labels, curves)]))
    return section


def _attempts(runs: list[Run]) -> Section:
    section = Section("Reconnects per second: storms, apart from the arrival ramp", "attempts")
    panels, storm_rows = [], []
    for run in runs:
        data = series.reconnects_per_second(run)
        if data is None:
            section.blocks.append(Note(f"{run.label}: no reconnects or attempts column in timeseries.csv — not shown"))
            continue
        t, y, column = data
        if column != "reconnects":
            section.blocks.append(Note(f"{run.label}: timeseries.csv has no reconnects column: all attempts are "
                                       "plotted, the first connects of the ramp included"))
        storms, source = series.storm_windows(run)
        faults = series.fault_spans(run)
        ramp = [r for r in (series.arrival_ramp(run),) if r is not None]
        if run.faults is None:
            section.blocks.append(Note(f"{run.label}: faults.json missing — fault timeline not shaded"))
        panels.append((f"{run.label}{_sampling(run)} — storms: {len(storms)} ({source})", t, y, storms, faults, ramp))
        storm_rows += [[run.label, "arrival ramp", _dur(r.start), _dur(r.end - r.start),
                        "the fleet's first connects (not reconnects, never a storm)"] for r in ramp]
        storm_rows += [[run.label, "storm", _dur(s.start), _dur(s.end - s.start), s.label] for s in storms]
        storm_rows += [[run.label, "fault", _dur(f.start), _dur(f.end - f.start) if f.end > f.start else "instant",
                        f.label] for f in faults]
    if panels:
        fig = figures.timelines(panels, "reconnects/s",
                                "Reconnects per second, storms, faults and the arrival ramp")
        section.blocks.insert(0, _image("attempts.png", fig,
                                        "Reconnects per second with storm windows, faults and the arrival ramp"))
        if storm_rows:
            section.blocks.insert(1, Table(["run", "what", "at", "for", "detail"], storm_rows))
        section.blocks.append(Note(f"storms: {series.STORM_RULE.describe()}; 'detected' ones were found by the "
                                   "report with that rule, the others are listed by the run record"))
    return section


def _timeline(runs: list[Run]) -> Section:
    """The engineer's question: when did handshakes fail with 403, users refresh by hand, sockets close?"""
    section = Section("Timeline: 403s, manual refreshes and closes", "timeline")
    for i, run in enumerate(runs):
        binned = series.failure_timeline(run)
        if binned is None:
            section.blocks.append(Note(f"{run.label}: no timeseries.csv — timeline not shown"))
            continue
        busiest = []
        for v in (_as_verdict(g) for g in run.gates or []):
            seconds = ((v.provenance.get("where") or {}).get("busiest_seconds") or [])[:1]
            busiest += [(number(t) or 0.0, v.name) for t, _n in seconds]
        fig = figures.failure_timeline(run.label, binned, series.fault_spans(run), busiest)
        section.blocks.append(_image(f"timeline_{i}.png", fig, f"{run.label}: refused handshakes (403), manual "
                                                                "refreshes and closes by code, faults shaded"))
        if busiest:
            section.blocks.append(Note("marked: " + "; ".join(f"{k + 1}: busiest second of '{name}' at {_at(t)}"
                                                             for k, (t, name) in enumerate(busiest))))
        totals = [[key, _fmt(counts.sum())] for key, counts in binned.counts.items()]
        section.blocks.append(Table(["what", f"count in {_dur(run.duration_s)}"], totals,
                                    f"{run.label}{_sampling(run)}: totals of the timeline"))
    section.blocks.append(Note("a 403 is a refused handshake, not a close: the legacy server answers an expired "
                               "token with HTTP 403 before the WebSocket opens, which a browser sees as close 1006"))
    return section


def _closes(runs: list[Run]) -> Section:
    section = Section("Closes by code", "closes")
    panels = []
    for run in runs:
        binned = series.closes_by_code(run)
        if binned is None:
            section.blocks.append(Note(f"{run.label}: no closes_<code> columns in timeseries.csv — not shown"))
            continue
        panels.append((run.label, binned))
    if panels:
        section.blocks.insert(0, _image("closes.png", figures.closes(panels), "Closes by code over time"))
        codes = sorted({c for _, b in panels for c in b.counts}, key=lambda c: (not c.isdigit(), c))
        section.blocks.insert(1, Table(["run"] + codes, [
            [label] + [_fmt(b.counts[c].sum()) if c in b.counts else "0" for c in codes] for label, b in panels
        ], "total closes by code"))
        weighted = [f"{run.label}{_sampling(run)}" for run in runs if _sampling(run)]
        if weighted:
            section.blocks.append(Note("closes of the whole fleet, counted on weighted agents: " + "; ".join(weighted)))
    return section


def _active(runs: list[Run]) -> Section:
    section = Section("Active connections", "active")
    lines, shown = [], []
    for run in runs:
        data = series.active_connections(run)
        if data is None:
            section.blocks.append(Note(f"{run.label}: no active column in timeseries.csv — not shown"))
            continue
        shown.append(run)
        lines.append((f"{run.label} ({run.engine}){_sampling(run)}", data[0], data[1], _line_style(run)))
    if lines:
        fig = figures.lines(lines, series.fault_spans(shown[0]), "active connections", "Active connections")
        section.blocks.insert(0, _image("active.png", fig, "Active connections over time"))
    return section


def _delivery(runs: list[Run]) -> Section:
    section = Section("Message delivery", "delivery")
    rows = []
    for run in runs:
        data = series.delivery(run)
        if data is None:
            section.blocks.append(Note(f"{run.label}: no ledger (ledger.csv, ledger_summary.json) — not shown"))
            continue
        rows.append((run.label, data[0], f"{data[1]}{_sampling(run)}"))
    if rows:
        keys = series.DELIVERY_KEYS
        fig = figures.delivery([(label, counts) for label, counts, _ in rows], keys)
        section.blocks.insert(0, _image("delivery.png", fig, "Message delivery: lost and duplicated"))
        section.blocks.insert(1, Table(["run"] + list(keys) + ["source"], [
            [label] + [_fmt(counts.get(k)) for k in keys] + [source] for label, counts, source in rows
        ]))
        section.blocks.append(Note("lost: sent while the client was connected and never displayed (the gate's "
                                   "count); indeterminate: not displayed, but sent too close to the client's last "
                                   "connection for its fate to be known, never counted as lost"))
    return section


def _overlay(runs: list[Run]) -> Section:
    """Simulation over emulation, per scenario and profile, normalised per 1000 clients."""
    section = Section("Simulation vs emulation", "overlay")
    pairs = [(e, s) for e in runs if e.engine == "emulate" for s in runs
             if s.engine == "simulate" and (s.scenario_name, s.profile) == (e.scenario_name, e.profile)]
    if not pairs:
        section.blocks.append(Note("needs an emulated and a simulated run of the same scenario and profile — "
                                   "not shown"))
        return section
    for i, (emu, sim) in enumerate(pairs):
        curves = [d for d in (series.survival_of(emu), series.survival_of(sim)) if d is not None]
        if len(curves) == 2:
            fig = figures.survival(curves, series.lifetime_gate_lines(emu), ["-", "--"])
            section.blocks.append(_image(f"overlay_survival_{i}.png", fig,
                                        f"Lifetimes: {emu.label} (emulated) vs {sim.label} (simulated{_sampling(sim)})"))
        rates = [series.rate_per_1000(r) for r in (emu, sim)]
        if all(r is not None for r in rates):
            lines = [(f"{r.label} ({r.engine})", t, y, style)
                     for r, (t, y), style in zip((emu, sim), rates, ("-", "--"))]
            fig = figures.lines(lines, series.fault_spans(emu), "attempts/s per 1000 clients",
                                "Reconnect attempts per 1000 clients: simulated over emulated")
            section.blocks.append(_image(f"overlay_attempts_{i}.png", fig,
                                        f"Attempts per 1000 clients: {emu.label} vs {sim.label}{_sampling(sim)}"))
        else:
            section.blocks.append(Note(f"{emu.label} / {sim.label}: attempts or clients missing — rate overlay "
                                       "not shown"))
    return section


def _capacity(sweep: Sweep, index: int) -> Section:
    section = Section(f"Capacity — {sweep.scenario}", f"capacity-{index}")
    curves = [(s.label, np.array([p.fleet for p in s.points]), np.array([p.metric for p in s.points]),
               np.array([p.passed for p in s.points], dtype=bool)) for s in sweep.settings]
    capacities = {s.label: s.capacity for s in sweep.settings}
    fig = figures.capacity(curves, capacities, sweep.fleet_param, sweep.metric_key)
    section.blocks.append(_image(f"capacity_{index}.png", fig, f"Capacity curve of {sweep.scenario}"))
    rows, lines = capacity_table(sweep)
    section.blocks.append(Table(list(CAPACITY_HEADERS), rows))
    for line in lines:
        section.blocks.append(Note(line))
    for note in sweep.notes:
        section.blocks.append(Note(note))
    return section


def _slug(paths: list[Path]) -> str:
    text = "+".join(p.resolve().name for p in paths)
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text)[:120] or "report"


def _clients(run: Run) -> str:
    """The fleet, and how many clients each simulated agent stood for when the model sampled it
    (every count in the report is for the whole fleet)."""
    weight = number(((run.meta or {}).get("sampling") or {}).get("weight"))
    return _fmt(run.clients) + (f" (each simulated client stood for {weight:,.0f})" if weight and weight > 1 else "")


def _fmt(value: Any) -> str:
    num = number(value)
    return "n/a" if num is None else f"{num:,.0f}" if float(num).is_integer() else f"{num:,.2f}"


def _dur(value: float | None) -> str:
    return "n/a" if value is None else format_duration(value)


def _at(value: float | None) -> str:
    return "n/a" if value is None else format_instant(value)


def _q(value: float | None) -> str:
    return "not reached" if value is None else format_duration(value)


def _image(name: str, fig: Any, alt: str) -> Image:
    """The PNG of a figure, and the texts drawn over each other on it (none, the tests require)."""
    return Image(name, figures.png(fig), alt, tuple(figures.overlapping_texts(fig)))
