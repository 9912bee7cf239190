"""Upstream Toxiproxy's API tests (research/toxiproxy.md §3.1, §3.2), black-box over HTTP.

Ports are free ephemeral ones instead of upstream's fixed 3310/7070/...; each
case names the upstream test number it re-expresses.
"""
from __future__ import annotations

import json
import re

import pytest

from tests.proxy.conftest import Api, free_port, listening

ERROR_CT = "text/plain; charset=utf-8"


def assert_error(r, status: int, message: str) -> None:
    assert r.status_code == status, r.text
    assert r.text.endswith("\n")
    assert r.json() == {"error": message, "status": status}


def test_request_id_on_matched_routes_only(api: Api) -> None:  # 1
    r = api.get("/version", headers={"User-Agent": "curl/8"})
    assert re.fullmatch(r"[0-9a-v]{20}", r.headers["X-Toxiproxy-Request-Id"])
    assert "X-Toxiproxy-Request-Id" not in api.get("/nowhere").headers


def test_browser_user_agent_is_blocked(api: Api) -> None:  # 2, 3
    r = api.get("/proxies", headers={"User-Agent": "Mozilla/5.0 (Linux; Android 4.4.2)"})
    assert (r.status_code, r.text) == (403, "User agent not allowed\n")
    assert api.get("/proxies", headers={"User-Agent": "Wget/2.1"}).status_code == 200


def test_router_answers_like_gorilla_mux(api: Api) -> None:
    r = api.get("/not_found")
    assert (r.status_code, r.text) == (404, "404 page not found\n")
    assert api.get("/proxies/").status_code == 404  # no trailing-slash redirect
    for method, path in [("GET", "/reset"), ("PUT", "/proxies/x"), ("HEAD", "/version")]:
        r = api.request(method, path)
        assert (r.status_code, r.content) == (405, b""), (method, path)


def test_empty_index(api: Api) -> None:  # 4
    r = api.get("/proxies")
    assert (r.status_code, r.json()) == (200, {})
    assert r.headers["Content-Type"] == "application/json"
    assert not r.text.endswith("\n")


def test_version_body(api: Api) -> None:  # 33
    r = api.get("/version")
    assert r.text == '{"version": "2.12.0"}\n'
    assert r.headers["Content-Type"] == "application/json;charset=utf-8"


@pytest.mark.parametrize(
    "body, message",
    [
        ({"name": "", "listen": "", "upstream": "", "enabled": True}, "missing required field: name"),  # 5
        ({"name": "test", "listen": "", "upstream": ""}, "missing required field: upstream"),  # 6
    ],
)
def test_create_missing_fields(api: Api, body, message) -> None:
    r = api.post("/proxies", body)
    assert_error(r, 400, message)
    assert r.headers["Content-Type"] == ERROR_CT


@pytest.mark.parametrize(
    "raw, prefix",
    [
        (b"", "bad request body: EOF"),
        (b"{nope", "bad request body"),
        (b'{"name": 5, "upstream": "x:1"}', "bad request body"),
        (b'{"name": "a", "upstream": "x:1", "enabled": "yes"}', "bad request body"),
        (b"[1, 2]", "bad request body"),
    ],
)
def test_create_bad_body(api: Api, raw: bytes, prefix: str) -> None:
    r = api.post("/proxies", raw=raw)
    assert r.status_code == 400
    assert r.json()["error"].startswith(prefix)
    assert api.get("/proxies").json() == {}


def test_go_json_leniency(api: Api, echo) -> None:
    body = b'{"Name": "lenient", "UPSTREAM": "%s", "listen": "127.0.0.1:0", "Logger": {}} trailing' % echo.address.encode()
    r = api.post("/proxies", raw=body)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "lenient"


def test_populate_two(api: Api) -> None:  # 7
    a, b = free_port(), free_port()
    body = [
        {"name": "one", "listen": f"localhost:{a}", "upstream": "localhost:1", "enabled": True},
        {"name": "two", "listen": f"localhost:{b}", "upstream": "localhost:2", "enabled": True},
    ]
    r = api.post("/populate", body)
    assert r.status_code == 201
    assert [p["name"] for p in r.json()["proxies"]] == ["one", "two"]
    assert listening(f"127.0.0.1:{a}") and listening(f"127.0.0.1:{b}")


