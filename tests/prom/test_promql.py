"""Gate → PromQL: derived from the server's metric list, or refused with the reason."""
import pytest

from formats.gates import parse_gates
from harness.prom.promql import NotDerivable, duration, query_for


def gate(**spec):
    return parse_gates([{"name": "g", "op": "<=", "value": 1, **spec}])[0]


def test_lifetime_quantile_reads_the_duration_histogram():
    q = query_for(gate(metric="connection_duration", stat="p95", op=">=", value="2h"), 86400)
    assert q.expr == ("histogram_quantile(0.95, sum by (le) "
                      "(increase(ws_connection_duration_seconds_bucket[86400s])))")
    assert q.spec.name == "ws_connection_duration_seconds"


def test_counter_count_rate_and_tags():
    q = query_for(gate(metric='closes{code="4401"}', stat="count"), 3600)
    assert q.expr == 'sum(increase(ws_closes_total{code="4401"}[3600s]))'
    assert query_for(gate(metric="ws_closes_total", stat="rate"), 60).expr == "sum(rate(ws_closes_total[60s]))"
    assert query_for(gate(metric="http_403", stat="count"), 60).expr == \
        'sum(increase(ws_handshake_rejections_total{status="403"}[60s]))'


def test_rolling_window_with_baseline():
    q = query_for(gate(metric='closes{code="4401"}', stat="max_window_count", window="5m", value="3x baseline"),
                  86400)
    assert q.expr == 'max_over_time(sum(increase(ws_closes_total{code="4401"}[300s]))[86400s:87s])'
    assert q.baseline_expr == 'clamp_min(sum(increase(ws_closes_total{code="4401"}[86400s])) * ' + repr(300 / 86400) + ', 1)'
    trailing = query_for(gate(metric='closes{code="4401"}', stat="max_window_count", window="5m", value="3x baseline"),
                         86400, trailing_baseline=True)
    assert 'offset 86400s' in trailing.baseline_expr and 'offset' not in q.baseline_expr


def test_gauge_stats():
    assert query_for(gate(metric="active_connections", stat="min"), 600).expr == \
        "min_over_time(sum(ws_connections_active)[600s:1s])"
    growth = query_for(gate(metric="active_connections", stat="growth"), 4000).expr
    assert growth == ("avg_over_time(sum(ws_connections_active)[1000s:4s]) / "
                      "avg_over_time(sum(ws_connections_active)[1000s:4s] offset 3000s) - 1")


def test_histogram_mean_and_count_with_a_label():
    q = query_for(gate(metric='agent_execution{agent="real_estate"}', stat="mean"), 60)
    assert q.expr == ('sum(increase(agent_execution_seconds_sum{agent="real_estate"}[60s])) / '
                      'sum(increase(agent_execution_seconds_count{agent="real_estate"}[60s]))')


def test_own_promql_wins_and_takes_the_window():
    q = query_for(gate(metric="connection_duration", stat="p50", promql="my_query[$window]"), 7200)
    assert q.expr == "my_query[7200s]" and q.spec.name == "ws_connection_duration_seconds"


@pytest.mark.parametrize("spec, reason", [
    ({"metric": "lost_messages", "stat": "count"}, "measured by the clients"),
    ({"metric": "nonsense_metric", "stat": "count"}, "not exported by the server"),
    ({"metric": 'closes{status="403"}', "stat": "count"}, "has no label 'status' (its labels: code)"),
    ({"metric": "connection_duration", "stat": "max"}, "not defined for the histogram"),
    ({"metric": "closes", "stat": "count", "phase": {"after": "server_restart", "within": "60s"}},
     "fault timeline"),
    ({"metric": 'closes{code="1012"}', "stat": "max_window_count", "window": "1s", "value": "0.3x fleet"},
     "share of the fleet"),
])
def test_what_prometheus_can_not_answer_is_refused_with_the_reason(spec, reason):
    with pytest.raises(NotDerivable, match=reason.replace("(", r"\(").replace(")", r"\)")):
        query_for(gate(**spec), 3600)


def test_duration_literals():
    assert duration(300) == "300s" and duration(0.25) == "250ms"
    with pytest.raises(ValueError):
        duration(0)
