"""`/metrics`: bytes per proxy and direction, in Prometheus text format.

Names and labels are upstream's (`toxiproxy_proxy_{received,sent}_bytes_total`
with `direction, listener, proxy, upstream`) so existing dashboards keep
working; unlike upstream the counters move while a connection is open, not only
when it ends, which is what a long-lived WebSocket needs. Connection gauges are
a stormbench addition, as is the gauge of links forwarded by splice threads.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from harness.proxy.proxy import ProxyCollection

LABELS = ["direction", "listener", "proxy", "upstream"]


class _ProxyCollector:
    def __init__(self, collection: "ProxyCollection") -> None:
        self.collection = collection

    def collect(self) -> Iterator[Metric]:
        received = CounterMetricFamily("toxiproxy_proxy_received_bytes", "Bytes read from the source of each link", labels=LABELS)
        sent = CounterMetricFamily("toxiproxy_proxy_sent_bytes", "Bytes written to the destination of each link", labels=LABELS)
        active = GaugeMetricFamily("toxiproxy_proxy_connections", "Open proxied connections", labels=["proxy"])
        spliced = GaugeMetricFamily("toxiproxy_proxy_spliced_links",
                                    "Links (one direction of a connection) forwarded by a kernel splice thread", labels=["proxy"])
        for name in sorted(self.collection.proxies):
            proxy = self.collection.proxies[name]
            for direction, counter in proxy.counters.items():
                labels = [direction, proxy.listen, name, proxy.upstream]
                got, put = counter.totals()
                received.add_metric(labels, got)
                sent.add_metric(labels, put)
            active.add_metric([name], len(proxy.connections))
            spliced.add_metric([name], sum(len(c.splicers) for c in proxy.counters.values()))
        yield received
        yield sent
        yield active
        yield spliced


def render(collection: "ProxyCollection") -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ProxyCollector(collection))
    return generate_latest(registry), CONTENT_TYPE_LATEST
