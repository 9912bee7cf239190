"""What a person watching the run sees: a rich Live panel on a terminal, progress lines otherwise.

The numbers come from `Tally`: running counters the workers keep from their
clients' records and send to the engine a few times a second. A Live panel on a
pipe or a CI log is noise, so without a TTY the view prints one plain line (no
escape codes) every `line_every` seconds instead, its attempts/s averaged since the
line before, and a last line with the final state when the run ends.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
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


class LiveView:
    """Renders the run's state; `update` is cheap, call it as often as you like."""

    def __init__(self, title: str, duration: float, *, stream: TextIO | None = None,
                 live: bool | None = None, line_every: float = 10.0, checks: list[LiveCheck] = ()) -> None:
        self.title = title
        self.checks = list(checks)
        self.duration = duration
        self.stream = stream or sys.stdout
        self.use_live = self.stream.isatty() if live is None else live
        self.line_every = line_every
        self._live: Live | None = None
        self._last_line: tuple[float, int] | None = None   # (wall, attempts) when the last line was printed
        self._pending: tuple[float, Tally, list[str], float] | None = None  # the last state not printed
        self._prev: tuple[float, int] | None = None
        self.rate = 0.0

    def __enter__(self) -> "LiveView":
        if self.use_live:
            self._live = Live(Table(), console=Console(file=self.stream), refresh_per_second=4,
                              transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None
        elif self._pending is not None:  # the final state, so a log never ends on a stale line
            self._print_line(*self._pending)

    def update(self, clock: float, tally: Tally, faults: list[str], wall: float | None = None) -> None:
        wall = time.monotonic() if wall is None else wall
        if self._prev is not None and wall > self._prev[0]:
            self.rate = (tally.attempts - self._prev[1]) / (wall - self._prev[0])
        if self._prev is None or wall - self._prev[0] >= 1.0:
            self._prev = (wall, tally.attempts)
        if self._live is not None:
            self._live.update(self.render(clock, tally, faults))
        elif self._last_line is None or wall - self._last_line[0] >= self.line_every:
            self._print_line(clock, tally, faults, wall)
        else:
            snap = Tally.merge([tally.snapshot()])  # the caller's tally keeps changing
            self._pending = (clock, snap, list(faults), wall)

    def _print_line(self, clock: float, tally: Tally, faults: list[str], wall: float) -> None:
        rate = None
        if self._last_line is not None and wall > self._last_line[0]:
            rate = (tally.attempts - self._last_line[1]) / (wall - self._last_line[0])
        self._last_line = (wall, tally.attempts)
        self._pending = None
        print(self.line(clock, tally, faults, rate), file=self.stream, flush=True)

    def line(self, clock: float, tally: Tally, faults: list[str], rate: float | None = None) -> str:
        """One progress line; `rate`: attempts per wall second to show (default: the last second's)."""
        closes = " ".join(f"{c}:{n}" for c, n in sorted(tally.closes.items())) or "-"
        failing = [c.name for c in self.checks if not c.holds(c.observed(tally))]
        return (f"[{self.title}] t={format_duration(clock)}/{format_duration(self.duration)} "
                f"active={tally.active} attempts/s={self.rate if rate is None else rate:.1f} closes={closes} "
                f"403={tally.http_403} refreshes={tally.manual_refreshes} "
                f"dups={tally.duplicates_displayed} faults={','.join(faults) or '-'}"
                + (f" gates failing: {', '.join(failing)}" if failing else ""))

    def render(self, clock: float, tally: Tally, faults: list[str]) -> Table:
        t = Table(title=f"stormbench emulate — {self.title}", show_header=False, expand=False)
        t.add_column(style="bold")
        t.add_column()
        t.add_row("scenario clock", f"{format_duration(clock)} / {format_duration(self.duration)}")
        t.add_row("clients running", str(tally.clients_running))
        t.add_row("active connections", str(tally.active))
        t.add_row("attempts/s (wall)", f"{self.rate:.1f}")
        t.add_row("closes by code", ", ".join(f"{c}: {n}" for c, n in sorted(tally.closes.items())) or "none")
        t.add_row("faults in force", ", ".join(faults) or "none")
        t.add_row("gates so far", "" if self.checks else "none judged live")
        for check in self.checks:
            n = check.observed(tally)
            verdict = "[green]ok so far[/green]" if check.holds(n) else "[red]failing[/red]"
            t.add_row(f"  {check.name}", f"{verdict} ({n} {check.op} {check.value:g})")
        return t
