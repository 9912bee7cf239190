"""What a person watching the run sees: a rich Live panel on a terminal, progress lines otherwise.

The numbers come from `Tally`: running counters the workers keep from their
clients' records and send to the engine a few times a second. A Live panel on a
pipe or a CI log is noise, so without a TTY the view prints one plain line (no
escape codes) every `line_every` seconds instead, its attempts per scenario second
averaged since the line before, and a last line with the final state when the run ends.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from system.units import format_duration


@dataclass
class Tally:
    """Running counters from client records (one per worker; `merge` sums them)."""

    attempts: int = 0
    opens: int = 0
    active: int = 0
    http_403: int = 0
    manual_refreshes: int = 0
    displayed: int = 0
    duplicates_displayed: int = 0
    closes: Counter = field(default_factory=Counter)
    clients_running: int = 0
    _open: set = field(default_factory=set, repr=False)

    def add(self, rec: dict[str, Any], seen: set | None = None) -> None:
        kind = rec.get("kind")
        if kind == "attempt":
            self.attempts += 1
        elif kind == "open":
            self.opens += 1
            self._open.add((rec.get("client"), rec.get("sock")))
            self.active = len(self._open)
        elif kind == "close":
            self._open.discard((rec.get("client"), rec.get("sock")))
            self.active = len(self._open)
            self.closes[str(rec.get("code"))] += 1
        elif kind == "handshake_failed":
            if rec.get("status") == 403:
                self.http_403 += 1
        elif kind == "give_up":
            self.manual_refreshes += 1
        elif kind == "displayed":
            self.displayed += 1
            if seen is not None:
                key = (rec.get("client"), rec.get("msg_id"))
                if key in seen:
                    self.duplicates_displayed += 1
                else:
                    seen.add(key)

    def snapshot(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "opens": self.opens, "active": self.active,
                "http_403": self.http_403, "manual_refreshes": self.manual_refreshes,
                "displayed": self.displayed, "duplicates_displayed": self.duplicates_displayed,
                "closes": dict(self.closes), "clients_running": self.clients_running}

    @classmethod
    def merge(cls, snaps: list[dict[str, Any]]) -> "Tally":
        t = cls()
        for s in snaps:
            for k in ("attempts", "opens", "active", "http_403", "manual_refreshes", "displayed",
                      "duplicates_displayed", "clients_running"):
                setattr(t, k, getattr(t, k) + int(s.get(k, 0)))
            t.closes.update(s.get("closes", {}))
        return t


#: gate metrics a Tally counts as the run goes (count over the whole run)
LIVE_METRICS = {"http_403": "http_403", "manual_refreshes": "manual_refreshes",
                "duplicates_displayed": "duplicates_displayed", "attempts": "attempts", "closes": "closes"}


@dataclass(frozen=True)
class LiveCheck:
    """A gate the live view can judge so far: a whole-run count with a fixed upper bound.
    Counts only grow, so a bound broken now stays broken: "failing" is final, "ok" is so far."""

    name: str
    metric: str
    code: str | None
    op: str
    value: float

    @classmethod
    def from_gates(cls, gates: list[Any]) -> list["LiveCheck"]:
        out = []
        for g in gates:
            tags = dict(getattr(g, "tags", ()))
            if (g.metric in LIVE_METRICS and g.stat == "count" and g.op in ("==", "<=", "<")
                    and isinstance(g.value, (int, float)) and g.phase.when == "run"
                    and set(tags) <= ({"code"} if g.metric == "closes" else set())):
                out.append(cls(g.name, g.metric, tags.get("code"), g.op, float(g.value)))
        return out

    def observed(self, tally: "Tally") -> int:
        if self.metric == "closes":
            return sum(tally.closes.values()) if self.code is None else int(tally.closes.get(self.code, 0))
        return int(getattr(tally, LIVE_METRICS[self.metric]))

    def holds(self, n: int) -> bool:
        return n < self.value if self.op == "<" else n <= self.value


BAR_WIDTH = 20
REFRESH_S = 0.25  # wall seconds between two drawings of the panel on a terminal


class LiveView:
    """Renders the run's state; `update` is cheap, call it as often as you like.

    Rates are per second of scenario time (the clock the gates and the scenario speak), never
    per wall second beside a scenario clock. A fault shows as in force when it was in force at
    any update, or was applied (`saw`), since the state was last shown: at x720 a 20 s partition
    lasts 28 wall milliseconds, less than the interval between two updates, let alone two
    progress lines. The panel is drawn by `update` itself (at most every `REFRESH_S`), never by
    a timer of its own, so no state that collected a fault is replaced before it was drawn.
    Every gate of the run is listed: whole-run counts with an upper bound are judged as the run
    goes, the others say they are judged at the end."""

    def __init__(self, title: str, duration: float, *, stream: TextIO | None = None,
                 live: bool | None = None, line_every: float = 10.0, gates: list[Any] = ()) -> None:
        self.title = title
        self.checks = LiveCheck.from_gates(list(gates))
        live_names = {c.name for c in self.checks}
        self.later = [g.name for g in gates if g.name not in live_names]
        self.duration = duration
        self.stream = stream or sys.stdout
        self.use_live = self.stream.isatty() if live is None else live
        self.line_every = line_every
        self._live: Live | None = None
        self._drawn_at: float | None = None                        # wall time the panel was last drawn
        self._latest: tuple[float, Tally] | None = None            # the last state given, for the final drawing
        self._last_line: tuple[float, float, int] | None = None  # (wall, clock, attempts) at the last line
        self._pending: tuple[float, Tally, list[str], float] | None = None  # the last state not printed
        self._prev: tuple[float, int] | None = None                # (clock, attempts) about a scenario second ago
        self._start: tuple[float, float] | None = None             # (wall, clock) of the first update
        self._faults_seen: dict[str, None] = {}                    # in force since the state was last shown
        self.rate = 0.0                                            # attempts per scenario second
        self.eta_s: float | None = None                            # wall seconds left

    def __enter__(self) -> "LiveView":
        if self.use_live:
            self._live = Live(Table(), console=Console(file=self.stream), auto_refresh=False, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            if self._latest is not None:  # the final state, with any fault not drawn yet
                self._draw(*self._latest)
            self._live.__exit__(None, None, None)
            self._live = None
        elif self._pending is not None:  # the final state, so a log never ends on a stale line
            self._print_line(*self._pending)

    def update(self, clock: float, tally: Tally, faults: list[str], wall: float | None = None) -> None:
        wall = time.monotonic() if wall is None else wall
        self._faults_seen.update(dict.fromkeys(faults))
        if self._start is None:
            self._start = (wall, clock)
        elif clock > self._start[1]:
            left = max(0.0, self.duration - clock)
            self.eta_s = (wall - self._start[0]) * left / (clock - self._start[1])
        if self._prev is not None and clock > self._prev[0]:
            self.rate = (tally.attempts - self._prev[1]) / (clock - self._prev[0])
        if self._prev is None or clock - self._prev[0] >= 1.0:
            self._prev = (clock, tally.attempts)
        if self._live is not None:
            self._latest = (clock, Tally.merge([tally.snapshot()]))  # the caller's tally keeps changing
            if self._drawn_at is None or wall - self._drawn_at >= REFRESH_S:
                self._drawn_at = wall
                self._draw(*self._latest)
        elif self._last_line is None or wall - self._last_line[0] >= self.line_every:
            self._print_line(clock, tally, faults, wall)
        else:
            snap = Tally.merge([tally.snapshot()])  # the caller's tally keeps changing
            self._pending = (clock, snap, list(faults), wall)

    def saw(self, fault: str) -> None:
        """A fault was applied: shown as in force at the next drawing or line, even when it was
        lifted before the next `update` (or is instant: a restart, a token expiry)."""
        self._faults_seen[fault] = None

    def _draw(self, clock: float, tally: Tally) -> None:
        assert self._live is not None
        self._live.update(self.render(clock, tally, self._shown_faults()), refresh=True)

    def _shown_faults(self) -> list[str]:
        """The faults in force at any update since the last time they were shown; resets."""
        shown = list(self._faults_seen)
        self._faults_seen.clear()
        return shown

    def _print_line(self, clock: float, tally: Tally, faults: list[str], wall: float) -> None:
        rate = None
        if self._last_line is not None and clock > self._last_line[1]:
            rate = (tally.attempts - self._last_line[2]) / (clock - self._last_line[1])
        self._last_line = (wall, clock, tally.attempts)
        self._pending = None
        self._faults_seen.update(dict.fromkeys(faults))
        print(self.line(clock, tally, self._shown_faults(), rate), file=self.stream, flush=True)

    def progress(self, clock: float) -> str:
        """`[#####---------------] 25% eta 1m30s (at 21:30:05)`: the wall time left and when it ends."""
        done = min(1.0, max(0.0, clock / self.duration)) if self.duration > 0 else 1.0
        filled = round(done * BAR_WIDTH)
        bar = f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {done:.0%}"
        if self.eta_s is None or done >= 1.0:
            return bar
        at = datetime.now().astimezone() + timedelta(seconds=self.eta_s)
        return f"{bar} eta {format_duration(self.eta_s)} (at {at:%H:%M:%S})"

    def _gate_states(self, tally: Tally) -> list[tuple[str, str, str]]:
        """(gate, state, detail) for every gate of the run."""
        out = []
        for check in self.checks:
            n = check.observed(tally)
            out.append((check.name, "ok so far" if check.holds(n) else "failing", f"{n} {check.op} {check.value:g}"))
        out += [(name, "at the end", "judged on the finished record") for name in self.later]
        return out

    def line(self, clock: float, tally: Tally, faults: list[str], rate: float | None = None) -> str:
        """One progress line; `rate`: attempts per scenario second to show (default: the last second's)."""
        closes = " ".join(f"{c}:{n}" for c, n in sorted(tally.closes.items())) or "-"
        states = self._gate_states(tally)
        failing = [name for name, state, _ in states if state == "failing"]
        gates = (f" gates: {len(states) - len(failing) - len(self.later)} ok so far, "
                 f"{len(self.later)} at the end" + (f", failing: {', '.join(failing)}" if failing else "")
                 if states else "")
        return (f"[{self.title}] t={format_duration(clock)}/{format_duration(self.duration)} "
                f"{self.progress(clock)} active={tally.active} "
                f"attempts/scenario-s={self.rate if rate is None else rate:.1f} closes={closes} "
                f"403={tally.http_403} refreshes={tally.manual_refreshes} "
                f"dups={tally.duplicates_displayed} faults={','.join(faults) or '-'}{gates}")

    def render(self, clock: float, tally: Tally, faults: list[str]) -> Table:
        t = Table(title=f"stormbench emulate — {self.title}", show_header=False, expand=False)
        t.add_column(style="bold")
        t.add_column()
        t.add_row("scenario clock", f"{format_duration(clock)} / {format_duration(self.duration)}")
        t.add_row("progress", escape(self.progress(clock)))
        t.add_row("clients running", str(tally.clients_running))
        t.add_row("active connections", str(tally.active))
        t.add_row("attempts per scenario second", f"{self.rate:.1f}")
        t.add_row("closes by code", ", ".join(f"{c}: {n}" for c, n in sorted(tally.closes.items())) or "none")
        t.add_row("faults in force since the last refresh", ", ".join(faults) or "none")
        t.add_row("gates", "" if self.checks or self.later else "none")
        style = {"ok so far": "green", "failing": "red", "at the end": "dim"}
        for name, state, detail in self._gate_states(tally):
            t.add_row(f"  {name}", f"[{style[state]}]{state}[/{style[state]}] ({detail})")
        return t


def view_of(scenario: Any, progress: Any, warnings: list[str], live: bool | None = None) -> LiveView:
    """The live view of a run of `scenario` (either clock) with every gate it names; off (plain
    lines never printed) when the caller watches through its own `progress` callable. `live`:
    the panel (True), plain lines (False: several runs share one terminal), or the panel only on a
    TTY (None). A gate file that does not load costs the view its gates, not the run: the verdict
    names the problem."""
    try:
        gates = list(scenario.checked_gates)
    except Exception as exc:
        warnings.append(f"live view: gates not shown ({exc})")
        gates = []
    return LiveView(scenario.name, scenario.duration, live=False if progress is not None else live, gates=gates)