def test_populate_default_enabled(api: Api) -> None:  # 8
    a = free_port()
    r = api.post("/populate", raw=b'[{"name":"test","listen":"localhost:%d","upstream":"localhost:1"}]' % a)
    assert r.status_code == 201
    assert list(api.get("/proxies").json()) == ["test"]
    assert listening(f"127.0.0.1:{a}")


def test_populate_disabled(api: Api) -> None:  # 9
    a, b = free_port(), free_port()
    body = [
        {"name": "one", "listen": f"localhost:{a}", "upstream": "localhost:1", "enabled": False},
        {"name": "two", "listen": f"localhost:{b}", "upstream": "localhost:2", "enabled": True},
    ]
    r = api.post("/populate", body)
    assert r.status_code == 201
    assert [p["name"] for p in r.json()["proxies"]] == ["one", "two"]
    assert not listening(f"127.0.0.1:{a}")
    assert listening(f"127.0.0.1:{b}")


def test_populate_keeps_identical_proxy(api: Api) -> None:  # 10, 45
    a, b, c = free_port(), free_port(), free_port()
    api.create("one", "localhost:1", f"localhost:{a}")
    api.create("two", "localhost:2", f"localhost:{b}")
    api.add_toxic("one", type="latency")
    body = [
        {"name": "one", "listen": f"localhost:{a}", "upstream": "localhost:1"},
        {"name": "two", "listen": f"127.0.0.1:{c}", "upstream": "localhost:2"},
    ]
    r = api.post("/populate", body)
    assert r.status_code == 201
    assert [p["listen"] for p in r.json()["proxies"]] == [f"127.0.0.1:{a}", f"127.0.0.1:{c}"]
    toxics = api.get("/proxies/one/toxics").json()
    assert [t["type"] for t in toxics] == ["latency"]
    assert listening(f"127.0.0.1:{a}") and listening(f"127.0.0.1:{c}")
    assert not listening(f"127.0.0.1:{b}")


def test_populate_bad_name_creates_nothing(api: Api) -> None:  # 11
    body = [
        {"name": "one", "listen": f"localhost:{free_port()}", "upstream": "localhost:1"},
        {"name": "", "listen": "", "enabled": True},
    ]
    r = api.post("/populate", body)
    assert r.status_code == 400
    assert r.json()["error"] == "missing required field: name at proxy 2"
    assert api.get("/proxies").json() == {}


def test_populate_bad_listen_stops_midway(api: Api) -> None:  # 12
    body = [
        {"name": "one", "listen": f"localhost:{free_port()}", "upstream": "localhost:1"},
        {"name": "two", "listen": "local373", "upstream": "localhost:2"},
        {"name": "three", "listen": f"localhost:{free_port()}", "upstream": "localhost:3"},
    ]
    r = api.post("/populate", body)
    assert r.status_code == 500
    assert r.json()["error"] == "listen tcp: address local373: missing port in address"
    assert [p["name"] for p in r.json()["proxies"]] == ["one"]
    assert list(api.get("/proxies").json()) == ["one"]


def test_populate_then_add_toxic(api: Api) -> None:  # 13
    api.post("/populate", [{"name": "p", "listen": "127.0.0.1:0", "upstream": "localhost:1"}])
    assert api.post("/proxies/p/toxics", {"type": "latency", "stream": "downstream"}).status_code == 200


def test_listing_and_get(api: Api) -> None:  # 14, 15, 16
    port = free_port()
    r = api.post(
        "/proxies",
        {"name": "mysql_master", "listen": f"localhost:{port}", "upstream": "localhost:20001", "enabled": True, "toxics": None},
    )
    assert r.status_code == 201
    listed = api.get("/proxies").json()["mysql_master"]
    expected = {"name": "mysql_master", "listen": f"127.0.0.1:{port}", "upstream": "localhost:20001", "enabled": True, "toxics": []}
    assert listed == expected
    assert api.get("/proxies/mysql_master").json() == expected
    assert listening(f"127.0.0.1:{port}")
    assert_error(api.get("/proxies/nope"), 404, "proxy not found")


