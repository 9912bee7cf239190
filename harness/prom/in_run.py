"""A Prometheus beside an emulated run: it scrapes the system under test while the run
lasts, then judges the run's gates over the run's wall-clock window and writes the
verdicts into the run record (`prometheus_gates.json`, same shape as `gates.json`), so
one run shows what the run record and a staging Prometheus would each have said.
"""
from __future__ import annotations

import time
from pathlib import Path

from harness.gates.spec import Gate
from harness.gates.verdict import Verdict, write_gates_json
from harness.prom.api import PrometheusAPI, PrometheusUnavailable
from harness.prom.evaluate import evaluate
from harness.prom.server import PrometheusConfig, PrometheusServer

PROMETHEUS_GATES = "prometheus_gates.json"


class RunPrometheus:
    """`with RunPrometheus([metrics_url]) as prom: ...run...; prom.judge(gates, run_dir, start, end)`."""

    def __init__(self, metrics_urls: list[str], scrape_interval: float = 1.0):
        self.scrape_interval = scrape_interval
        self.server = PrometheusServer(PrometheusConfig(list(metrics_urls), scrape_interval=scrape_interval))

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> "RunPrometheus":
        self.server.start()
        try:
            self.server.wait_for_targets()
        except BaseException:
            self.server.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()

    def wait_scraped(self, after_unix: float, timeout: float | None = None) -> None:
        """Until every target has been scraped after `after_unix`, so the window's end holds the final counts."""
        timeout = timeout if timeout is not None else 10 * self.scrape_interval + 5
        api = PrometheusAPI(self.url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                samples = api.query("min(timestamp(up))", time.time())
                if samples and samples[0].value > after_unix:
                    return
                time.sleep(min(0.1, self.scrape_interval))
        finally:
            api.close()
        raise PrometheusUnavailable(f"no scrape after the run's end within {timeout:g}s:\n{self.server.log_tail()}")

    def judge(self, gates: list[Gate], run_dir: str | Path, start_unix: float, end_unix: float,
              time_scale: float = 1.0) -> list[Verdict]:
        self.wait_scraped(end_unix)
        at = time.time()  # just after that scrape: the window's end holds the final counts
        verdicts = evaluate(gates, self.url, window=at - start_unix, end=at, time_scale=time_scale)
        write_gates_json(verdicts, Path(run_dir) / PROMETHEUS_GATES)
        return verdicts
