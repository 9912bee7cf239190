"""The per-conversation search policy: a sans-IO state machine.

It sees only what a message said (an `Understanding`) and what a search found;
it decides what to do next and never touches the database or the clock, so the
same object answers in the server, in tests and in the benchmark.

    IDLE ──message──► (tenure unknown) TENURE_DECIDE ──"short stay"/"long let"──┐
      │                                                                        ▼
      ├──────────────► (place unknown) PLACE_DECIDE ──"in Porto"──────────► SEARCH ──► RESULTS
      └──────────────► (stay without an end) DATES_DECIDE ──"for 3 nights"──┘   ▲          │
                                                                                └─REFINE───┘
    A slot is asked only while missing, in that order; REFINE is any message with criteria in
    RESULTS ("cheaper", "with 3 bedrooms"); a message naming a place and several criteria starts over.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from dataclasses import dataclass

from .geography import CITY_BY_NAME
from .tools import Criteria, Listing, UNIT_OF_TENURE
from .understand import Understanding

CHEAPER_FACTOR = 0.85  # "cheaper" with nothing shown yet lowers the budget by 15%
FRESH_SEARCH_FIELDS = 3  # a message naming a place and this many criteria starts a new search


class State(enum.Enum):
    IDLE = "idle"
    TENURE_DECIDE = "tenure_decide"
    PLACE_DECIDE = "place_decide"
    DATES_DECIDE = "dates_decide"
    SEARCH = "search"
    RESULTS = "results"


_SLOT_OF_STATE = {State.TENURE_DECIDE: "tenure", State.PLACE_DECIDE: "place", State.DATES_DECIDE: "check_out"}


@dataclass(frozen=True)
class Ask:
    """Ask the user for one missing slot: tenure, place or check_out."""
    slot: str
    criteria: Criteria


@dataclass(frozen=True)
class Search:
    criteria: Criteria
    refine: bool  # a follow-up on shown results, not a first search


@dataclass(frozen=True)
class Clarify:
    """Say what could not be understood; the state does not change."""
    reason: str  # unparsed | bad_date | nothing_to_refine
    detail: str = ""


Decision = Ask | Search | Clarify


@dataclass
class SearchPolicy:
    state: State = State.IDLE
    criteria: Criteria = dataclasses.field(default_factory=Criteria)
    shown: tuple[Listing, ...] = ()

    def handle(self, u: Understanding) -> Decision:
        if u.problems:
            return Clarify("bad_date", "; ".join(u.problems))
        if not u.has_criteria:
            if self.state is State.RESULTS:
                return Clarify("nothing_to_refine")
            if self.state in _SLOT_OF_STATE:  # still waiting for that answer: ask again
                return Ask(_SLOT_OF_STATE[self.state], self.criteria)
            return Clarify("unparsed")
        refine = self.state is State.RESULTS
        self.criteria = self._merge(u)
        return self._next(refine)

    def results(self, listings: list[Listing]) -> None:
        """Feed back what the Search decision found."""
        if self.state is not State.SEARCH:
            raise RuntimeError(f"results() in state {self.state.value}; expected search")
        self.shown = tuple(listings)
        self.state = State.RESULTS

    def _next(self, refine: bool) -> Decision:
        c = self.criteria
        if c.tenure is None:
            self.state = State.TENURE_DECIDE
            return Ask("tenure", c)
        if c.city is None:
            self.state = State.PLACE_DECIDE
            return Ask("place", c)
        if c.tenure == "short" and c.check_in is not None and c.check_out is None:
            self.state = State.DATES_DECIDE
            return Ask("check_out", c)
        self.state = State.SEARCH
        return Search(c, refine)

    def _merge(self, u: Understanding) -> Criteria:
        tenure = u.tenure
        fresh = self.state is State.RESULTS and u.city is not None and (
            (tenure is not None and tenure != self.criteria.tenure) or _fields(u) >= FRESH_SEARCH_FIELDS)
        c = Criteria() if fresh else self.criteria
        changes: dict = {}
        if tenure is not None and tenure != c.tenure:
            changes.update(tenure=tenure, check_in=None, check_out=None, move_in=None)
            if c.max_price is not None or c.min_price is not None:  # a budget per night means nothing per month
                changes.update(max_price=None, min_price=None)
        tenure = tenure or c.tenure
        if u.city is not None:
            changes.update(city=u.city, area=u.area)
            if c.city is not None and CITY_BY_NAME[c.city].currency != CITY_BY_NAME[u.city].currency:
                changes.update(max_price=None, min_price=None)  # a budget in euros says nothing in pounds
        if u.bedrooms is not None:
            changes.update(bedrooms=u.bedrooms, min_bedrooms=None)
        elif u.min_bedrooms is not None:
            changes.update(bedrooms=None, min_bedrooms=u.min_bedrooms)
        elif u.bigger:
            current = c.bedrooms if c.bedrooms is not None else (c.min_bedrooms or 0)
            shown = max((x.bedrooms for x in self.shown), default=current)
            changes.update(bedrooms=None, min_bedrooms=max(current, shown) + 1)
        unit_ok = u.price_unit is None or tenure is None or u.price_unit == UNIT_OF_TENURE[tenure]
        if unit_ok and (u.max_price is not None or u.min_price is not None):
            changes.update(max_price=u.max_price, min_price=u.min_price)
        elif u.cheaper:
            if self.shown:  # cheaper than everything shown
                changes.update(max_price=max(1, min(x.price for x in self.shown) - 1))
            elif c.max_price is not None:
                changes.update(max_price=max(1, int(c.max_price * CHEAPER_FACTOR)))
        if u.check_in is not None:
            changes.update(check_in=u.check_in, check_out=u.check_out, move_in=None)
        elif u.start_date is not None:
            if tenure == "short":
                changes.update(check_in=u.start_date, check_out=None)
            else:
                changes.update(move_in=u.start_date, check_in=None, check_out=None)
        if u.pets is not None:
            changes.update(pets=u.pets)
        if u.furnished is not None:
            changes.update(furnished=u.furnished)
        merged = dataclasses.replace(c, **changes)
        if self.state is State.DATES_DECIDE and merged.check_out is None and c.check_in:
            # the answer to "until when?": a single date ends the stay, "for 3 nights" counts from check-in
            if u.start_date and u.start_date > c.check_in:
                merged = dataclasses.replace(merged, check_in=c.check_in, check_out=u.start_date)
            elif u.nights:
                merged = dataclasses.replace(merged, check_out=c.check_in + dt.timedelta(days=u.nights))
        return merged


def _fields(u: Understanding) -> int:
    """How many criteria a message names: "2 bed in Porto under 1000/month" is three."""
    return sum(v is not None for v in (u.city, u.tenure, u.max_price or u.min_price,
                                       u.bedrooms if u.bedrooms is not None else u.min_bedrooms,
                                       u.check_in or u.start_date, u.pets, u.furnished))
