"""The console script as a user meets it: help, unknown commands, exit codes."""
import subprocess
import sys

from commands.cli import COMMANDS


def stormbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "commands.cli", *args], capture_output=True, text=True, timeout=60)


def test_help_lists_every_subcommand():
    out = stormbench("--help")
    assert out.returncode == 0
    for name in COMMANDS:
        assert name in out.stdout


def test_unknown_subcommand_is_a_usage_error():
    out = stormbench("frobnicate")
    assert out.returncode == 2
    assert "invalid choice" in out.stderr


def test_no_arguments_prints_help_and_exits_2():
    out = stormbench()
    assert out.returncode == 2
    assert "COMMAND" in out.stdout


def test_every_subcommand_has_help():
    for name in COMMANDS:
        out = stormbench(name, "--help")
        assert out.returncode == 0, f"{name}: {out.stderr[-500:]}"
        assert "usage: stormbench" in out.stdout


def test_an_environment_error_is_one_line_and_exit_2(tmp_path):
    """Any subcommand: a path the system refuses is named, without a traceback (here sweep's --out)."""
    blocker = tmp_path / "afile"
    blocker.write_text("")
    out = stormbench("sweep", "token-expiry-403", "--vary", "fleet.sim_clients=100", "--out", str(blocker / "x"))
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == f"stormbench sweep: error: {blocker / 'x'}: Not a directory (NotADirectoryError)"
