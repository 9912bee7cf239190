"""The supervisor as the server sees it: the port, meta, threads, bounds, the default database."""
from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from system.agent import contracts
from system.agent.agents.real_estate.listings import ListingsDbError
from system.agent.supervisor import TODAY_ENV, Supervisor
from system.server.agent_port import AgentBackend, load_backend


def test_it_is_the_servers_agent_backend(listings_db):
    backend = load_backend("supervisor", listings_db)
    assert isinstance(backend, Supervisor) and isinstance(backend, AgentBackend)


def test_every_body_carries_meta_for_the_servers_metrics(supervisor):
    [body] = supervisor.respond("c", "long let in Porto, 2 bedrooms", "1.1")
    assert body["agent"] == "real_estate"
    assert body["meta"] == {"tenure": "long", "results": len(body["actions"][0]["listings"])} and body["meta"]["results"]
    [ask] = supervisor.respond("d", "flat in Porto", "1.1")
    assert ask["meta"] == {"tenure": "unknown", "results": 0}
    [chat] = supervisor.respond("e", "hello", "1.0")
    assert (chat["agent"], chat["meta"]) == ("general", {"tenure": "none", "results": 0})


def test_conversations_are_separate_and_survive_parallel_threads(supervisor):
    """Many conversations on 8 threads at once: each ends in its own city with its own answers."""
    cities = ["Lisbon", "Porto", "Berlin", "Madrid", "Paris", "London", "Amsterdam", "Barcelona"]

    def converse(n: int) -> list[str]:
        cid, city = f"conv-{n}", cities[n % len(cities)]
        texts = [supervisor.respond(cid, f"2 bedroom flat in {city}", "1.1")[0]["text"],
                 supervisor.respond(cid, "long let", "1.1")[0]["text"],
                 supervisor.respond(cid, "cheaper", "1.1")[0]["text"]]
        return [city, *texts]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(converse, range(64)))
    for city, asked, shown, cheaper in results:
        assert asked.startswith("Are you after a short stay")
        assert f"long lets in {city}" in shown
        assert f"long lets in {city}" in cheaper or f"nothing for long lets in {city}" in cheaper
    assert supervisor.conversations == 64


def test_the_messages_of_one_conversation_are_serialised(supervisor):
    """Two threads on one conversation: the policy sees whole turns, never a half-applied one."""
    def turn(text: str) -> str:
        return supervisor.respond("shared", text, "1.1")[0]["agent"]

    supervisor.respond("shared", "long let in Lisbon", "1.1")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        agents = list(pool.map(turn, ["cheaper", "with 2 bedrooms", "in Porto", "furnished"] * 10))
    assert agents == ["real_estate"] * 40


def test_conversation_memory_is_bounded(listings_db, today):
    s = Supervisor(listings_db, today=today, max_conversations=10)
    for n in range(25):
        s.respond(f"c{n}", "hello", "1.1")
    assert s.conversations == 10
    s.respond("c24", "2 bed flat in Porto", "1.1")  # the newest are kept ...
    assert s.respond("c24", "long let", "1.1")[0]["text"].startswith("Top")
    s.respond("c0", "long let", "1.1")  # ... the oldest forgotten (answered as a fresh conversation)
    assert s.conversations == 10


def test_a_missing_or_foreign_database_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(ListingsDbError, match=r"no-such\.sqlite3: no such listings database; create it with"):
        Supervisor(tmp_path / "no-such.sqlite3")
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ListingsDbError, match=r"junk\.sqlite3: not a stormbench listings database"):
        Supervisor(junk)


def test_today_comes_from_the_environment_when_not_given(listings_db, monkeypatch):
    monkeypatch.setenv(TODAY_ENV, "2026-02-01")
    s = Supervisor(listings_db)
    body = s.respond("c", "short stay in Porto 3-5 Mar", "1.1")[0]
    # resolved against 2026-02-01; against the real clock (late 2026 or later) it would be 2027 or later
    assert body["actions"][0]["criteria"]["dates"] == {"check_in": "2026-03-03", "check_out": "2026-03-05"}
    monkeypatch.setenv(TODAY_ENV, "soon")
    with pytest.raises(ValueError, match=f"{TODAY_ENV}: expected an ISO date"):
        Supervisor(listings_db)


def test_without_a_database_a_default_is_built_once_quickly(tmp_path):
    """In a fresh cache: built in well under 2 s by the first process, reused by the next."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    code = ("import time; t = time.perf_counter(); from system.agent.supervisor import Supervisor; "
            "s = Supervisor(); print(s.listings_db, time.perf_counter() - t)")
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    path, seconds = first.stdout.split()
    assert path.startswith(str(tmp_path)) and float(seconds) < 2.0
    built = os.stat(path).st_mtime_ns
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert second.stdout.split()[0] == path and os.stat(path).st_mtime_ns == built


_PIECES = ["2 bed", "studio", "flat", "in Lisbon", "in Alfama", "Porto", "London", "short stay", "long let",
           "under 90 a night", "1200/month", "£2k pcm", "3-10 Dec", "from 1 January", "31 feb", "cheaper",
           "with 3 bedrooms", "bigger", "pets", "unfurnished", "thanks", "hello", "until 15 dec", "?", "and", "€"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=5).map(" ".join) | st.text(min_size=1,
                max_size=60), min_size=1, max_size=6))
def test_any_conversation_gets_answers_valid_in_both_contract_versions(supervisor, turns):
    """Never an exception for what a user types: a clarifying answer at worst, always within contract."""
    cid = f"fuzz-{hash(tuple(turns))}"
    for text in turns:
        for body in supervisor.respond(cid, text, "1.1"):
            assert body["text"] and body["agent"] in ("real_estate", "general")
            if body["agent"] == "real_estate":
                sent = {k: v for k, v in body.items() if k != "meta"}
                contracts.check("response", "1.1", sent)
                contracts.check("response", "1.0", sent)
