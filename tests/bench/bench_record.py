"""finalize() and gate evaluation on a large synthetic run record, against parsing the events alone.

Baseline: reading events.jsonl with json.loads line by line (the least any deriver must do).
The ratio says how much the derivation, the Kaplan–Meier estimate, the ledger check and the
summary cost on top of that; the gate line says what judging the staging gates adds.
"""
from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from pathlib import Path

from formats.gates import evaluate, load_gates
from formats.record import RecordWriter, RunRecord, finalize

CLIENTS = 2000
DURATION = 86400.0


def synthesize(out: Path, seed: int = 1) -> int:
    """A day of a 2000-client fleet: drops every ~2 h, a message every ~20 min per client."""
    rng = random.Random(seed)
    events = []
    sent = []
    for i in range(CLIENTS):
        client, conv = f"c{i:05d}", f"k{i}"
        events.append({"t": 0.0, "client": client, "kind": "start", "conversation": conv})
        t, sock, seq = rng.uniform(0, 300), 0, 0
        while t < DURATION:
            sock += 1
            events.append({"t": t, "client": client, "kind": "attempt", "sock": sock, "n": 0})
            events.append({"t": t + 0.05, "client": client, "kind": "open", "sock": sock})
            life = rng.expovariate(1 / 7200)
            end = t + life
            m = t + rng.expovariate(1 / 1200)
            while m < min(end, DURATION):
                seq += 1
                sent.append((conv, f"{conv}-{seq}", seq, m))
                events.append({"t": m + 0.01, "client": client, "kind": "displayed", "msg_id": f"{conv}-{seq}",
                               "seq": seq, "conversation": conv})
                m += rng.expovariate(1 / 1200)
            if end < DURATION:
                events.append({"t": end, "client": client, "kind": "close", "sock": sock, "code": None,
                               "by": "network"})
            t = end + rng.uniform(0.5, 3.0)
    events.sort(key=lambda r: r["t"])
    with RecordWriter(out) as w:
        w.scenario({"name": "bench", "seed": seed, "duration": DURATION, "time_scale": 720,
                    "fleet": {"clients": CLIENTS}, "faults": [], "gates": []})
        w.meta({"engine": "emulate"})
        w.events(events)
        for row in sent:
            w.sent(*row)
    return len(events)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench_record_"))
    try:
        n = synthesize(tmp / "run")
        started = time.perf_counter()
        with (tmp / "run" / "events.jsonl").open() as f:
            parsed = [json.loads(line) for line in f]
        baseline = time.perf_counter() - started
        started = time.perf_counter()
        summary = finalize(tmp / "run")
        derive_s = time.perf_counter() - started
        gates = load_gates("scenarios/gates/staging.yaml")
        started = time.perf_counter()
        evaluate(gates, RunRecord(tmp / "run"))
        gates_s = time.perf_counter() - started
        assert len(parsed) == n
        print(f"events: {n:,}  connections: {summary['connections']:,}  messages: {summary['messages_sent']:,}")
        print(f"parse only (baseline): {baseline:.2f}s  ({n / baseline:,.0f} events/s)")
        print(f"finalize:              {derive_s:.2f}s  ({n / derive_s:,.0f} events/s)  "
              f"ratio {derive_s / baseline:.2f}x baseline")
        print(f"staging gates:         {gates_s:.2f}s  ratio {gates_s / baseline:.2f}x baseline")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
