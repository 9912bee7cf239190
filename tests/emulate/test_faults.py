"""Fault steps against real processes, and the toxics a fault becomes once time is scaled."""
from __future__ import annotations

import requests

from harness.emulate.faults import FaultApplier, toxics_for
from harness.emulate.plan import Step
from harness.emulate.timescale import TimeScale
from harness.emulate.topology import Endpoints, ProxyControl, ServerControl, ServerOptions, start_proxy_process
from formats.scenario import RealizedFault


def fault(kind: str, for_: float | None = None, targets=None, **params) -> RealizedFault:
    return RealizedFault(at=1.0, for_=for_, kind=kind, params=params, targets=targets)


def test_toxics_are_scaled_to_wall_time():
    s = TimeScale(10)
    lat = toxics_for(3, fault("latency", 60, latency=0.8, jitter=0.2, stream="downstream"), s)
    assert lat == [{"name": "f3-latency-downstream", "type": "latency", "stream": "downstream", "toxicity": 1.0,
                    "attributes": {"latency": 80, "jitter": 20}}]
    bw = toxics_for(0, fault("bandwidth", 60, rate=16, stream="downstream"), s)
    assert bw[0]["attributes"] == {"rate": 160}  # the same bytes in a tenth of the time
    part = toxics_for(1, fault("partition", 60), s)
    assert {(t["type"], t["stream"], t["attributes"]["timeout"]) for t in part} == {
        ("timeout", "downstream", 0), ("timeout", "upstream", 0)}
    assert toxics_for(2, fault("ws_close", 5, code=4401), s)[0]["attributes"] == {"code": 4401, "reason": ""}


def test_crash_restart_keeps_ports_and_tokens_and_admin_faults_apply(tmp_path):
    server = ServerControl(ServerOptions(db=tmp_path / "s.db"), tmp_path / "logs")
    before = server.start()
    proxy = start_proxy_process(tmp_path / "logs", seed=1)
    try:
        px = ProxyControl(proxy.ready["api_url"], groups=2)
        px.create(before)
        applier = FaultApplier(scale=TimeScale(1), server=server, proxies=px,
                               http_url=lambda: server.endpoints.http_url, admin_key=server.options.admin_key,
                               user_of=lambda cid: cid, groups_of={1: (1,)})
        secrets = requests.post(f"{before.http_url}/admin/users", json={"users": ["u1", "u2"]}, timeout=5,
                                headers={"X-Admin-Key": server.options.admin_key}).json()["users"]
        token = requests.post(f"{before.http_url}/auth/token", json={"user": "u1", "secret": secrets["u1"]},
                              timeout=5).json()
        pid = server.proc.pid
        applier.apply(Step(1.0, "start", 0, fault("server_restart", mode="crash")))
        assert server.pids == [pid, server.proc.pid] and server.proc.pid != pid
        assert server.endpoints == before
        again = requests.post(f"{before.http_url}/auth/refresh", json={"refresh_token": token["refresh_token"]},
                              timeout=5)
        assert again.status_code == 200  # the secret and the refresh family survived the crash
        # proxy_down on group 1 only: its proxies disabled, group 0 untouched, then restored
        down = fault("proxy_down", 5.0)
        applier.apply(Step(1.0, "start", 1, down))
        state = {n: px.client.get_proxy(n).enabled for pair in (px.names(0), px.names(1)) for n in pair}
        assert state == {"g00-ws": True, "g00-http": True, "g01-ws": False, "g01-http": False}
        assert [s.fault.kind for s in applier.in_force.values()] == ["proxy_down"]
        applier.lift_all()
        assert all(px.client.get_proxy(n).enabled for n in px.names(1)) and not applier.in_force
        # auth outage through the admin API: the auth endpoint answers 503 until lifted
        outage = fault("auth_outage", 5.0)
        applier.apply(Step(2.0, "start", 2, outage))
        assert requests.post(f"{before.http_url}/auth/token", json={"user": "u2", "secret": secrets["u2"]}, timeout=5).status_code == 503
        applier.apply(Step(7.0, "stop", 2, outage))
        assert requests.post(f"{before.http_url}/auth/token", json={"user": "u2", "secret": secrets["u2"]}, timeout=5).status_code == 200
    finally:
        proxy.stop()
        server.stop()


def test_a_network_fault_changes_every_targeted_groups_proxies_and_only_those(tmp_path):
    """The groups are changed in parallel (one listing, then one call per proxy): every proxy of the
    fault's groups gets both toxics, the others none; a ws_* fault touches only the WebSocket proxies;
    lifting removes exactly what was added."""
    proxy = start_proxy_process(tmp_path / "logs", seed=1)
    try:
        px = ProxyControl(proxy.ready["api_url"], groups=6)
        px.create(Endpoints("ws://127.0.0.1:9", "http://127.0.0.1:9"))
        targeted = (1, 3, 4, 5)
        applier = FaultApplier(scale=TimeScale(12), server=None, proxies=px, http_url=lambda: "", admin_key="",
                               user_of=lambda cid: cid, groups_of={0: targeted, 1: (2,)})

        def toxics() -> dict[str, set[str]]:
            return {name: {t.name for t in p.toxics().values()} for name, p in px.client.proxies().items()}

        part = fault("partition", 20.0)
        applier.apply(Step(1.0, "start", 0, part))
        expected = {"f0-partition-downstream", "f0-partition-upstream"}
        got = toxics()
        assert {n for n, t in got.items() if t} == {n for g in targeted for n in px.names(g)}
        assert all(got[n] == expected for g in targeted for n in px.names(g))
        pings = fault("ws_drop_pings", 20.0)
        applier.apply(Step(2.0, "start", 1, pings))
        assert toxics()["g02-ws"] == {"f1-ws_drop_pings-downstream", "f1-ws_drop_pings-upstream"}
        assert toxics()["g02-http"] == set()
        applier.apply(Step(21.0, "stop", 0, part))
        applier.apply(Step(22.0, "stop", 1, pings))
        assert all(not t for t in toxics().values())
    finally:
        proxy.stop()
