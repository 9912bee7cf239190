"""`stormbench seed-db` as a user runs it: a real subprocess."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest


def seed_db(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "commands.cli", "seed-db", *args],
                          capture_output=True, text=True, timeout=120)


def test_seed_db_writes_the_database_with_progress(tmp_path):
    db = tmp_path / "listings.sqlite3"
    done = seed_db("--listings", "20000", "--seed", "11", "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert "20,000/20,000 listings" in done.stderr and f"wrote 20,000 listings (seed 11) to {db}" in done.stdout
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM listings").fetchone()[0] == 20000
    assert dict(con.execute("SELECT key, value FROM meta"))["seed"] == "11"


def test_seed_db_refuses_bad_input_with_exit_2_and_writes_nothing(tmp_path):
    for args, message in (
        (["--listings", "0"], "--listings: expected 1..5,000,000, got 0"),
        (["--calendar-start", "next tuesday"], "--calendar-start: expected an ISO date"),
        (["--db", str(tmp_path)], "is a directory"),
    ):
        done = seed_db("--db", str(tmp_path / "x.sqlite3"), *args)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
    assert not (tmp_path / "x.sqlite3").exists()


def test_seed_db_help_documents_every_flag():
    out = seed_db("--help").stdout
    for flag in ("--listings", "--seed", "--db", "--calendar-start", "--quiet"):
        assert flag in out


def test_serve_with_a_missing_listings_database_exits_2_naming_it(tmp_path):
    # the console script, as a user runs it (under `python -m commands.cli` the dispatcher is __main__
    # and does not recognise commands.cli.UsageError raised by `serve`: exit 1 with a traceback)
    script = Path(sys.executable).with_name("stormbench")
    if not script.exists():
        pytest.skip(f"no console script at {script}")
    missing = tmp_path / "nope.sqlite3"
    done = subprocess.run([str(script), "serve", "--port", "0", "--http-port", "0",
                           "--listings-db", str(missing)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"{missing}: no such listings database; create it with `stormbench seed-db --db {missing}`" in done.stderr