def test_create_disabled_then_toggle(api: Api) -> None:  # 17, 18, 39, 41
    port = free_port()
    body = {"name": "mysql_master", "listen": f"localhost:{port}", "upstream": "localhost:20001", "enabled": False}
    assert api.post("/proxies", body).status_code == 201
    shown = api.get("/proxies/mysql_master").json()
    assert (shown["listen"], shown["enabled"]) == (f"localhost:{port}", False)
    assert not listening(f"127.0.0.1:{port}")
    for _ in range(2):  # enabling twice is a no-op
        r = api.post("/proxies/mysql_master", {**body, "enabled": True})
        assert r.status_code == 200 and r.json()["enabled"] is True
        assert listening(f"127.0.0.1:{port}")
    for _ in range(2):  # and so is disabling twice
        r = api.post("/proxies/mysql_master", {**body, "enabled": False})
        assert r.status_code == 200 and r.json()["enabled"] is False
        assert not listening(f"127.0.0.1:{port}")


def test_delete(api: Api) -> None:  # 19
    proxy = api.create("mysql_master", "localhost:20001")
    assert listening(proxy["listen"])
    assert api.delete("/proxies/mysql_master").status_code == 204
    assert not listening(proxy["listen"])
    assert api.get("/proxies").json() == {}
    assert_error(api.delete("/proxies/mysql_master"), 404, "proxy not found")


def test_port_conflict(api: Api) -> None:  # 20, 40
    port = free_port()
    api.create("mysql_master", "localhost:20001", f"localhost:{port}")
    r = api.post("/proxies", {"name": "test", "listen": f"localhost:{port}", "upstream": "localhost:20001"})
    assert_error(r, 500, f"listen tcp 127.0.0.1:{port}: bind: address already in use")
    assert "test" not in api.get("/proxies").json()
    api.delete("/proxies/mysql_master")
    api.create("test", "localhost:20001", f"localhost:{port}")


def test_name_conflict(api: Api) -> None:  # 21, 46
    api.create("mysql_master", "localhost:20001")
    r = api.post("/proxies", {"name": "mysql_master", "listen": "127.0.0.1:0", "upstream": "localhost:1"})
    assert_error(r, 409, "proxy already exists")
    api.delete("/proxies/mysql_master")
    api.create("mysql_master", "localhost:1")


def test_restart_after_conflict(api: Api) -> None:  # 44
    port = free_port()
    api.create("a", "localhost:1", f"127.0.0.1:{port}")
    api.create("b", "localhost:1", f"127.0.0.1:{port}", enabled=False)
    r = api.post("/proxies/b", {"enabled": True})
    assert r.status_code == 500 and "address already in use" in r.json()["error"]
    assert api.post("/proxies/a", {"enabled": False}).status_code == 200
    assert api.post("/proxies/b", {"enabled": True}).json()["enabled"] is True
    assert listening(f"127.0.0.1:{port}")
    api.post("/proxies/b", {"enabled": False})
    assert not listening(f"127.0.0.1:{port}")


def test_update_listen(api: Api) -> None:  # 42
    old = api.create("p", "localhost:1")["listen"]
    moved = api.patch("/proxies/p", {"listen": "localhost:0"}).json()["listen"]
    assert moved != old and moved.startswith("127.0.0.1:") and moved != "127.0.0.1:0"
    assert listening(moved) and not listening(old)
    assert api.patch("/proxies/p", {"listen": moved}).json()["listen"] == moved
    assert listening(moved)
    assert api.patch("/proxies/p", {"enabled": False}).status_code == 200
    assert not listening(moved)


def test_update_bad_listen_is_500(api: Api) -> None:
    api.create("p", "localhost:1")
    assert_error(api.patch("/proxies/p", {"listen": "foo"}), 500, "address foo: missing port in address")


