"""Decisions and listings as assistant_message bodies (contract v1.1).

v1.1 only adds to v1.0 (tenure, price units, dates, quick replies), so the same
body serves a v1.0 client, which ignores what it does not know. Wording is fixed
so golden sessions can compare text exactly.
"""
from __future__ import annotations

import datetime as dt

from .geography import CITIES, CITY_BY_NAME
from .policy import Ask, Clarify
from .tools import Criteria, Listing, UNIT_OF_TENURE

AGENT = "real_estate"
_SYMBOL = {"EUR": "€", "GBP": "£"}
_TENURE_WORDS = {"short": "short stays", "long": "long lets"}


def money(amount: int, currency: str, unit: str | None = None) -> str:
    text = f"{_SYMBOL.get(currency, currency + ' ')}{amount:,}"
    return f"{text}/{unit}" if unit else text


def _day(d: dt.date, year: bool = False) -> str:
    """"3 Dec" / "3 Dec 2026" (strftime's %-d is not portable)."""
    return f"{d.day} {d:%b} {d.year}" if year else f"{d.day} {d:%b}"


def _body(text: str, actions: list[dict] | None = None) -> dict:
    body = {"agent": AGENT, "text": text}
    if actions:
        body["actions"] = actions
    return body


def ask(decision: Ask) -> dict:
    if decision.slot == "tenure":
        return _body("Are you after a short stay (priced per night) or a long let (priced per month)?", [
            {"type": "quick_replies", "question": "tenure",
             "options": [{"label": "short stay", "value": "short stay"}, {"label": "long let", "value": "long let"}]}])
    if decision.slot == "place":
        names = [c.name for c in CITIES]
        return _body(f"Which city should I search? I have listings in {', '.join(names[:-1])} and {names[-1]}.", [
            {"type": "quick_replies", "question": "place", "options": [{"label": n, "value": n} for n in names]}])
    return _body(f"Until when would you stay? You check in on {_day(decision.criteria.check_in, year=True)}; "
                 "tell me the check-out date or the number of nights.")


def clarify(decision: Clarify) -> dict:
    if decision.reason == "bad_date":
        return _body(f"Sorry, I could not read that date: {decision.detail}. Try something like '3-10 Dec'.")
    if decision.reason == "nothing_to_refine":
        return _body("Tell me what to change: a budget ('cheaper', 'under 1000/month'), "
                     "bedrooms ('with 3 bedrooms'), an area or dates.")
    return _body("I can search rentals for you. Tell me where and what you need, e.g. 'a 2-bedroom flat "
                 "in Lisbon under 1200/month' or 'somewhere in Porto 3-10 Dec under 90 a night'.")


def describe(c: Criteria) -> str:
    """One line a person can check: what the search was for."""
    place = f"{c.area}, {c.city}" if c.area else c.city
    parts = [f"{_TENURE_WORDS[c.tenure]} in {place}"]
    if c.bedrooms is not None:
        parts.append("studios" if c.bedrooms == 0 else f"{c.bedrooms} bedroom{'s' * (c.bedrooms != 1)}")
    elif c.min_bedrooms is not None:
        parts.append(f"{c.min_bedrooms}+ bedrooms")
    currency, unit = CITY_BY_NAME[c.city].currency, UNIT_OF_TENURE[c.tenure]
    if c.max_price is not None and c.min_price is not None:
        parts.append(f"{money(c.min_price, currency)}-{money(c.max_price, currency, unit)}")
    elif c.max_price is not None:
        parts.append(f"up to {money(c.max_price, currency, unit)}")
    elif c.min_price is not None:
        parts.append(f"from {money(c.min_price, currency, unit)}")
    if c.check_in and c.check_out:
        parts.append(f"{_day(c.check_in)} to {_day(c.check_out, year=True)}")
    if c.move_in:
        parts.append(f"moving in by {_day(c.move_in, year=True)}")
    if c.pets:
        parts.append("pets welcome")
    if c.furnished is not None:
        parts.append("furnished" if c.furnished else "unfurnished")
    return ", ".join(parts)


def _card(x: Listing) -> dict:
    card = {"id": f"L{x.id}", "title": x.title, "city": x.city, "area": x.area, "bedrooms": x.bedrooms,
            "price": {"amount": x.price, "currency": x.currency, "unit": x.price_unit}, "tenure": x.tenure,
            "furnished": x.furnished, "pets": x.pets, "rating": x.rating}
    if x.available_from is not None:
        card["move_in"] = x.available_from.isoformat()
    return card


def _criteria(c: Criteria) -> dict:
    out: dict = {"tenure": c.tenure, "city": c.city}
    if c.area:
        out["area"] = c.area
    if c.bedrooms is not None:
        out["bedrooms"] = c.bedrooms
    if c.min_bedrooms is not None:
        out["min_bedrooms"] = c.min_bedrooms
    if c.max_price is not None or c.min_price is not None:
        budget = {"currency": CITY_BY_NAME[c.city].currency, "unit": UNIT_OF_TENURE[c.tenure]}
        if c.min_price is not None:
            budget["min"] = c.min_price
        if c.max_price is not None:
            budget["max"] = c.max_price
        out["budget"] = budget
    if c.check_in and c.check_out:
        out["dates"] = {"check_in": c.check_in.isoformat(), "check_out": c.check_out.isoformat()}
    if c.move_in:
        out["move_in"] = c.move_in.isoformat()
    if c.pets is not None:
        out["pets"] = c.pets
    if c.furnished is not None:
        out["furnished"] = c.furnished
    return out


def results(c: Criteria, listings: list[Listing], refine: bool) -> dict:
    what = describe(c)
    if not listings:
        return _body(f"I found nothing for {what}. Try a higher budget, fewer bedrooms or another area.")
    lead = "Updated: " if refine else ""
    action = {"type": "show_listings", "listings": [_card(x) for x in listings], "criteria": _criteria(c)}
    cheapest = min(listings, key=lambda x: x.price)
    return _body(f"{lead}Top {len(listings)} for {what}. From "
                 f"{money(cheapest.price, cheapest.currency, cheapest.price_unit)}.", [action])
