"""The emulation on the virtual clock: the real server, proxy and clients on one loop on scenario time.

A small scenario with every kind of fault runs twice through the real CLI, each in its own
process, the second while two busy loops hold both cores: the run-record tables must be
byte-identical (events.jsonl and the delivery log too: each server generation draws its message
ids from the run's seed) and so must the verdicts.
"""
from __future__ import annotations

import asyncio
import socket
import json
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from harness.emulate.vclock import VirtualClockLoop

DOC = {
    "name": "virtual-test", "seed": 5, "duration": "40m", "clock": "virtual",
    "system": {"behaviour": "fixed", "token_ttl": "5m", "heartbeat": {"interval": "30s", "timeout": "20s"},
               "live_expiry": True, "restart_downtime": "3s"},
    "fleet": {"clients": 12, "profile": "fixed", "arrival": {"ramp": "1m"}, "messages": {"every": "4m"},
              "network": {"drops": {"every": "20m"}, "offline": {"every": "30m", "for": "20s"}}},
    "faults": [
        {"at": "8m", "kind": "server_restart", "mode": "graceful"},
        {"at": "14m", "for": "3m", "kind": "latency", "latency": "800ms", "jitter": "200ms"},
        {"at": "20m", "kind": "server_restart", "mode": "crash"},
        {"at": "24m", "for": "2m", "kind": "auth_outage"},
        {"at": "28m", "kind": "token_expiry"},
        {"at": "32m", "for": "2m", "kind": "partition", "fraction": 0.5},
    ],
    "gates": [
        {"name": "recovers after restart", "metric": "active_connections", "stat": "min_fraction",
         "phase": {"after": "server_restart", "within": "60s"}, "op": ">=", "value": 0.99},
        {"name": "nothing lost", "metric": "lost_messages", "stat": "count", "op": "==", "value": 0},
        {"name": "no forced refresh", "metric": "manual_refreshes", "stat": "count", "op": "==", "value": 0},
    ],
}
TABLES = ("connections.csv", "timeseries.csv", "sent.csv", "received.csv", "events.jsonl")
# two emulations of ~3 s of CPU each, one while both cores are taken: on a shared machine their
# wall time is mostly waiting for a core
pytestmark = pytest.mark.timeout(900)