def test_reset(api: Api) -> None:  # 22, 23
    proxy = api.create("mysql_master", "localhost:20001")
    assert api.get("/proxies/mysql_master/toxics").json() == []
    toxic = api.add_toxic("mysql_master", type="latency", attributes={"latency": 100, "jitter": 10})
    assert toxic["attributes"] == {"latency": 100, "jitter": 10}
    api.post("/proxies/mysql_master", {"enabled": False})
    r = api.post("/reset")
    assert (r.status_code, r.content) == (204, b"")
    shown = api.get("/proxies/mysql_master").json()
    assert shown["enabled"] is True and shown["toxics"] == []
    assert shown["listen"] == proxy["listen"]  # re-enabled on the same concrete port
    assert listening(proxy["listen"])


def test_add_toxic(api: Api) -> None:  # 24
    api.create("p", "localhost:1")
    body = {"name": "foobar", "type": "latency", "stream": "downstream", "toxicity": 1, "attributes": {"latency": 100, "jitter": 10}}
    r = api.post("/proxies/p/toxics", body)
    assert r.status_code == 200
    expected = {"attributes": {"latency": 100, "jitter": 10}, "name": "foobar", "type": "latency", "stream": "downstream", "toxicity": 1}
    assert r.json() == expected
    assert api.get("/proxies/p/toxics").json() == [expected]
    assert api.get("/proxies/p/toxics/foobar").json() == expected
    assert_error(api.get("/proxies/p/toxics/nope"), 404, "toxic not found")
    assert_error(api.get("/proxies/nope/toxics"), 404, "proxy not found")


def test_two_toxics_with_default_attributes(api: Api) -> None:  # 25
    api.create("p", "localhost:1")
    for name in ("latency1", "latency2"):
        api.add_toxic("p", name=name, type="latency", stream="downstream", attributes=None)
    toxics = api.get("/proxies/p/toxics").json()
    assert [(t["name"], t["stream"], t["toxicity"], t["attributes"]) for t in toxics] == [
        ("latency1", "downstream", 1, {"latency": 0, "jitter": 0}),
        ("latency2", "downstream", 1, {"latency": 0, "jitter": 0}),
    ]


def test_toxic_name_conflicts(api: Api) -> None:  # 26, 27
    api.create("p", "localhost:1")
    api.add_toxic("p", name="foobar", type="latency", stream="upstream")
    for body in ({"name": "foobar", "type": "slow_close"}, {"name": "foobar", "type": "latency", "stream": "downstream"}):
        assert_error(api.post("/proxies/p/toxics", body), 409, "toxic already exists")
    toxics = api.get("/proxies/p/toxics").json()
    assert [(t["name"], t["type"], t["stream"]) for t in toxics] == [("foobar", "latency", "upstream")]


def test_default_names_and_toxicity(api: Api) -> None:  # 28, 29, 30
    api.create("p", "localhost:1")
    api.add_toxic("p", type="latency", stream="upstream")
    api.add_toxic("p", type="latency", toxicity=0.2, attributes={"latency": 100, "jitter": 10})
    api.add_toxic("p", name="foobar", type="noop", toxicity=1, attributes=None)
    got = [(t["name"], t["stream"], t["toxicity"]) for t in api.get("/proxies/p/toxics").json()]
    assert got == [("latency_upstream", "upstream", 1), ("latency_downstream", "downstream", 0.2), ("foobar", "downstream", 1)]
    assert '"toxicity":0.2}' in api.get("/proxies/p/toxics/latency_downstream").text


def test_update_toxic_merges(api: Api) -> None:  # 31
    api.create("p", "localhost:1")
    api.add_toxic("p", type="latency", attributes={"latency": 100, "jitter": 10})
    r = api.patch("/proxies/p/toxics/latency_downstream", {"attributes": {"latency": 1000}, "toxicity": 0.5})
    assert (r.json()["attributes"], r.json()["toxicity"]) == ({"latency": 1000, "jitter": 10}, 0.5)
    r = api.post("/proxies/p/toxics/latency_downstream", {"attributes": {"latency": 500}})
    assert (r.json()["attributes"], r.json()["toxicity"]) == ({"latency": 500, "jitter": 10}, 0.5)
    assert api.get("/proxies/p/toxics").json()[0]["attributes"] == {"latency": 500, "jitter": 10}
    assert_error(api.patch("/proxies/p/toxics/nope", {}), 404, "toxic not found")


