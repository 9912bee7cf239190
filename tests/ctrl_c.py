"""A real Ctrl-C for tests: run `python -m commands.cli ARGS` in its own process group and send
SIGINT to the whole group, as a terminal does, once the run is under way."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable


def interrupt_cli(args: list[str], cwd: Path, under_way: Callable[[subprocess.Popen], None],
                  timeout: float = 60, sig: int = signal.SIGINT) -> tuple[int, str]:
    """`under_way(proc)` returns once the run is where the test wants it interrupted (it may read
    the process's stdout); returns the exit code and stderr. `sig`: SIGKILL for a run killed
    outright (nothing of it gets to clean up). The child gets a foreground SIGINT:
    a suite started in the background (`&`) passes SIGINT ignored to its children, and Python
    then never raises KeyboardInterrupt."""
    proc = subprocess.Popen([sys.executable, "-m", "commands.cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        under_way(proc)
        os.killpg(proc.pid, sig)
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, err


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, what: str, timeout: float = 150) -> None:
    """Poll `condition` (a file the run writes when it gets there: the event waited for) until it
    holds, failing if the run ends first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None and time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.05)


def table_rows(table: Path) -> int:
    """Finished runs in a sweep's `sweep.csv` so far (a torn last line is not one)."""
    if not table.exists():
        return 0
    return sum(1 for line in table.read_text().splitlines(keepends=True)[1:] if line.endswith("\n"))
