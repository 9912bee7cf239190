"""The agent's deterministic tools over the listings database.

`search_listings`, `get_listing` and `check_availability` are the only way the
agent reads listings; each is one indexed query. Connections are per thread
(the server calls the agent from a pool of worker threads) and read-only.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from .listings import open_readonly

Tenure = str  # "short" (priced per night) | "long" (priced per month)
UNIT_OF_TENURE = {"short": "night", "long": "month"}


@dataclass(frozen=True)
class Criteria:
    """What the user is looking for; every field optional until the policy needs it."""

    city: str | None = None
    area: str | None = None
    tenure: Tenure | None = None
    bedrooms: int | None = None      # exactly this many
    min_bedrooms: int | None = None  # at least this many
    max_price: int | None = None     # in the tenure's unit (per night / per month)
    min_price: int | None = None
    check_in: dt.date | None = None
    check_out: dt.date | None = None
    move_in: dt.date | None = None
    pets: bool | None = None         # True: must accept pets
    furnished: bool | None = None


@dataclass(frozen=True)
class Listing:
    id: int
    title: str
    city: str
    area: str
    tenure: Tenure
    bedrooms: int
    price: int
    currency: str
    price_unit: str
    furnished: bool
    pets: bool
    available_from: dt.date | None
    rating: float


@dataclass(frozen=True)
class Availability:
    listing_id: int
    available: bool
    reason: str


_COLUMNS = ("id, title, city, area, tenure, bedrooms, price, currency, price_unit, furnished, pets, "
            "available_from, rating")


def _listing(row: tuple) -> Listing:
    (lid, title, city, area, tenure, bedrooms, price, currency, unit, furnished, pets, avail, rating) = row
    return Listing(lid, title, city, area, tenure, bedrooms, price, currency, unit, bool(furnished),
                   bool(pets), dt.date.fromisoformat(avail) if avail else None, rating)


class ListingTools:
    def __init__(self, db_path: str | Path):
        self.db_path = Path(db_path)
        open_readonly(self.db_path).close()  # fail now, with the file named, not in a worker thread
        self._local = threading.local()

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = open_readonly(self.db_path)
        return con

    def search_listings(self, criteria: Criteria, limit: int = 5) -> list[Listing]:
        """The best-rated listings matching every set field of `criteria`, at most `limit`."""
        where, params = [], []
        for column, value in (("city", criteria.city), ("area", criteria.area), ("tenure", criteria.tenure),
                              ("bedrooms", criteria.bedrooms)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        # "+bedrooms": a range on bedrooms must not pick the index whose rank order it would break
        for clause, value in (("+bedrooms >= ?", criteria.min_bedrooms), ("price <= ?", criteria.max_price),
                              ("price >= ?", criteria.min_price)):
            if value is not None:
                where.append(clause)
                params.append(value)
        if criteria.pets:
            where.append("pets = 1")
        if criteria.furnished is not None:
            where.append("furnished = ?")
            params.append(int(criteria.furnished))
        if criteria.move_in is not None:
            where.append("available_from <= ?")
            params.append(criteria.move_in.isoformat())
        if criteria.check_in is not None and criteria.check_out is not None:
            where.append("NOT EXISTS (SELECT 1 FROM bookings b WHERE b.listing_id = listings.id "
                         "AND b.check_in < ? AND b.check_out > ?)")
            params += [criteria.check_out.isoformat(), criteria.check_in.isoformat()]
        sql = f"SELECT {_COLUMNS} FROM listings"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY rating DESC, price, id LIMIT ?"
        return [_listing(r) for r in self._con().execute(sql, (*params, limit))]

    def get_listing(self, listing_id: int) -> Listing | None:
        row = self._con().execute(f"SELECT {_COLUMNS} FROM listings WHERE id = ?", (listing_id,)).fetchone()
        return _listing(row) if row else None

    def check_availability(self, listing_id: int, check_in: dt.date, check_out: dt.date) -> Availability:
        """Whether a stay (short) or a move-in on `check_in` (long) fits the listing's calendar."""
        if check_out <= check_in:
            raise ValueError(f"check_out ({check_out}) must be after check_in ({check_in})")
        listing = self.get_listing(listing_id)
        if listing is None:
            return Availability(listing_id, False, "no such listing")
        if listing.tenure == "long":
            ok = listing.available_from is not None and listing.available_from <= check_in
            return Availability(listing_id, ok, "free to move in" if ok else
                                f"available from {listing.available_from.isoformat()}")
        clash = self._con().execute(
            "SELECT check_in, check_out FROM bookings WHERE listing_id = ? AND check_in < ? AND check_out > ? "
            "ORDER BY check_in LIMIT 1", (listing_id, check_out.isoformat(), check_in.isoformat())).fetchone()
        if clash:
            return Availability(listing_id, False, f"booked {clash[0]} to {clash[1]}")
        return Availability(listing_id, True, "free for those nights")
