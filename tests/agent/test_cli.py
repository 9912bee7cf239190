"""`stormbench seed-db` as a user runs it: a real subprocess."""
from __future__ import annotations

import sqlite3
import subprocess
import sys


def seed_db(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", "seed-db", *args],
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
