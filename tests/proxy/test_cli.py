"""`stormbench proxy` as a command: ready line, config file (with toxics), errors a user can act on."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from harness.proxy.process import start_proxy
from tests.proxy.conftest import UA, free_port, listening


def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.proxy", *args], capture_output=True, text=True, timeout=timeout)


def test_help_documents_every_flag() -> None:
    out = run_cli("--help").stdout
    for flag in ("--host", "--port", "--config", "--seed"):
        assert flag in out


def test_config_file_with_toxics(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([
        {"name": "chat", "listen": f"127.0.0.1:{port}", "upstream": "127.0.0.1:1",
         "toxics": [{"type": "latency", "attributes": {"latency": 250}}, {"type": "ws_close", "stream": "downstream", "name": "kick", "attributes": {"code": 4401}}]},
        {"name": "off", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:2", "enabled": False},
    ]))
    with start_proxy(config=config, seed=3) as proc:
        proxies = requests.get(proc.api_url + "/proxies", headers=UA, timeout=5).json()
        assert sorted(proxies) == ["chat", "off"]
        assert [(t["name"], t["attributes"]) for t in proxies["chat"]["toxics"]] == [
            ("latency_downstream", {"latency": 250, "jitter": 0}),
            ("kick", {"code": 4401, "reason": "", "delay": 0}),
        ]
        assert listening(f"127.0.0.1:{port}") and proxies["off"]["enabled"] is False
        assert proc.stop() == 0


@pytest.mark.parametrize(
    "content, expected",
    [
        ("[{", "not valid JSON"),
        ('{"name": "x"}', "expected an array"),
        ('[{"name": "a", "upstream": "h:1"}, {"name": "b"}]', "missing required field: upstream at proxy 2"),
        ('[{"name": "a", "listen": "127.0.0.1:0", "upstream": "h:1", "toxics": [{"type": "nope"}]}]', "proxy 1 (a) toxic 1: invalid toxic type"),
        ('[{"name": "a", "listen": "127.0.0.1:0", "upstream": "h:1", "toxics": [{"type": "latency", "attributes": {"latency": 1.5}}]}]', "toxic 1: bad request body"),
        ('[{"name": "a", "listen": "nowhere", "upstream": "h:1"}]', "proxy 1 (a): listen tcp: address nowhere: missing port in address"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path: Path, content: str, expected: str) -> None:
    config = tmp_path / "proxies.json"
    config.write_text(content)
    result = run_cli("--port", "0", "--config", str(config))
    assert result.returncode == 2
    assert str(config) in result.stderr and expected in result.stderr, result.stderr
    assert result.stdout == ""  # never reported ready


def test_missing_config_file(tmp_path: Path) -> None:
    result = run_cli("--port", "0", "--config", str(tmp_path / "absent.json"))
    assert result.returncode == 2 and "absent.json: cannot read config" in result.stderr


def test_busy_api_port_is_a_usage_error() -> None:
    with start_proxy() as proc:
        result = run_cli("--port", str(proc.port))
    assert result.returncode == 2 and f"cannot listen on 127.0.0.1:{proc.port}" in result.stderr
