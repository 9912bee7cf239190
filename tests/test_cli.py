"""The console script as a user meets it: help, unknown commands, exit codes."""
import subprocess
import sys

import pytest

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
    assert "unknown command 'frobnicate'; commands: serve" in out.stderr


def test_a_misspelt_command_gets_the_nearest_one():
    out = stormbench("sweeep")
    assert out.returncode == 2 and "unknown command 'sweeep' (did you mean 'sweep'?)" in out.stderr


def test_a_misspelt_flag_gets_the_subcommands_usage_and_the_nearest_flag():
    out = stormbench("run", "token-expiry-403", "--fxi", "refresh_before_reconnect")
    assert out.returncode == 2
    assert out.stderr.startswith("usage: stormbench run ")
    assert "unrecognized arguments: --fxi refresh_before_reconnect (did you mean '--fix'?)" in out.stderr


def test_a_misspelt_scenario_gets_the_subcommands_usage_and_the_nearest_name():
    out = stormbench("sweep", "token-expiry-430", "--vary", "fleet.sim_clients=10")
    assert out.returncode == 2
    assert out.stderr.startswith("usage: stormbench sweep ")
    assert "not a library scenario (did you mean 'token-expiry-403'?)" in out.stderr


def test_no_arguments_prints_help_and_exits_2():
    out = stormbench()
    assert out.returncode == 2
    assert "COMMAND" in out.stdout


def test_every_subcommand_has_help(capsys):
    """In one process (a process per command spent its time importing the same libraries again;
    the console script's own process is tested above)."""
    from commands.cli import main

    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        out = capsys.readouterr()
        assert exit_.value.code == 0, f"{name}: {out.err[-500:]}"
        assert out.out.startswith(f"usage: stormbench {name}"), name


def test_an_environment_error_is_one_line_and_exit_2(tmp_path):
    """Any subcommand: a path the system refuses is named, without a traceback (here sweep's --out)."""
    blocker = tmp_path / "afile"
    blocker.write_text("")
    out = stormbench("sweep", "token-expiry-403", "--vary", "fleet.sim_clients=100", "--out", str(blocker / "x"))
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == f"stormbench sweep: error: {blocker / 'x'}: Not a directory (NotADirectoryError)"


@pytest.mark.parametrize("command, positional", [("run", ["token-expiry-403"]), ("main-job", []),
                                                 ("sweep", ["deploy-storm"]), ("validate", ["deploy-storm"])])
def test_fix_flags_on_every_command_that_loads_a_scenario(command, positional):
    from commands.cli import build_parser
    from formats.scenario.fixes import flag_overrides

    args = build_parser(only=command).parse_args([command, *positional, "--fix", "refresh_before_reconnect",
                                                  "--fix", "jitter", "--no-fix", "handshake_403"])
    assert flag_overrides(args) == {"fix": ["refresh_before_reconnect", "jitter"], "no_fix": ["handshake_403"]}


def test_parsed_arguments_can_be_sent_to_a_worker_process():
    """main-job sends its arguments to a process pool: nothing unpicklable may ride in them."""
    import pickle

    from commands.cli import build_parser

    args = build_parser(only="main-job").parse_args(["main-job", "--fix", "jitter"])
    assert pickle.loads(pickle.dumps(args)).fix == ["jitter"]
