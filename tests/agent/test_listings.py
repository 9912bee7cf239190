"""The seeded generator: deterministic, indexed, and spread like a real rental market."""
from __future__ import annotations

import datetime as dt
import sqlite3
import statistics

from system.agent.agents.real_estate.geography import CITIES
from system.agent.agents.real_estate.listings import SeedConfig, seed_database
from system.agent.agents.real_estate.tools import Criteria, ListingTools


def _dump(path) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT * FROM listings ORDER BY id").fetchall() + \
            con.execute("SELECT * FROM bookings ORDER BY listing_id, check_in").fetchall()
    finally:
        con.close()


def test_a_seed_names_a_database_exactly(tmp_path):
    a = seed_database(tmp_path / "a.sqlite3", SeedConfig(listings=500, seed=3))
    b = seed_database(tmp_path / "b.sqlite3", SeedConfig(listings=500, seed=3))
    c = seed_database(tmp_path / "c.sqlite3", SeedConfig(listings=500, seed=4))
    assert _dump(a) == _dump(b) != _dump(c)


def test_reseeding_replaces_the_file_and_leaves_no_temporary_behind(tmp_path):
    path = tmp_path / "db.sqlite3"
    seed_database(path, SeedConfig(listings=300))
    seed_database(path, SeedConfig(listings=200))
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM listings").fetchone()[0] == 200
    assert [p.name for p in tmp_path.iterdir()] == ["db.sqlite3"]


def test_the_tools_queries_walk_an_index_in_rank_order(listings_db):
    """The SQL the tools really run: an index search, never a table scan, never a sort of the slice."""
    tools = ListingTools(listings_db)
    seen: list[str] = []
    tools._con().set_trace_callback(seen.append)
    day = dt.date(2026, 12, 3)
    for c in (Criteria(city="Lisbon", tenure="long", bedrooms=2, max_price=1500, move_in=day, pets=True),
              Criteria(city="Lisbon", area="Alfama", tenure="short", check_in=day, check_out=day + dt.timedelta(3)),
              Criteria(city="Berlin", tenure="long", min_bedrooms=3, furnished=False),
              Criteria(city="Porto", area="Ribeira", tenure="long", bedrooms=1),
              Criteria(tenure="short", max_price=60)):
        tools.search_listings(c)
    tools.check_availability(1, day, day + dt.timedelta(2))
    con = sqlite3.connect(listings_db)
    assert len(seen) >= 6
    for sql in seen:
        plan = " | ".join(row[-1] for row in con.execute("EXPLAIN QUERY PLAN " + sql))
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan or "INTEGER PRIMARY KEY" in plan, (sql, plan)
        assert "SCAN listings" not in plan and "SCAN bookings" not in plan, (sql, plan)
        # a sort of the whole slice would read every match; only ties in (rating, price) may be sorted
        assert "TEMP B-TREE FOR ORDER BY" not in plan, (sql, plan)


def test_the_spread_looks_like_a_rental_market(listings_db):
    con = sqlite3.connect(listings_db)
    rows = con.execute("SELECT city, area, tenure, bedrooms, price, price_unit, currency, furnished, pets, "
                       "available_from FROM listings").fetchall()
    assert {r[0] for r in rows} == {c.name for c in CITIES}
    assert len({r[1] for r in rows}) == sum(len(c.areas) for c in CITIES)
    short = [r for r in rows if r[2] == "short"]
    long_ = [r for r in rows if r[2] == "long"]
    assert 0.35 < len(short) / len(rows) < 0.55
    assert {r[5] for r in short} == {"night"} and {r[5] for r in long_} == {"month"}
    assert all(r[7] == 1 for r in short) and 0.4 < statistics.mean(r[7] for r in long_) < 0.7
    assert 0.15 < statistics.mean(r[8] for r in rows) < 0.45
    assert all(r[9] is None for r in short) and all(r[9] for r in long_)
    assert {r[3] for r in rows} == {0, 1, 2, 3, 4, 5}
    assert 40 < statistics.median(r[4] for r in short) < 250
    assert 800 < statistics.median(r[4] for r in long_) < 3000
    london = [r for r in rows if r[0] == "London"]
    assert {r[6] for r in london} == {"GBP"}
    # bigger places cost more, within a city and tenure
    lis = lambda beds: statistics.median(r[4] for r in long_ if r[0] == "Lisbon" and r[3] == beds)  # noqa: E731
    assert lis(1) < lis(2) < lis(3)


def test_bookings_do_not_overlap_and_stay_in_the_calendar(listings_db):
    con = sqlite3.connect(listings_db)
    start = dt.date.fromisoformat(con.execute("SELECT value FROM meta WHERE key='calendar_start'").fetchone()[0])
    last: dict[int, str] = {}
    n = 0
    for lid, ci, co in con.execute("SELECT listing_id, check_in, check_out FROM bookings ORDER BY listing_id, check_in"):
        assert ci < co and ci >= start.isoformat() and co <= (start + dt.timedelta(days=365)).isoformat()
        assert lid not in last or last[lid] <= ci
        last[lid] = co
        n += 1
    assert n > 1000
    assert not con.execute("SELECT count(*) FROM bookings b JOIN listings l ON l.id = b.listing_id "
                           "WHERE l.tenure = 'long'").fetchone()[0]
