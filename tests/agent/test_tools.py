"""The listings tools against a brute-force reading of the same SQLite file."""
from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from system.agent.agents.real_estate.geography import CITIES
from system.agent.agents.real_estate.tools import Criteria, ListingTools


@pytest.fixture(scope="module")
def everything(listings_db):
    """Every listing and booking, read without the tools' SQL."""
    con = sqlite3.connect(listings_db)
    listings = con.execute("SELECT id, city, area, tenure, bedrooms, price, furnished, pets, available_from, rating "
                           "FROM listings").fetchall()
    bookings: dict[int, list[tuple[str, str]]] = {}
    for lid, ci, co in con.execute("SELECT listing_id, check_in, check_out FROM bookings"):
        bookings.setdefault(lid, []).append((ci, co))
    con.close()
    return listings, bookings


def _expected(everything, c: Criteria, limit: int) -> list[int]:
    listings, bookings = everything
    out = []
    for lid, city, area, tenure, beds, price, furnished, pets, avail, rating in listings:
        if c.city and city != c.city or c.area and area != c.area or c.tenure and tenure != c.tenure:
            continue
        if c.bedrooms is not None and beds != c.bedrooms or c.min_bedrooms is not None and beds < c.min_bedrooms:
            continue
        if c.max_price is not None and price > c.max_price or c.min_price is not None and price < c.min_price:
            continue
        if c.pets and not pets or c.furnished is not None and bool(furnished) != c.furnished:
            continue
        if c.move_in is not None and (avail is None or avail > c.move_in.isoformat()):
            continue
        if c.check_in and c.check_out and any(ci < c.check_out.isoformat() and co > c.check_in.isoformat()
                                              for ci, co in bookings.get(lid, ())):
            continue
        out.append((-rating, price, lid))
    return [lid for _, _, lid in sorted(out)[:limit]]


cities = st.sampled_from(CITIES)
start = dt.date(2026, 11, 1)


@st.composite
def criteria(draw) -> Criteria:
    city = draw(cities)
    tenure = draw(st.sampled_from(["short", "long"]))
    area = draw(st.none() | st.sampled_from([a for a, _ in city.areas]))
    beds = draw(st.none() | st.integers(0, 5))
    min_beds = None if beds is not None else draw(st.none() | st.integers(1, 4))
    top = city.night * 3 if tenure == "short" else city.month * 3
    max_price = draw(st.none() | st.integers(20, top))
    day = draw(st.integers(0, 300))
    check_in = check_out = move_in = None
    if tenure == "short" and draw(st.booleans()):
        check_in = start + dt.timedelta(days=day)
        check_out = check_in + dt.timedelta(days=draw(st.integers(1, 14)))
    if tenure == "long" and draw(st.booleans()):
        move_in = start + dt.timedelta(days=day)
    return Criteria(city=city.name, area=area, tenure=tenure, bedrooms=beds, min_bedrooms=min_beds,
                    max_price=max_price, check_in=check_in, check_out=check_out, move_in=move_in,
                    pets=draw(st.none() | st.just(True)), furnished=draw(st.none() | st.booleans()))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(c=criteria())
def test_search_returns_exactly_the_best_rated_matches(listings_db, everything, c):
    tools = ListingTools(listings_db)
    assert [x.id for x in tools.search_listings(c, limit=5)] == _expected(everything, c, 5)


def test_search_results_carry_the_tenure_unit_and_currency(listings_db):
    tools = ListingTools(listings_db)
    for tenure, unit in (("short", "night"), ("long", "month")):
        found = tools.search_listings(Criteria(city="London", tenure=tenure), limit=10)
        assert len(found) == 10
        assert {(x.price_unit, x.currency, x.tenure) for x in found} == {(unit, "GBP", tenure)}


def test_get_listing_and_check_availability_follow_the_bookings(listings_db, everything):
    tools = ListingTools(listings_db)
    _, bookings = everything
    lid, booked = next((k, v) for k, v in sorted(bookings.items()) if v)
    ci, co = (dt.date.fromisoformat(d) for d in booked[0])
    listing = tools.get_listing(lid)
    assert listing is not None and listing.tenure == "short"
    clash = tools.check_availability(lid, ci, co)
    assert not clash.available and clash.reason == f"booked {booked[0][0]} to {booked[0][1]}"
    before = tools.check_availability(lid, ci - dt.timedelta(days=1), ci)  # checking out the day they arrive
    assert before.available == all(not (b[0] < ci.isoformat() and b[1] > (ci - dt.timedelta(days=1)).isoformat())
                                   for b in booked)
    assert tools.get_listing(10**9) is None
    assert not tools.check_availability(10**9, ci, co).available
    with pytest.raises(ValueError, match="must be after"):
        tools.check_availability(lid, co, ci)


def test_long_let_availability_is_the_move_in_date(listings_db):
    tools = ListingTools(listings_db)
    x = tools.search_listings(Criteria(city="Porto", tenure="long"), limit=1)[0]
    assert x.available_from is not None
    day = dt.timedelta(days=1)
    assert tools.check_availability(x.id, x.available_from, x.available_from + day).available
    assert not tools.check_availability(x.id, x.available_from - day, x.available_from).available
