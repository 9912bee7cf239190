"""ManagedProcess against real child processes: ready lines, failures, guaranteed teardown."""
from __future__ import annotations

import sys
import textwrap

import psutil
import pytest

from harness.emulate.procs import ManagedProcess, ProcessStartError


def child(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_ready_line_is_parsed_after_noise_and_child_is_stopped():
    p = ManagedProcess(child("""
        import json, signal, sys, time
        print("starting up", flush=True)
        print(json.dumps({"event": "ready", "port": 1234}), flush=True)
        for _ in range(600):
            print("chatter " * 100, flush=True)   # must not block on a full pipe
            time.sleep(0.01)
    """), name="t").start()
    assert p.ready == {"event": "ready", "port": 1234}
    assert p.alive()
    code = p.stop(grace=5)
    assert code == -15  # SIGTERM
    assert not psutil.pid_exists(p.pid) or psutil.Process(p.pid).status() == psutil.STATUS_ZOMBIE


def test_child_that_exits_early_reports_its_code(tmp_path):
    p = ManagedProcess(child("import sys; sys.stderr.write('boom'); sys.exit(3)"), name="bad",
                       log_path=tmp_path / "bad.log")
    with pytest.raises(ProcessStartError, match="exited with code 3"):
        p.start()
    assert (tmp_path / "bad.log").read_text() == "boom"


def test_silent_child_times_out_and_is_killed():
    p = ManagedProcess(child("import time; time.sleep(60)"), name="silent", ready_timeout=0.5)
    with pytest.raises(ProcessStartError, match="no ready line"):
        p.start()
    assert not p.alive()


def test_sigterm_ignoring_child_is_killed_after_grace():
    p = ManagedProcess(child("""
        import json, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(json.dumps({"event": "ready"}), flush=True)
        time.sleep(60)
    """), name="stubborn").start()
    assert p.stop(grace=0.3) == -9


def test_grandchildren_die_with_the_group():
    p = ManagedProcess(child("""
        import json, subprocess, sys, time
        g = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(json.dumps({"event": "ready", "grandchild": g.pid}), flush=True)
        time.sleep(60)
    """), name="parent").start()
    gpid = p.ready["grandchild"]
    assert psutil.pid_exists(gpid)
    p.kill()
    try:
        proc = psutil.Process(gpid)
        proc.wait(timeout=5)
    except psutil.NoSuchProcess:
        pass
    assert not psutil.pid_exists(gpid) or psutil.Process(gpid).status() == psutil.STATUS_ZOMBIE
