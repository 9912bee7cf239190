"""Subprocesses that announce readiness with one JSON line on stdout, and always go away.

`stormbench serve` and `stormbench proxy` both print a single JSON "ready" line
once their listeners are up (ports chosen by the OS with `--port 0`), so the
harness never guesses ports or sleeps: it reads that line under a deadline.
Teardown is guaranteed three ways: `stop()` (SIGTERM, then SIGKILL after a grace
period), the context manager, and an `atexit` hook for anything still running
when the interpreter exits. Each child gets its own process group so a kill
reaches its children too.
"""
from __future__ import annotations

import atexit
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

_LIVE: set["ManagedProcess"] = set()


class ProcessStartError(RuntimeError):
    """A child exited or stayed silent instead of printing its ready line."""


def stormbench_argv(*args: str) -> list[str]:
    """The `stormbench` CLI run with this interpreter, so a venv is never bypassed."""
    return [sys.executable, "-m", "commands.cli", *args]


@dataclass(eq=False)
class ManagedProcess:
    """One child process and the ready line it printed."""

    argv: Sequence[str]
    name: str = "child"
    ready_timeout: float = 20.0
    env: dict[str, str] | None = None
    log_path: Path | None = None
    ready: dict[str, Any] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    _log: Any = None

    def start(self) -> "ManagedProcess":
        """Spawn the child and block until it prints a JSON line with `"event": "ready"`
        (or any JSON object when the child has no event field)."""
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            list(self.argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._log if self._log is not None else subprocess.DEVNULL,
            env=env, start_new_session=True,
        )
        _LIVE.add(self)
        try:
            self.ready = self._read_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _read_ready(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + self.ready_timeout
        seen: list[str] = []
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            buf = b""
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ProcessStartError(
                        f"{self.name}: no ready line within {self.ready_timeout:.0f}s "
                        f"(argv: {' '.join(self.argv)}; stdout so far: {seen[-3:]})")
                if not sel.select(timeout=min(left, 0.5)):
                    if self.proc.poll() is not None:
                        raise ProcessStartError(
                            f"{self.name}: exited with code {self.proc.returncode} before it was ready "
                            f"(argv: {' '.join(self.argv)}; see {self.log_path or 'its stderr'})")
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    self.proc.wait(timeout=5)
                    raise ProcessStartError(
                        f"{self.name}: exited with code {self.proc.returncode} before it was ready "
                        f"(argv: {' '.join(self.argv)}; see {self.log_path or 'its stderr'})")
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    text = line.decode("utf-8", "replace").strip()
                    seen.append(text)
                    try:
                        obj = json.loads(text)
                    except ValueError:
                        continue
                    if isinstance(obj, dict) and obj.get("event", "ready") == "ready":
                        self._drain_stdout_in_background()
                        return obj

    def _drain_stdout_in_background(self) -> None:
        """Keep reading stdout so a chatty child never blocks on a full pipe."""
        import threading

        assert self.proc is not None and self.proc.stdout is not None
        out = self.proc.stdout

        def drain() -> None:
            try:
                while out.read(65536):
                    pass
            except (OSError, ValueError):
                pass

        threading.Thread(target=drain, name=f"{self.name}-stdout", daemon=True).start()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.proc is not None
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM (graceful: a server closes sockets with 1012), SIGKILL if still alive after `grace`."""
        if self.proc is None:
            return None
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(timeout=5)
        return self._reap()

    def kill(self) -> int | None:
        """SIGKILL at once: a crash, as far as the clients can tell."""
        if self.proc is None:
            return None
        if self.alive():
            self.signal(signal.SIGKILL)
            self.proc.wait(timeout=5)
        return self._reap()

    def _reap(self) -> int | None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.wait(timeout=5)
        # a killed group leader can leave children: make sure the group is gone
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.stdout is not None:
            try:
                self.proc.stdout.close()
            except OSError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None
        _LIVE.discard(self)
        return self.proc.returncode

    def __enter__(self) -> "ManagedProcess":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@atexit.register
def _kill_leftovers() -> None:
    for p in list(_LIVE):
        try:
            p.kill()
        except Exception:
            pass