def stormbench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "commands.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@contextmanager
def busy_cores(n: int = 2) -> Iterator[None]:
    """`n` processes spinning on a core each, stopped afterwards."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def run_virtual(tmp: Path, name: str) -> Path:
    out = tmp / name
    result = stormbench("run", str(tmp / "scenario.yaml"), "--out", str(out))
    assert result.returncode in (0, 1), result.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("virtual")
    (tmp / "scenario.yaml").write_text(yaml.safe_dump(DOC))
    quiet = run_virtual(tmp, "quiet")
    with busy_cores(2):
        busy = run_virtual(tmp, "busy")
    return quiet, busy


def test_same_seed_gives_identical_tables_and_verdicts_with_busy_cores(runs):
    quiet, busy = runs
    for table in TABLES:
        assert (quiet / table).read_bytes() == (busy / table).read_bytes(), table
    assert len((quiet / "sent.csv").read_text().splitlines()) > 20  # the clients chatted and the agent answered
    verdicts = [json.loads((r / "gates.json").read_text()) for r in runs]
    assert [(v["name"], v["verdict"], v["observed"]) for v in verdicts[0]] == \
           [(v["name"], v["verdict"], v["observed"]) for v in verdicts[1]]


def test_the_record_names_the_clock_and_heartbeats_run_at_their_true_interval(runs):
    quiet, _ = runs
    meta = json.loads((quiet / "meta.json").read_text())
    assert meta["clock"]["kind"] == "virtual" and meta["clock"]["capacity_measured"] is False
    assert meta["topology"]["server_restarts"] == 2
    summary = json.loads((quiet / "summary.json").read_text())
    assert 110 <= summary["pings_per_connection_hour"] <= 121  # one ping per 30 s of each connection
    kinds = {json.loads(line)["kind"] for line in (quiet / "events.jsonl").read_text().splitlines()}
    assert {"fault_start", "fault_stop"} <= kinds


def test_a_restart_keeps_the_server_down_for_its_downtime(runs):
    quiet, _ = runs
    starts = [json.loads(line) for line in (quiet / "events.jsonl").read_text().splitlines()
              if '"fault_start"' in line and '"server_restart"' in line]
    assert [round(e["applied_in_s"]) for e in starts] == [3, 3]


def test_virtual_clock_refuses_outside_processes_before_anything_runs(tmp_path, capsys):
    from commands.cli import main

    (tmp_path / "scenario.yaml").write_text(yaml.safe_dump(DOC))
    for command, flags, named in (("run", ["--target", "http://127.0.0.1:9"], "--target"),
                                  ("run", ["--toxiproxy-url", "http://127.0.0.1:9"], "--toxiproxy-url"),
                                  ("run", ["--prometheus"], "--prometheus"),
                                  ("main-job", ["--prometheus"], "--prometheus")):
        where = ["--scenario"] if command == "main-job" else []
        code = main([command, *where, str(tmp_path / "scenario.yaml"), "--out", str(tmp_path / "out"), *flags])
        err = capsys.readouterr().err
        assert code == 2, err
        assert named in err and "virtual clock" in err
        assert not (tmp_path / "out").exists()


def test_the_loop_clock_jumps_over_idle_time_and_keeps_order():
    loop = VirtualClockLoop()
    fired: list[tuple[str, float]] = []

    async def main() -> float:
        start = loop.time()
        loop.call_later(3600.0, lambda: fired.append(("late", loop.time() - start)))
        loop.call_later(30.0, lambda: fired.append(("early", loop.time() - start)))
        await asyncio.sleep(7200.0)
        return loop.time() - start

    wall = time.monotonic()
    try:
        elapsed = loop.run_until_complete(main())
    finally:
        loop.close()
    assert elapsed == pytest.approx(7200.0)
    assert fired == [("early", pytest.approx(30.0)), ("late", pytest.approx(3600.0))]
    assert time.monotonic() - wall < 5.0  # two hours of loop time, not of the wall's


def test_a_connect_the_kernel_retries_takes_no_scenario_time():
    """A herd connecting at one instant overflows a listener's accept queue: the kernel drops the
    handshakes beyond it and retries them a real second later. The loop waits for them in real
    time, so the clients' open timeouts (here 10 s) do not fire in scenario time meanwhile."""
    loop = VirtualClockLoop()
    herd = 64

    async def main() -> tuple[int, float]:
        accepted: list[asyncio.StreamWriter] = []
        server = await asyncio.start_server(lambda r, w: accepted.append(w), "127.0.0.1", 0, backlog=1)
        port = server.sockets[0].getsockname()[1]
        start = loop.time()
        results = await asyncio.gather(*(asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10.0)
                                         for _ in range(herd)), return_exceptions=True)
        took = loop.time() - start
        for r in results:
            if not isinstance(r, BaseException):
                r[1].close()
        for w in accepted:
            w.close()
        server.close()
        return sum(not isinstance(r, BaseException) for r in results), took

    try:
        connected, took = loop.run_until_complete(main())
    finally:
        loop.close()
    assert connected == herd
    assert took < 1.0  # scenario seconds: the kernel's retries took real time only


def test_sockets_ready_at_once_are_read_in_descriptor_order():
    """The kernel reports ready sockets in the order their data arrived, which a busy machine can
    change (a message fanned out to both of a legacy client's sockets): the loop reads them in
    descriptor order instead, so every run reads them alike."""
    loop = VirtualClockLoop()
    pairs = [socket.socketpair() for _ in range(3)]
    fds = sorted(r.fileno() for r, _ in pairs)
    order: list[int] = []
    try:
        for reader, _ in pairs:
            reader.setblocking(False)
            loop.add_reader(reader.fileno(), lambda r=reader: (order.append(r.fileno()), r.recv(16)))
        for _, writer in reversed(pairs):  # data arrives on the highest descriptor first
            writer.send(b"x")
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
        for a, b in pairs:
            a.close()
            b.close()
    assert order == fds
