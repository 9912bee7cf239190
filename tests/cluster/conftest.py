"""A real Dask cluster for the tests: `dask scheduler` and two `dask worker`s as subprocesses on
127.0.0.1, as a user starts them (README "Running on a cluster")."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

DASK = str(Path(sys.executable).parent / "dask")
START_TIMEOUT_S = 90.0


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([DASK, *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory) -> str:
    """The scheduler's address, once both workers have joined it."""
    from distributed import Client

    where = tmp_path_factory.mktemp("dask")
    info = where / "scheduler.json"
    procs = [_start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(info)], where / "scheduler.log")]
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not info.exists():  # the scheduler writes it once it listens
            assert procs[0].poll() is None, (where / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        for name in ("w1", "w2"):
            procs.append(_start(["worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard",
                                 "--name", name], where / f"{name}.log"))
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)
