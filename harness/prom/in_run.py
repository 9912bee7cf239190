"""A Prometheus beside an emulated run: it scrapes the system under test while the run
lasts, then judges the run's gates over the run's wall-clock window and writes the
verdicts into the run record (`prometheus_gates.json`, same shape as `gates.json`), so
one run shows what the run record and a staging Prometheus would each have said.

The window ends at the first successful scrape after the scenario's end (`mark_end`),
taken while the system still runs: judged later (after the emulation has stopped the
server), instant queries at that time still see the final values, which a query at
"now" would not (the target's series are stale by then).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

from formats.gates.spec import Gate
from formats.gates.verdict import Verdict, write_gates_json
from formats.record.files import PROMETHEUS_GATES
from harness.prom.api import PrometheusAPI, PrometheusUnavailable
from harness.prom.evaluate import evaluate
from harness.prom.server import PrometheusConfig, PrometheusServer

REPLAY_CONFIG = "replay.yml"
KEPT_RETENTION = "10y"  # a kept TSDB reopened months later must still hold the run


class RunPrometheus:
    """`with RunPrometheus([metrics_url]) as prom: ...run...; prom.mark_end(end); prom.judge(gates, run_dir, start)`."""

    def __init__(self, metrics_urls: list[str], scrape_interval: float = 1.0, keep_dir: Path | None = None):
        self.scrape_interval = scrape_interval
        config = PrometheusConfig(list(metrics_urls), scrape_interval=scrape_interval, data_dir=keep_dir)
        if keep_dir is not None:
            config.retention = KEPT_RETENTION
        self.server = PrometheusServer(config)
        self.end_at: float | None = None

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

    def mark_end(self, after_unix: float, timeout: float | None = None) -> float:
        """Wait until every target has been scraped successfully after `after_unix` (the scenario's
        end), and keep that scrape's time as the window's end; returns it."""
        self.end_at = self.wait_scraped(after_unix, timeout)
        return self.end_at

    def wait_scraped(self, after_unix: float, timeout: float | None = None) -> float:
        """The time of the oldest target's latest successful scrape, once it is after `after_unix`."""
        timeout = timeout if timeout is not None else 10 * self.scrape_interval + 5
        api = PrometheusAPI(self.url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                now = time.time()
                up = api.query("min(up)", now)
                scraped = api.query("min(timestamp(up))", now)
                if up and scraped and up[0].value == 1 and scraped[0].value > after_unix:
                    return scraped[0].value
                time.sleep(min(0.1, self.scrape_interval))
        finally:
            api.close()
        raise PrometheusUnavailable(f"no successful scrape after the run's end within {timeout:g}s:\n"
                                    f"{self.server.log_tail()}")

    def judge(self, gates: list[Gate], run_dir: str | Path, start_unix: float, end_unix: float | None = None,
              time_scale: float = 1.0) -> list[Verdict]:
        """Judge over [start_unix, the end marked by `mark_end`] (marked now from `end_unix` when it was not)."""
        if self.end_at is None:
            if end_unix is None:
                raise ValueError("judge: give end_unix, or call mark_end first")
            self.mark_end(end_unix)
        at = self.end_at
        verdicts = evaluate(gates, self.url, window=at - start_unix, end=at, time_scale=time_scale)
        write_gates_json(verdicts, Path(run_dir) / PROMETHEUS_GATES)
        return verdicts


class RunWatch:
    """`stormbench run --prometheus`: the emulation's hooks. A `RunPrometheus` starts on the
    server's `/metrics` once the server is up, the window's end is marked while the system still
    runs, and the gates are judged after the run record is finalized. A Prometheus problem at the
    end is a warning (the run record's own verdicts stand), never a lost run."""

    def __init__(self, scrape_interval: float = 1.0, keep_dir: Path | None = None):
        self.scrape_interval = scrape_interval
        self.keep_dir = keep_dir
        self.prom: RunPrometheus | None = None
        self.origin_unix: float | None = None
        self.end_unix: float | None = None
        self.window_end_unix: float | None = None
        self.warnings: list[str] = []

    def hooks(self) -> dict:
        """The keyword arguments `harness.emulate.engine.emulate` takes to call this watch."""
        return {"on_system_ready": self.on_system_ready, "on_scenario_end": self.on_scenario_end}

    def on_system_ready(self, endpoints) -> None:
        self.close()  # never two: a hook called again replaces the first
        prom = RunPrometheus([endpoints.http_url.rstrip("/") + "/metrics"], self.scrape_interval, self.keep_dir)
        self.prom = prom.__enter__()

    def on_scenario_end(self, origin_unix: float, end_unix: float) -> None:
        self.origin_unix, self.end_unix = origin_unix, end_unix
        if self.prom is None:
            return
        try:
            self.window_end_unix = self.prom.mark_end(end_unix)
        except PrometheusUnavailable as exc:  # e.g. the server was down at the end: judge up to the end itself
            self.warnings.append(f"prometheus: {exc}".splitlines()[0] + "; judging up to the scenario's end")
            self.window_end_unix = self.prom.end_at = end_unix

    def judge(self, gates: list[Gate], run_dir: str | Path, time_scale: float) -> list[Verdict] | None:
        if self.prom is None or self.origin_unix is None or self.window_end_unix is None:
            self.warnings.append("prometheus: the run ended before Prometheus watched it; no Prometheus verdicts")
            return None
        try:
            return self.prom.judge(gates, run_dir, self.origin_unix, time_scale=time_scale)
        except PrometheusUnavailable as exc:
            self.warnings.append(f"prometheus: {exc}")
            return None

    def facts(self) -> dict:
        """What meta.json says about the Prometheus window (and where its TSDB was kept)."""
        facts = {"scrape_interval_s": self.scrape_interval, "window_start_unix": self.origin_unix,
                 "window_end_unix": self.window_end_unix, "verdicts": PROMETHEUS_GATES,
                 "warnings": list(self.warnings)}
        if self.keep_dir is not None:
            facts["kept_tsdb"] = str(self.keep_dir / "tsdb")
        return facts

    def replay_instructions(self, gates_file: str, time_scale: float) -> list[str]:
        """How to start a Prometheus on the kept TSDB and judge the run through it again: a config
        without targets (the run's server is gone), and the window of this run."""
        if self.keep_dir is None or self.origin_unix is None or self.window_end_unix is None:
            return []
        config = self.keep_dir / REPLAY_CONFIG
        config.write_text("# a Prometheus serving the kept TSDB of a stormbench run; it scrapes nothing\n"
                          "global: {}\nscrape_configs: []\n")
        window = max(1, math.ceil(self.window_end_unix - self.origin_unix))
        scale = f" --time-scale {time_scale:g}" if time_scale != 1 else ""
        return [f"prometheus --config.file={config} --storage.tsdb.path={self.keep_dir / 'tsdb'} "
                f"--storage.tsdb.retention.time={KEPT_RETENTION} --web.listen-address=127.0.0.1:9090",
                f"stormbench gates --prometheus http://127.0.0.1:9090 --gates {gates_file} "
                f"--end {self.window_end_unix:.3f} --window {window}s{scale}"]

    def close(self) -> None:
        if self.prom is not None:
            self.prom.__exit__(None, None, None)
            self.prom = None

    def __enter__(self) -> "RunWatch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
