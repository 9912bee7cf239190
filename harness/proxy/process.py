"""Start and stop `stormbench proxy` as a subprocess on free ports.

The harness and the tests use the real process rather than an in-process
server, so what they exercise is what a user runs; the ready line printed on
stdout carries the API's URL, so no port has to be guessed.
"""
from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

READY_TIMEOUT = 20.0


@dataclass
class ProxyProcess:
    api_url: str
    process: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        return urlsplit(self.api_url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.api_url).port or 8474

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def __enter__(self) -> "ProxyProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_proxy(
    seed: int | None = None,
    config: Path | str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    stderr: int | IO[Any] | None = None,
    timeout: float = READY_TIMEOUT,
    max_connections_per_proxy: int | None = None,
) -> ProxyProcess:
    cmd = [sys.executable, "-m", "harness.proxy", "--host", host, "--port", str(port)]
    if max_connections_per_proxy is not None:
        cmd += ["--max-connections-per-proxy", str(max_connections_per_proxy)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if config is not None:
        cmd += ["--config", str(config)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr)
    try:
        line = _read_line(proc, timeout)
        ready = json.loads(line)
        if ready.get("event") != "ready":
            raise RuntimeError(f"stormbench proxy: unexpected first line {line!r}")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return ProxyProcess(ready["api_url"], proc)


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"stormbench proxy: no ready line within {timeout:.0f} s")
            if sel.select(left):
                data = os.read(fd, 4096)
                if not data:
                    raise RuntimeError(f"stormbench proxy exited with code {proc.wait()} before it was ready")
                buf += data
    return buf.split(b"\n", 1)[0].decode()
