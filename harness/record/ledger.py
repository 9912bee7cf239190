"""Delivery checking, Jepsen-style: what the server sent against what each client displayed.

Like Jepsen's set checker, a message is only judged when its outcome is knowable:
- **lost**: sent to a conversation whose client is still connected when observation
  of it ends (the run's end, or the harness stopping it), sent at least `in_flight_s`
  before that, and never displayed by that client. Messages to a client that is not
  connected at the end (gave up, mid-reconnect) or sent in the last `in_flight_s` are
  **indeterminate** and never counted as lost.
- **duplicates**: displays of a message the same client already displayed.
- **reordered**: first displays whose `seq` is lower than one the client already
  displayed in that conversation (Jepsen's non-monotonic poll).
- **unexpected**: displayed messages the server's log never sent.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd


@dataclass(frozen=True)
class LedgerSummary:
    sent: int
    displayed: int
    lost: int
    duplicates: int
    reordered: int
    indeterminate: int = 0
    unexpected: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def connected_at_end(connections: pd.DataFrame) -> dict[str, float]:
    """Clients whose observation ended with a connection open, and when it ended."""
    open_ = connections[(connections["censored"] == 1) & connections["http_status"].isna()]
    horizon = open_["opened_s"] + open_["duration_s"]
    return horizon.groupby(open_["client"].astype(str)).max().to_dict()


def check(ledger: pd.DataFrame, connections: pd.DataFrame, in_flight_s: float) -> LedgerSummary:
    ledger = ledger.assign(seq=pd.to_numeric(ledger["seq"], errors="coerce"),
                           t=pd.to_numeric(ledger["t"], errors="coerce"))
    sent = ledger[ledger["kind"] == "sent"]
    shown = ledger[ledger["kind"] == "displayed"].sort_values("t", kind="stable")
    shown_keys = shown[["client", "conversation", "msg_id"]].astype(str)
    first = ~shown_keys.duplicated()
    duplicates = int((~first).sum())

    firsts = shown[first.to_numpy()]
    running_max = firsts.groupby([firsts["client"].astype(str), firsts["conversation"].astype(str)])["seq"].cummax()
    previous_max = running_max.groupby([firsts["client"].astype(str), firsts["conversation"].astype(str)]).shift(1)
    reordered = int((firsts["seq"] < previous_max).sum())

    horizon = connected_at_end(connections)
    sent_client = sent["client"].astype(str)
    until = sent_client.map(horizon)
    decidable = until.notna() & sent["client"].notna() & (sent["t"] <= until - in_flight_s)
    displayed_by = set(zip(shown_keys["client"], shown_keys["conversation"], shown_keys["msg_id"]))
    sent_keys = list(zip(sent_client, sent["conversation"].astype(str), sent["msg_id"].astype(str)))
    was_shown = pd.Series([k in displayed_by for k in sent_keys], index=sent.index, dtype=bool)
    lost = int((decidable & ~was_shown).sum())
    indeterminate = int((~decidable & ~was_shown).sum())
    sent_ids = set(zip(sent["conversation"].astype(str), sent["msg_id"].astype(str)))
    unexpected = 0
    if sent_ids:
        unexpected = int(sum((c, m) not in sent_ids for c, m in
                             zip(firsts["conversation"].astype(str), firsts["msg_id"].astype(str))))
    return LedgerSummary(sent=len(sent), displayed=int(first.sum()), lost=lost, duplicates=duplicates,
                         reordered=reordered, indeterminate=indeterminate, unexpected=unexpected)
