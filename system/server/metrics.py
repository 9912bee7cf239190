"""Every metric the server exports, declared once.

`METRICS` is read by the dashboard and alert-rule generators, so names, types, labels and
help live here and nowhere else; `ServerMetrics` builds them in a per-server registry (tests
run several servers in one process). `PROCESS_METRICS` are prometheus_client's process
collector's (resident memory, CPU, open descriptors): the memory gate reads them through
Prometheus. Counters whose label values are known in advance start at 0 with those labels, so
a rate or an `increase` has a series before the first event (a first error is a step from 0,
not a series appearing out of nothing, which `rate` and `absent` alerts would miss).
"""
from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400)
AGENT_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
RESULT_BUCKETS = (0, 1, 2, 5, 10, 20, 50)


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as exposed (counters end in _total)
    type: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] | None = None
    known: tuple[str, ...] = ()  # values of the only label, each exported at 0 from the start


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("ws_connections_active", "gauge", (), "WebSocket sessions open now (after auth)"),
    MetricSpec("ws_connections_opened_total", "counter", (), "WebSocket sessions opened (welcome sent)"),
    MetricSpec("ws_closes_total", "counter", ("code",),
               "WebSocket connections closed after the handshake, by close code (1006: no close frame)",
               known=("1000", "1001", "1006", "1011", "1012", "1013", "4401", "4403")),
    MetricSpec("ws_connection_duration_seconds", "histogram", (),
               "Lifetime of WebSocket sessions, from welcome to close", DURATION_BUCKETS),
    MetricSpec("ws_handshake_rejections_total", "counter", ("status",),
               "WebSocket handshakes answered with an HTTP error, by status", known=("403",)),
    MetricSpec("ws_messages_total", "counter", ("direction", "type"),
               "WebSocket frames, by direction (in/out) and frame type"),
    MetricSpec("auth_tokens_issued_total", "counter", (), "Access tokens issued by /auth/token and /auth/refresh"),
    MetricSpec("auth_refresh_total", "counter", ("result",),
               "Refresh attempts by result (ok, invalid, reused, expired, outage)",
               known=("ok", "invalid", "reused", "expired", "outage")),
    MetricSpec("agent_requests_total", "counter", ("agent", "tenure", "outcome"),
               "Agent requests by answering agent, tenure and outcome (ok/error)"),
    MetricSpec("agent_execution_seconds", "histogram", ("agent",),
               "Time the agent took to answer one user message", AGENT_SECONDS_BUCKETS),
    MetricSpec("agent_results_returned", "histogram", ("agent",),
               "Results (e.g. listings) returned per agent request", RESULT_BUCKETS),
    MetricSpec("agent_errors_total", "counter", ("agent",), "Agent requests that raised"),
)
AGENT_LABELLED = ("agent_errors_total",)  # known at start: the label is the server's one agent backend
PROCESS_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("process_resident_memory_bytes", "gauge", (), "Resident memory of the server process"),
    MetricSpec("process_cpu_seconds_total", "counter", (), "CPU time (user + system) of the server process"),
    MetricSpec("process_open_fds", "gauge", (), "File descriptors the server process holds open"),
)
EXPORTED: tuple[MetricSpec, ...] = METRICS + PROCESS_METRICS  # every name a scrape of the server holds

_KINDS = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}


class ServerMetrics:
    """The metrics of one server, by exposed name: `metrics["ws_closes_total"].labels(code="4401").inc()`."""

    def __init__(self, agent: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self._by_name = {}
        for spec in METRICS:
            kwargs = {"registry": self.registry, "labelnames": spec.labels}
            if spec.buckets is not None:
                kwargs["buckets"] = spec.buckets
            name = spec.name.removesuffix("_total") if spec.type == "counter" else spec.name
            metric = self._by_name[spec.name] = _KINDS[spec.type](name, spec.help, **kwargs)
            known = (agent,) if spec.name in AGENT_LABELLED and agent else spec.known
            for value in known:
                metric.labels(value)

    def __getitem__(self, name: str):
        return self._by_name[name]

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
