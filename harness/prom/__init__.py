"""Gates against a live Prometheus, the same gates as alert rules, a dashboard, a Prometheus to run.

`stormbench gates --prometheus URL` and `--emit-rules FILE` (commands/gates.py) call
`evaluate` and `emit_rules`; emulated runs and tests start a real server with
`PrometheusServer`.
"""
from harness.prom.api import PrometheusAPI, PrometheusQueryError, PrometheusUnavailable
from harness.prom.dashboard import dashboard, write_dashboard
from harness.prom.evaluate import evaluate
from harness.prom.promql import NotDerivable, query_for
from harness.prom.rules import build_rules, emit_rules
from harness.prom.server import PrometheusConfig, PrometheusServer

__all__ = [
    "PrometheusAPI", "PrometheusConfig", "PrometheusQueryError", "PrometheusServer", "PrometheusUnavailable",
    "NotDerivable", "build_rules", "dashboard", "emit_rules", "evaluate", "query_for", "write_dashboard",
]