def test_remove_toxic(api: Api) -> None:  # 32
    api.create("p", "localhost:1")
    api.add_toxic("p", type="latency")
    assert api.delete("/proxies/p/toxics/latency_downstream").status_code == 204
    assert api.get("/proxies/p/toxics").json() == []
    assert_error(api.delete("/proxies/p/toxics/latency_downstream"), 404, "toxic not found")


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"type": "latency", "stream": "walrustream"}, 400, "stream was invalid, can be either upstream or downstream"),  # 34
        ({"type": "latency", "stream": ""}, 400, "stream was invalid, can be either upstream or downstream"),
        ({"type": "nope"}, 400, "invalid toxic type"),
        ({}, 400, "invalid toxic type"),
    ],
)
def test_invalid_toxics(api: Api, body, status, message) -> None:
    api.create("p", "localhost:1")
    assert_error(api.post("/proxies/p/toxics", body), status, message)
    assert api.get("/proxies/p/toxics").json() == []


@pytest.mark.parametrize(
    "attributes", [{"latency": 100.5}, {"latency": 1e3}, {"latency": "100"}, {"latency": True}, [1], "x"]
)
def test_integer_attributes_are_strict(api: Api, attributes) -> None:
    api.create("p", "localhost:1")
    r = api.post("/proxies/p/toxics", {"type": "latency", "attributes": attributes})
    assert r.status_code == 400
    assert r.json()["error"].startswith("bad request body")
    assert api.get("/proxies/p/toxics").json() == []


def test_case_insensitive_toxic_keys(api: Api) -> None:
    api.create("p", "localhost:1")
    r = api.post("/proxies/p/toxics", raw=b'{"Type":"bandwidth","Attributes":{"Rate":100}}')
    assert r.status_code == 200
    assert r.json()["attributes"] == {"rate": 100}


def test_populate_empty_and_bad_shapes(api: Api) -> None:
    r = api.post("/populate", [])
    assert (r.status_code, r.json()) == (201, {"proxies": []})  # upstream: null (a §7 quirk)
    assert api.post("/populate", {"name": "x"}).status_code == 400


def test_metrics_endpoint_lists_proxies(api: Api) -> None:
    api.create("p", "localhost:1")
    text = api.get("/metrics").text
    assert re.search(r'toxiproxy_proxy_sent_bytes_total\{direction="upstream",listener="127\.0\.0\.1:\d+",proxy="p",upstream="localhost:1"\} 0', text)


def test_json_is_compact(api: Api) -> None:
    api.create("p", "localhost:1")
    text = api.get("/proxies/p").text
    assert json.dumps(json.loads(text), separators=(",", ":")) == text


@pytest.mark.parametrize(
    "body",
    [
        {"type": "ws_close", "attributes": {"code": 70000}},
        {"type": "ws_close", "attributes": {"code": 999}},
        {"type": "ws_close", "attributes": {"code": 1015}},
        {"type": "ws_close", "attributes": {"reason": "x" * 124}},
    ],
)
def test_ws_close_attributes_are_checked(api: Api, body) -> None:
    api.create("p", "localhost:1")
    r = api.post("/proxies/p/toxics", body)
    assert r.status_code == 400 and r.json()["error"].startswith("bad request body: ws_close")
    assert api.get("/proxies/p/toxics").json() == []
    api.add_toxic("p", type="ws_close", attributes={"code": 4401})
    r = api.patch("/proxies/p/toxics/ws_close_downstream", {"attributes": body["attributes"]})
    assert r.status_code == 400
    assert api.get("/proxies/p/toxics/ws_close_downstream").json()["attributes"]["code"] == 4401


def test_nan_is_not_json(api: Api) -> None:
    api.create("p", "localhost:1")
    r = api.post("/proxies/p/toxics", raw=b'{"type": "latency", "toxicity": NaN}')
    assert r.status_code == 400 and r.json()["error"].startswith("bad request body")
