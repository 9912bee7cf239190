"""Reading messages: places, bedrooms, budgets with units, dates, move-in, pets, furnished, refinements."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings, strategies as st

from system.agent.agents.real_estate.dates import BadDate, find_dates
from system.agent.agents.real_estate.understand import understand
from system.agent.text import normalize

TODAY = dt.date(2026, 11, 26)
D = dt.date


@pytest.mark.parametrize("text, expected", [
    ("I need a 2 bedroom flat in Lisbon under 1200/month",
     dict(city="Lisbon", bedrooms=2, max_price=1200, price_unit="month", tenure="long")),
    ("Somewhere in Alfama 3–10 Dec under 80 a night",
     dict(city="Lisbon", area="Alfama", check_in=D(2026, 12, 3), check_out=D(2026, 12, 10), max_price=80,
          price_unit="night", tenure="short")),
    ("from 1 January, furnished, max €1.5k per month",
     dict(start_date=D(2027, 1, 1), furnished=True, max_price=1500, price_unit="month", tenure="long")),
    ("T2 em Lisboa até 900 euros por mes", dict(city="Lisbon", bedrooms=2, max_price=900, price_unit="month")),
    ("between 800 and 1200 a month in Porto", dict(city="Porto", min_price=800, max_price=1200, price_unit="month")),
    ("studio near Camden 1,200 pcm", dict(city="London", area="Camden", bedrooms=0, max_price=1200)),
    ("3+ bedrooms in Madrid, no pets", dict(city="Madrid", min_bedrooms=3, pets=None)),
    ("at least two bedrooms, dogs welcome", dict(min_bedrooms=2, pets=True)),
    ("unfurnished 1 bed in principe real", dict(city="Lisbon", area="Príncipe Real", bedrooms=1, furnished=False)),
    ("apartmnt in barcelna for the weekend", dict(city="Barcelona", tenure="short")),
    ("Dec 3 to 10 in Gracia", dict(city="Barcelona", area="Gràcia", check_in=D(2026, 12, 3),
                                   check_out=D(2026, 12, 10))),
    ("for 3 nights from 12 december", dict(check_in=D(2026, 12, 12), check_out=D(2026, 12, 15), tenure="short")),
    ("28 dec - 3 jan", dict(check_in=D(2026, 12, 28), check_out=D(2027, 1, 3))),
    ("2026-12-03 to 2026-12-09 Paris", dict(city="Paris", check_in=D(2026, 12, 3), check_out=D(2026, 12, 9))),
    ("cheaper please", dict(cheaper=True)),
    ("something bigger", dict(bigger=True)),
    ("short stay", dict(tenure="short")),
    ("long let", dict(tenure="long")),
    ("I may need 2 bedrooms", dict(bedrooms=2, start_date=None)),
    ("under 5 minutes from the beach in Porto", dict(city="Porto", max_price=None)),
])
def test_understands(text, expected):
    u = understand(text, TODAY)
    for field, value in expected.items():
        assert getattr(u, field) == value, (field, vars(u))
    assert not u.problems


def test_a_date_that_does_not_exist_is_a_problem_not_an_exception():
    u = understand("from 31 feb in Lisbon", TODAY)
    assert u.city == "Lisbon" and u.problems and "31 feb" in u.problems[0]
    with pytest.raises(BadDate, match="ends before it starts"):
        find_dates(normalize("2026-12-10 to 2026-12-03"), TODAY)


def test_a_date_without_a_year_is_the_next_one():
    assert find_dates("3 nov", TODAY).start == D(2027, 11, 3)  # already past this year
    assert find_dates("26 nov", TODAY).start == D(2026, 11, 26)  # today counts


def test_routing_signal_separates_searches_from_chatter():
    assert understand("2 bed in Lisbon under 1200/month", TODAY).signal >= 0.8
    assert understand("what's the weather in Lisbon?", TODAY).signal < 0.5
    assert understand("I have a flat tyre", TODAY).signal < 0.5
    assert understand("rent a car in Porto", TODAY).signal < 0.5


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.lists(st.sampled_from(
    ["3", "-", "10", "dec", "from", "under", "€", "k", "a night", "/month", "bed", "lisbon", "31", "feb", "to",
     "between", "and", "t2", "studio", "pets", "no", "2026-13-45", "1.2", ",", "+", "at least"]),
    max_size=12).map(" ".join))
def test_never_raises_on_any_text(text):
    u = understand(text, TODAY)
    assert 0.0 <= u.signal <= 1.0
    if u.check_in and u.check_out:
        assert u.check_out > u.check_in
