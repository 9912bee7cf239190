"""The slice of Prometheus's HTTP API the gates use: instant queries, readiness, targets.

Errors are for people: an unreachable server names the URL and what was expected there;
a rejected query names the query and Prometheus's own message.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from system.errors import UsageError


class PrometheusUnavailable(UsageError):
    """Prometheus can not be reached or is not a Prometheus (exit 2: an environment error)."""


class PrometheusQueryError(UsageError):
    """Prometheus rejected a query (exit 2: fix the gate's promql)."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class PrometheusAPI:
    def __init__(self, url: str, timeout: float = 10.0):
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--prometheus: expected a URL such as http://127.0.0.1:9090, got {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._session.get(f"{self.url}{path}", params=params, timeout=self.timeout)
        except requests.ConnectionError as exc:
            raise PrometheusUnavailable(f"cannot reach Prometheus at {self.url}: connection failed "
                                        f"({_reason(exc)}); is it running and is the URL right?") from exc
        except requests.Timeout as exc:
            raise PrometheusUnavailable(f"Prometheus at {self.url} did not answer within {self.timeout:g}s") from exc
        try:
            body = response.json()
        except ValueError:
            raise PrometheusUnavailable(f"{self.url}{path} answered HTTP {response.status_code} without JSON: "
                                        "not a Prometheus HTTP API (expected e.g. http://host:9090)") from None
        if body.get("status") != "success":
            raise PrometheusQueryError(f"Prometheus rejected {params.get('query') if params else path!r}: "
                                       f"{body.get('errorType', 'error')}: {body.get('error', response.reason)}")
        return body["data"]

    def check(self) -> dict[str, Any]:
        """Fail early, before any gate, when the URL is not a live Prometheus; returns its build info."""
        return self._get("/api/v1/status/buildinfo")

    def query(self, expr: str, at: float) -> list[Sample]:
        """An instant query at unix time `at`; a scalar becomes one unlabelled sample."""
        data = self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar":
            return [Sample({}, float(result[1]))]
        if kind != "vector":
            raise PrometheusQueryError(f"{expr!r} returned a {kind}; a gate needs an instant vector or a scalar")
        return [Sample(dict(r.get("metric", {})), float(r["value"][1])) for r in result]

    def targets(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/targets").get("activeTargets", [])


def _reason(exc: Exception) -> str:
    text = str(exc)
    return "connection refused" if "refused" in text.lower() else text.splitlines()[0][:200]
