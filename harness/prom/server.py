"""A real `prometheus` server on loopback, scraping given targets: for tests and emulated runs.

Runs the binary on PATH (Debian package `prometheus`) with a throw-away TSDB, a short
scrape interval and the web API bound to 127.0.0.1 only. Always stopped by `stop()` /
the context manager; a start that does not become ready in time is killed, with the
tail of its log in the error.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests
import yaml

from harness.prom.api import PrometheusAPI, PrometheusUnavailable


@dataclass
class PrometheusConfig:
    targets: list[str]                    # metrics URLs, e.g. http://127.0.0.1:8080/metrics
    scrape_interval: float = 1.0          # seconds; Prometheus accepts down to 1ms, 1s is plenty here
    binary: str | None = None             # default: `prometheus` on PATH
    data_dir: Path | None = None          # default: a temporary directory, removed on stop; a given one is kept
    retention: str = "2d"                 # a kept TSDB is kept longer (KEPT_RETENTION): reopened later, 2d would drop it
    start_timeout: float = 30.0
    extra_labels: dict[str, str] = field(default_factory=dict)


def find_binary(name: str = "prometheus") -> str | None:
    return shutil.which(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape_config(config: PrometheusConfig) -> dict:
    """One scrape job per (scheme, path); targets as host:port."""
    jobs: dict[tuple[str, str], list[str]] = {}
    for target in config.targets:
        url = urlsplit(target if "://" in target else f"http://{target}")
        if not url.hostname or not url.port:
            raise ValueError(f"scrape target {target!r}: expected http://host:port/path")
        jobs.setdefault((url.scheme, url.path or "/metrics"), []).append(f"{url.hostname}:{url.port}")
    interval = f"{max(1, round(config.scrape_interval * 1000))}ms"
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {"job_name": f"stormbench-{i}", "scheme": scheme, "metrics_path": path,
             "static_configs": [{"targets": hosts, "labels": dict(config.extra_labels)}]}
            for i, ((scheme, path), hosts) in enumerate(sorted(jobs.items()))
        ],
    }


class PrometheusServer:
    def __init__(self, config: PrometheusConfig):
        self.config = config
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._log_path: Path | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("Prometheus is not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "PrometheusServer":
        binary = self.config.binary or find_binary()
        if binary is None:
            raise PrometheusUnavailable("the `prometheus` binary is not on PATH (Debian package `prometheus`)")
        if self.config.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="stormbench-prom-")
        root = Path(self.config.data_dir or self._tmp.name)
        root.mkdir(parents=True, exist_ok=True)
        config_path = root / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(scrape_config(self.config), sort_keys=False))
        self._log_path = root / "prometheus.log"
        self.port = free_port()
        with self._log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={config_path}", f"--storage.tsdb.path={root / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", f"--storage.tsdb.retention.time={self.config.retention}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.config.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        tail = self.log_tail()
        self.stop()
        raise PrometheusUnavailable(f"prometheus did not become ready within {self.config.start_timeout:g}s:\n{tail}")

    def wait_for_targets(self, timeout: float = 30.0) -> None:
        """Until every target has been scraped successfully at least once."""
        api = PrometheusAPI(self.url)
        deadline = time.monotonic() + timeout
        targets: list[dict] = []
        try:
            while time.monotonic() < deadline:
                targets = api.targets()
                if targets and all(t.get("health") == "up" for t in targets):
                    return
                time.sleep(0.1)
        finally:
            api.close()
        raise PrometheusUnavailable(f"targets not up within {timeout:g}s: "
                                    + ", ".join(f"{t.get('scrapeUrl')}={t.get('health')} {t.get('lastError', '')}"
                                                for t in targets))

    def log_tail(self, lines: int = 20) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "PrometheusServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
