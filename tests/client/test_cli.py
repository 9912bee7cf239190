"""`stormbench client` as a user runs it: a real process against a real server."""
from __future__ import annotations

import argparse
import json
import subprocess

import pytest

from harness.emulate.procs import stormbench_argv
from system.client.cli import config_from_args, configure
from system.client.config import ClientConfig
from tests.client.conftest import ADMIN_KEY

pytestmark = pytest.mark.timeout(60)


def client(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(stormbench_argv("client", *flags), capture_output=True, text=True, timeout=45)


def test_client_command_runs_a_fleet_and_writes_events(serve, tmp_path):
    server = serve()
    events = tmp_path / "events.jsonl"
    done = client("--ws-url", server.proc.ready["ws_url"], "--http-url", server.proc.ready["http_url"],
                  "--admin-key", ADMIN_KEY, "--profile", "legacy", "--fix", "dedup_resume", "--clients", "2", "--duration", "1.5s",
                  "--message-every", "200ms", "--events", str(events), "--quiet")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert {r["client"] for r in records} == {"c0", "c1"}
    kinds = {r["kind"] for r in records}
    assert {"token", "attempt", "open", "sent", "received", "displayed", "close"} <= kinds
    assert "legacy+dedup_resume" in done.stdout and "duplicates displayed" in done.stdout


@pytest.mark.parametrize("flags, message", [
    (["--ws-url", "127.0.0.1:1", "--http-url", "http://127.0.0.1:1"], "--ws-url '127.0.0.1:1': expected a URL"),
    (["--ws-url", "ws://127.0.0.1:1", "--http-url", "http://127.0.0.1:1", "--fix", "jiter"], "invalid choice: 'jiter'"),
    (["--ws-url", "ws://127.0.0.1:1", "--http-url", "http://127.0.0.1:1", "--duration", "soon"], "expected a duration"),
    (["--ws-url", "ws://127.0.0.1:1", "--http-url", "http://127.0.0.1:1", "--base-delay", "5s",
      "--max-delay", "1s"], "max_delay"),
    (["--ws-url", "ws://127.0.0.1:1", "--http-url", "http://127.0.0.1:1", "--events", "/nonexistent/dir/e.jsonl"],
     "--events /nonexistent/dir/e.jsonl: cannot write"),
    (["--ws-url", "ws://127.0.0.1:1", "--http-url", "http://127.0.0.1:1"], "--admin-key"),
])
def test_bad_input_is_a_usage_error(flags, message):
    done = client(*flags)
    assert done.returncode == 2
    assert message in done.stderr


def test_reorder_hold_flag_reaches_the_config():
    parser = argparse.ArgumentParser()
    configure(parser)
    base = ["--ws-url", "ws://127.0.0.1:1", "--http-url", "http://127.0.0.1:1"]
    assert config_from_args(parser.parse_args(base + ["--reorder-hold", "2s"])).reorder_hold == 2.0
    assert config_from_args(parser.parse_args(base)).reorder_hold == ClientConfig().reorder_hold
