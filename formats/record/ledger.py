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

The other direction (`check_user_messages`): what each client typed (its `sent` records) against
the server's log of user messages received (`received.csv`):
- **lost**: typed by a client still connected when observation ends, at least `in_flight_s`
  before that, and never received by the server (else **indeterminate**, as above);
- **duplicated**: answers beyond the first to one message id (a resend the server did not drop).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

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

    @property
    def judged(self) -> int:
        """Sent messages whose fate is known (displayed, or lost); 0 when nothing could be judged."""
        return self.sent - self.indeterminate

    def to_dict(self) -> dict:
        return asdict(self)


def connected_at_end(connections: pd.DataFrame) -> dict[str, float]:
    """Clients whose observation ended with a connection open, and when it ended: all that the
    checks need of connections.csv (`formats.record.passes.connected_at_end` reads it of a
    record's table a chunk at a time)."""
    open_ = connections[(connections["censored"] == 1) & connections["http_status"].isna()]
    # numeric whatever pandas inferred (a header-only table reads as text)
    horizon = pd.to_numeric(open_["opened_s"], errors="coerce") + pd.to_numeric(open_["duration_s"], errors="coerce")
    return horizon.groupby(open_["client"].astype(str)).max().to_dict()


def _key(*columns: pd.Series) -> pd.Series:
    out = columns[0].astype(str)
    for col in columns[1:]:
        out = out + "\x1f" + col.astype(str)
    return out


def check(ledger: pd.DataFrame, until: dict[str, float], in_flight_s: float) -> LedgerSummary:
    """`until`: `connected_at_end` of the run's connections."""
    ledger = ledger.assign(seq=pd.to_numeric(ledger["seq"], errors="coerce"),
                           t=pd.to_numeric(ledger["t"], errors="coerce"))
    sent = ledger[ledger["kind"] == "sent"]
    shown = ledger[ledger["kind"] == "displayed"].sort_values("t", kind="stable")
    shown_key = _key(shown["client"], shown["conversation"], shown["msg_id"])
    first = ~shown_key.duplicated()
    duplicates = int((~first).sum())

    firsts = shown[first.to_numpy()]
    thread = _key(firsts["client"], firsts["conversation"])
    previous_max = firsts["seq"].groupby(thread).cummax().groupby(thread).shift(1)
    reordered = int((firsts["seq"] < previous_max).sum())

    ends = sent["client"].astype(str).map(until)
    decidable = ends.notna() & sent["client"].notna() & (sent["t"] <= ends - in_flight_s)
    was_shown = _key(sent["client"], sent["conversation"], sent["msg_id"]).isin(shown_key[first])
    lost = int((decidable & ~was_shown).sum())
    indeterminate = int((~decidable & ~was_shown).sum())
    unexpected = 0
    if len(sent):
        sent_ids = _key(sent["conversation"], sent["msg_id"])
        unexpected = int((~_key(firsts["conversation"], firsts["msg_id"]).isin(sent_ids)).sum())
    return LedgerSummary(sent=len(sent), displayed=int(first.sum()), lost=lost, duplicates=duplicates,
                         reordered=reordered, indeterminate=indeterminate, unexpected=unexpected)


@dataclass(frozen=True)
class UserLedgerSummary:
    sent: int
    lost: int
    duplicated: int
    indeterminate: int = 0

    @property
    def judged(self) -> int:
        return self.sent - self.indeterminate

    def to_dict(self) -> dict:
        return asdict(self)


def check_user_messages(typed: pd.DataFrame, received: pd.DataFrame, until: dict[str, float],
                        in_flight_s: float) -> UserLedgerSummary:
    """`typed`: columns client, msg_id, t (each client's first `sent` of an id); `received`: the
    server's log (conversation, msg_id, t, answered); `until`: `connected_at_end` of the run's
    connections."""
    typed = typed.assign(t=pd.to_numeric(typed["t"], errors="coerce"))
    got = received["msg_id"].astype(str)
    arrived = typed["msg_id"].astype(str).isin(got)
    ends = typed["client"].astype(str).map(until)
    decidable = ends.notna() & (typed["t"] <= ends - in_flight_s)
    answers = pd.to_numeric(received["answered"], errors="coerce").fillna(0).groupby(got).sum()
    return UserLedgerSummary(sent=len(typed), lost=int((decidable & ~arrived).sum()),
                             duplicated=int((answers - 1).clip(lower=0).sum()),
                             indeterminate=int((~decidable & ~arrived).sum()))


def typed_messages(events: Iterable[dict]) -> pd.DataFrame:
    """Each client's user messages, by their first `sent` record (a `resent` is the same message)."""
    rows = [(r["client"], r["msg_id"], r["t"]) for r in events if r.get("kind") == "sent"]
    return pd.DataFrame(rows, columns=["client", "msg_id", "t"]).drop_duplicates(["client", "msg_id"])


def read_received(path: Path) -> pd.DataFrame | None:
    """`received.csv`, or None when the run record has none (an older record, or a sampled model)."""
    if not path.exists():
        return None
    return pd.read_csv(path, dtype={"conversation": str, "msg_id": str})
