"""Drawing: each function turns the numbers from `reports.series` into a PNG.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global figure state,
no display), so rendering is headless and safe to call from any thread.
"""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from reports.series import Binned, GateLine, Span, SurvivalData
from system.units import format_duration

STORM_COLOUR = "#d1242f"
FAULT_COLOUR = "#6e7781"
MAX_CENSORED_MARKS = 500
MARK_GAP = 0.04  # share of the time axis between two busiest-second marks
LABEL_GAP = 0.025  # share of the time axis between two fault names (7-pt text turned upright is ~1.2%)
LIFETIME_TICKS_S = (1, 10, 60, 600, 1800, 3600, 7200, 6 * 3600, 86400, 7 * 86400)
CODE_COLOURS = {"1000": "#2da44e", "1001": "#1a7f37", "1006": "#8250df", "1011": "#cf222e", "1012": "#0969da",
                "1013": "#bf8700", "4401": "#fb8500", "4403": "#6e7781"}


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def overlapping_texts(fig: Figure, slack_px: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of visible texts (titles, tick labels, legends, annotations) whose boxes overlap once
    drawn: a label a reader can not read. Checked by the tests on every figure of a report."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    undrawn = set()  # tick labels matplotlib keeps for ticks beyond the axis's limits and does not draw
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            slack = (hi - lo) * 1e-9
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - slack <= tick.get_loc() <= hi + slack:
                    undrawn |= {id(tick.label1), id(tick.label2)}
    boxes = []
    for text in fig.findobj(Text):
        if id(text) in undrawn or not text.get_visible() or not text.get_text().strip() or not text.get_figure():
            continue
        box = text.get_window_extent(renderer)
        if box.width > 0 and box.height > 0:
            boxes.append((text.get_text(), box.expanded(1.0, 1.0).padded(-slack_px)))
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:] if box_a.overlaps(box_b)]


def time_unit(duration_s: float) -> tuple[float, str]:
    if duration_s > 3 * 3600:
        return 3600.0, "h"
    if duration_s > 3 * 60:
        return 60.0, "min"
    return 1.0, "s"


