"""Hand-written run records for tests: events built by small generators, not by an engine."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from formats.record import RecordWriter


def scenario_doc(duration: float = 100.0, clients: int = 2, faults: list | None = None, gates: list | None = None,
                 time_scale: float = 1.0, ramp: float = 0.0) -> dict:
    return {"name": "synthetic", "seed": 1, "duration": duration, "time_scale": time_scale,
            "fleet": {"clients": clients, "arrival": {"ramp": ramp}},
            "faults": faults or [], "gates": gates or []}


def write_record(out: Path, events: Iterable[dict], sent: Iterable[tuple] = (), *, duration: float = 100.0,
                 clients: int = 2, faults: list | None = None, gates: list | None = None,
                 time_scale: float = 1.0, scrapes: Iterable[tuple[float, list]] = (), ramp: float = 0.0) -> Path:
    with RecordWriter(out) as w:
        w.scenario(scenario_doc(duration, clients, faults, gates, time_scale, ramp))
        w.meta({"engine": "emulate", "seed": 1, "time_scale": time_scale})
        w.events(events)
        for row in sent:
            w.sent(*row)
        w.faults([{"at": f["at"], "for": f.get("for"), "kind": f["kind"], "params": {}, "targets": None}
                  for f in faults or []])
        for t, samples in scrapes:
            w.scrape(t, samples)
    return out


def session(client: str, conversation: str, spans: list[tuple], *, first_sock: int = 1) -> list[dict]:
    """One client's records: a `start`, then per span `(attempt_t, open_t, close_t|None, code|None)`;
    open_t None with a status code as `close_t` makes a failed handshake."""
    out = [{"t": 0.0, "client": client, "kind": "start", "conversation": conversation}]
    for i, (attempt, opened, closed, code) in enumerate(spans):
        sock = f"s{first_sock + i}"
        out.append({"t": attempt, "client": client, "kind": "attempt", "sock": sock, "n": i})
        if opened is None:
            out.append({"t": attempt, "client": client, "kind": "handshake_failed", "sock": sock, "status": closed})
            continue
        out.append({"t": opened, "client": client, "kind": "open", "sock": sock})
        if closed is not None:
            out.append({"t": closed, "client": client, "kind": "close", "sock": sock, "code": code, "by": "server"})
    return out


def displayed(client: str, conversation: str, msg_id: str, seq: int, t: float) -> dict:
    return {"t": t, "client": client, "kind": "displayed", "msg_id": msg_id, "seq": seq, "conversation": conversation}
