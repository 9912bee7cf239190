"""`target` and `toxiproxy_url`: the engine drives a system and a Toxiproxy it did not start,
leaves both running, and leaves the Toxiproxy as it found it."""
from __future__ import annotations

import json

import requests

from harness.emulate.engine import emulate
from harness.emulate.topology import ServerControl, ServerOptions, start_proxy_process
from formats.scenario import from_dict


def test_existing_system_and_toxiproxy(tmp_path, monkeypatch):
    server = ServerControl(ServerOptions(db=tmp_path / "s.db"), tmp_path / "logs")
    endpoints = server.start()
    proxy = start_proxy_process(tmp_path / "logs", seed=1)
    try:
        api = proxy.ready["api_url"]
        monkeypatch.setenv("STORMBENCH_ADMIN_KEY", server.options.admin_key)
        doc = {"name": "external", "seed": 2, "duration": "20s", "time_scale": 2,
               "fleet": {"clients": 6, "messages": {"every": "4s"}},
               "faults": [{"at": "6s", "for": "3s", "kind": "ws_close", "code": 4000, "fraction": 0.5},
                          {"at": "12s", "kind": "server_restart"}],
               "gates": []}
        out = tmp_path / "run"
        emulate(from_dict(doc), out, target=f"{endpoints.ws_url},{endpoints.http_url}", toxiproxy_url=api,
                progress=lambda s: None)
        meta = json.loads((out / "meta.json").read_text())
        assert meta["topology"]["target"] and meta["topology"]["toxiproxy_url"] == api
        # the restart cannot be done to a system the harness did not start: said, not fatal
        assert any("server_restart" in w for w in meta["warnings"])
        events = [json.loads(l) for l in (out / "events.jsonl").read_text().splitlines()]
        assert any(e["kind"] == "close" and e["code"] == 4000 for e in events)
        assert len((out / "sent.csv").read_text().splitlines()) > 1
        # both still up, and the Toxiproxy holds no proxy of ours
        assert server.running and proxy.alive()
        assert requests.get(f"{api}/proxies", timeout=5).json() == {}
        assert requests.get(f"{endpoints.http_url}/healthz", timeout=5).status_code == 200
    finally:
        proxy.stop()
        server.stop()