def survival(curves: Sequence[SurvivalData], gate_lines: Sequence[GateLine], styles: Sequence[str]) -> Figure:
    """Step curves on a log time axis; censored connections as '+' on the curve; gate lines."""
    fig = Figure(figsize=(9, 4.8))
    ax = fig.add_subplot()
    longest = 1.0
    for data, style in zip(curves, styles):
        c = data.curve
        times = np.concatenate([[max(min(c.times.min(initial=1.0), 1.0) / 2, 1e-3)], c.times])
        surv = np.concatenate([[1.0], c.survival])
        line, = ax.step(times, surv, where="post", linestyle=style,
                        label=f"{data.label} (n={c.n}, p50 {_q(data.p50)}, p95 {_q(data.p95)})")
        if len(c.censored_times):
            every = max(1, len(c.censored_times) // MAX_CENSORED_MARKS)  # a fleet can have 100k of them
            ax.plot(np.maximum(c.censored_times[::every], times[0]), c.censored_survival[::every], "+",
                    color=line.get_color(), markersize=7, alpha=0.7)
        longest = max(longest, float(c.times.max(initial=1.0)), float(c.censored_times.max(initial=1.0)))
    for level, name in ((0.5, "p50"), (0.05, "p95")):
        ax.axhline(level, color="#57606a", linewidth=0.8, linestyle=":")
        ax.text(1.0, level, f" {name}", transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    for gate in gate_lines:
        ax.axvline(gate.seconds, color=STORM_COLOUR, linewidth=1.2, linestyle="--",
                   label=f"gate: {gate.stat} {gate.op} {format_duration(gate.seconds)}")
        longest = max(longest, gate.seconds)
    ax.plot([], [], "+", color="black", label="censored (still open at the end)")
    ax.set_xscale("log")
    ax.set_xlim(right=longest * 1.5)
    ax.xaxis.set_major_locator(FixedLocator(LIFETIME_TICKS_S))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: format_duration(v)))
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("connection lifetime (scenario time)")
    ax.set_ylabel("share of connections still open")
    ax.set_title("Connection lifetimes (Kaplan–Meier)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return fig


def timelines(panels: Sequence[tuple[str, np.ndarray, np.ndarray, list[Span], list[Span], list[Span]]],
              ylabel: str, title: str) -> Figure:
    """One panel per run: a per-second line, storms shaded red, faults grey, the arrival ramp hatched
    (its first connects are not a storm)."""
    fig = Figure(figsize=(9, 2.2 + 1.9 * len(panels)))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (label, t, y, storms, faults, ramp) in zip(axes, panels):
        scale, unit = time_unit(float(t.max(initial=0)) + 1)
        ax.plot(t / scale, y, linewidth=0.8, color="#0969da", label=ylabel)
        for span in ramp:
            ax.axvspan(span.start / scale, span.end / scale, facecolor="none", edgecolor=RAMP_COLOUR,
                       hatch="//", linewidth=0, alpha=0.5, label="arrival ramp")
        _shade(ax, faults, scale, FAULT_COLOUR, "fault", annotate=True)
        _shade(ax, storms, scale, STORM_COLOUR, "storm", annotate=False)
        ax.set_title(label, fontsize=9, loc="left")
        ax.set_ylim(bottom=0)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_xlabel(f"scenario time ({unit})", fontsize=8)
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


RAMP_COLOUR = "#57606a"


def failure_timeline(label: str, binned: Binned, faults: list[Span], busiest: list[tuple[float, str]]) -> Figure:
    """Three rows on one time axis: handshakes refused with HTTP 403, manual refreshes, closes by
    code; faults shaded and named, each failed gate's busiest second marked with its number in
    `busiest` (1-based; the report lists them under the figure)."""
    fig = Figure(figsize=(9, 7))
    axes = fig.subplots(3, 1, sharex=True)
    scale, unit = time_unit(float(binned.starts.max(initial=0)) + binned.bin_s)
    x, width = binned.starts / scale, binned.bin_s / scale
    rows = [("HTTP 403s", [k for k in binned.counts if k.startswith("HTTP")], "#cf222e"),
            ("manual refreshes", [k for k in binned.counts if k == "manual refreshes"], "#bf8700"),
            ("closes", [k for k in binned.counts if k.startswith("close ")], None)]
    for ax, (ylabel, keys, colour) in zip(axes, rows):
        bottom = np.zeros(len(x))
        for key in keys:
            code = key.removeprefix("close ")
            ax.bar(x, binned.counts[key], width=width, bottom=bottom, align="edge",
                   color=colour or CODE_COLOURS.get(code), label=key)
            bottom += binned.counts[key]
        if not keys:
            ax.text(0.5, 0.5, f"no {ylabel} column in timeseries.csv", transform=ax.transAxes, ha="center",
                    fontsize=8, color=FAULT_COLOUR)
        _shade(ax, faults, scale, FAULT_COLOUR, "fault", annotate=ax is axes[0])
        ax.set_ylim(0, max(1.0, float(bottom.max(initial=0))) * 1.15)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        ax.set_ylabel(f"{ylabel}\nper {format_duration(binned.bin_s)}", fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        if keys:
            ax.legend(fontsize=7, loc="upper right", ncol=3)
    low, high = axes[0].get_xlim()
    for marks, at in _merge_marks([t / scale for t, _ in busiest], MARK_GAP * (high - low)):
        for ax in axes:
            ax.axvline(at, color=STORM_COLOUR, linewidth=0.8, linestyle=":")
        axes[0].text(at, 0.5, ",".join(str(i + 1) for i in marks), transform=axes[0].get_xaxis_transform(),
                     ha="center", va="center", fontsize=7, color=STORM_COLOUR,
                     bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": STORM_COLOUR})
    axes[-1].set_xlabel(f"scenario time ({unit})", fontsize=8)
    fig.suptitle(f"{label}: refused handshakes, manual refreshes and closes over time")
    fig.tight_layout()
    return fig


def _merge_marks(xs: list[float], gap: float) -> list[tuple[list[int], float]]:
    """Numbered marks closer than `gap` share one label ("1,3"), so no two labels overlap."""
    groups: list[tuple[list[int], float]] = []
    for i in sorted(range(len(xs)), key=lambda k: xs[k]):
        if groups and xs[i] - groups[-1][1] < gap:
            groups[-1][0].append(i)
        else:
            groups.append(([i], xs[i]))
    return groups


def closes(panels: Sequence[tuple[str, Binned]]) -> Figure:
    fig = Figure(figsize=(9, 2.2 + 1.9 * len(panels)))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (label, binned) in zip(axes, panels):
        scale, unit = time_unit(float(binned.starts.max(initial=0)) + binned.bin_s)
        bottom = np.zeros(len(binned.starts))
        for code, counts in binned.counts.items():
            ax.bar(binned.starts / scale, counts, width=binned.bin_s / scale, bottom=bottom, align="edge",
                   color=CODE_COLOURS.get(code), label=code)
            bottom += counts
        ax.set_title(f"{label} — per {format_duration(binned.bin_s)}", fontsize=9, loc="left")
        ax.set_ylabel("closes", fontsize=8)
        ax.set_xlabel(f"scenario time ({unit})", fontsize=8)
        ax.legend(title="close code", fontsize=7, title_fontsize=7, loc="upper right", ncol=2)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("Closes by code over time")
    fig.tight_layout()
    return fig


def lines(series: Sequence[tuple[str, np.ndarray, np.ndarray, str]], faults: list[Span],
          ylabel: str, title: str) -> Figure:
    """Several runs on one axis (label, t, y, linestyle), faults of the first run shaded."""
    fig = Figure(figsize=(9, 4))
    ax = fig.add_subplot()
    longest = max(float(t.max(initial=0)) + 1 for _, t, _, _ in series)
    scale, unit = time_unit(longest)
    for label, t, y, style in series:
        ax.plot(t / scale, y, linewidth=1.0, linestyle=style, label=label)
    _shade(ax, faults, scale, FAULT_COLOUR, "fault", annotate=True)
    ax.set_xlabel(f"scenario time ({unit})")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def delivery(rows: Sequence[tuple[str, dict[str, float]]], keys: Sequence[str]) -> Figure:
    """Horizontal bars, one group per outcome and a bar per run, the count at the bar's end: labels
    of neighbouring bars sit on separate lines, so they can not overlap."""
    fig = Figure(figsize=(9, 1.0 + 0.32 * len(keys) * max(len(rows), 1)))
    ax = fig.add_subplot()
    height = 0.8 / max(len(rows), 1)
    y = np.arange(len(keys))
    for i, (label, counts) in enumerate(rows):
        values = [counts.get(k, np.nan) for k in keys]
        bars = ax.barh(y + i * height, values, height=height, label=label)
        ax.bar_label(bars, labels=[("" if np.isnan(v) else f"{v:,.0f}") for v in values], fontsize=7, padding=2)
    ax.set_yticks(y + height * (len(rows) - 1) / 2, keys)
    ax.invert_yaxis()
    ax.set_xscale("symlog", linthresh=1)
    ax.margins(x=0.15)
    ax.set_xlabel("messages")
    ax.set_title("Message delivery: lost, indeterminate and duplicated (Jepsen-style)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def capacity(curves: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]], capacity_at: dict[str, float | None],
             xlabel: str, ylabel: str) -> Figure:
    """(label, fleet sizes, metric, passed) per setting; failing points hollow; capacity marked."""
    fig = Figure(figsize=(9, 4.5))
    ax = fig.add_subplot()
    for label, x, y, passed in curves:
        line, = ax.plot(x, y, marker="", linewidth=1.2, label=f"{label} — capacity {_fleet(capacity_at.get(label))}")
        ax.plot(x[passed], y[passed], "o", color=line.get_color())
        ax.plot(x[~passed], y[~passed], "o", mfc="white", color=line.get_color())
        if capacity_at.get(label):
            ax.axvline(capacity_at[label], color=line.get_color(), linestyle=":", linewidth=1)
    ax.plot([], [], "o", color="black", label="every strict gate passed")
    ax.plot([], [], "o", mfc="white", color="black", label="a strict gate failed")
    ax.set_xscale("log")
    fleets = sorted({float(v) for _, x, _, _ in curves for v in x})
    ax.xaxis.set_major_locator(FixedLocator(fleets))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("Capacity: the largest fleet before a gate breaks")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _shade(ax, spans: list[Span], scale: float, colour: str, kind: str, annotate: bool) -> None:
    """Shade each span; with `annotate`, name it at its start, unless that is within LABEL_GAP of the
    axis from the last named one (those overlap; the table beside the plot lists every fault)."""
    labelled = False
    named_at = None
    low, high = ax.get_xlim() if ax.has_data() else (0.0, 1.0)
    gap = LABEL_GAP * max(high - low, max((s.end for s in spans), default=1.0) / scale)
    for span in spans:
        label = None if labelled else kind
        if span.end > span.start:
            ax.axvspan(span.start / scale, span.end / scale, color=colour, alpha=0.18, label=label)
        else:
            ax.axvline(span.start / scale, color=colour, linewidth=1.2, alpha=0.8, label=label)
        labelled = True
        if annotate and (named_at is None or span.start / scale - named_at >= gap):
            named_at = span.start / scale
            ax.text(span.start / scale, 1.0, span.label, transform=ax.get_xaxis_transform(),
                    fontsize=7, rotation=90, va="top", ha="right", color=colour)


def _q(value: float | None) -> str:
    return "n/a" if value is None else format_duration(value)


def _fleet(value: float | None) -> str:
    return "below the smallest fleet tried" if not value else f"{value:,.0f}"
