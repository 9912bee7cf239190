"""A running tally of client records, for the `client` command's live view and its last word."""
from __future__ import annotations

from collections import Counter

from rich.table import Table


class Summary:
    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.http_status: Counter[str] = Counter()
        self.close_codes: Counter[int] = Counter()
        self.give_up_reasons: Counter[str] = Counter()
        self.duplicates_displayed = 0
        self.failed_tokens = 0
        self.reconnects = 0  # attempts after the first of a session
        self._open: set[tuple[str, int]] = set()
        self._displayed: set[tuple[str, object]] = set()
        self.peak_open = 0

    def add(self, record: dict) -> None:
        kind, client = record["kind"], record["client"]
        self.kinds[kind] += 1
        if kind == "attempt":
            self.reconnects += record["n"] > 0
        elif kind == "token":
            self.failed_tokens += not record["ok"]
        elif kind == "open":
            self._open.add((client, record["sock"]))
            self.peak_open = max(self.peak_open, len(self._open))
        elif kind == "close":
            self._open.discard((client, record["sock"]))
            self.close_codes[record["code"]] += 1
        elif kind == "handshake_failed":
            self.http_status[str(record["status"] or "no answer")] += 1
        elif kind == "give_up":
            self.give_up_reasons[record["reason"]] += 1
        elif kind == "displayed":
            key = (client, record["msg_id"])
            if key in self._displayed:
                self.duplicates_displayed += 1
            self._displayed.add(key)

    @property
    def open_now(self) -> int:
        return len(self._open)

    def rows(self) -> list[tuple[str, str]]:
        k = self.kinds
        return [
            ("sockets open now / peak", f"{self.open_now} / {self.peak_open}"),
            ("connection attempts (reconnects)", f"{k['attempt']} ({self.reconnects})"),
            ("opens / closes", f"{k['open']} / {k['close']}"),
            ("closes by code", _fmt(self.close_codes) or "-"),
            ("failed handshakes by HTTP status", _fmt(self.http_status) or "-"),
            ("token requests (failed)", f"{k['token']} ({self.failed_tokens})"),
            ("manual refreshes (give-ups)", f"{k['give_up']}" + (f" {_fmt(self.give_up_reasons)}" if k["give_up"] else "")),
            ("user messages sent", str(k["sent"])),
            ("messages received / displayed", f"{k['received']} / {k['displayed']}"),
            ("duplicates displayed / dropped", f"{self.duplicates_displayed} / {k['duplicate_dropped']}"),
        ]

    def table(self, title: str = "stormbench client") -> Table:
        table = Table(title=title, show_header=False)
        table.add_column("what", style="bold")
        table.add_column("count", justify="right")
        for what, count in self.rows():
            table.add_row(what, count)
        return table


def _fmt(counter: Counter) -> str:
    return " ".join(f"{key}:{n}" for key, n in sorted(counter.items(), key=lambda kv: str(kv[0])))
