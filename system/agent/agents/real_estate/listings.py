"""The listings database: its schema, the seeded generator and the default copy.

The generator is deterministic (one `random.Random(seed)`, dates counted from a
fixed calendar start) so that a seed names a database exactly and golden sessions
replay the same listings on every machine. Everything is written with
`executemany` in one transaction: 100,000 listings take seconds.
"""
from __future__ import annotations

import datetime as dt
import os
import random
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from .geography import CITIES

SCHEMA_VERSION = "2"
DEFAULT_SEED = 7
DEFAULT_LISTINGS = 5000
DEFAULT_CALENDAR_START = dt.date(2026, 11, 1)
CALENDAR_DAYS = 365

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE listings (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    city TEXT NOT NULL,
    area TEXT NOT NULL,
    tenure TEXT NOT NULL CHECK (tenure IN ('short', 'long')),
    bedrooms INTEGER NOT NULL CHECK (bedrooms >= 0),
    price INTEGER NOT NULL CHECK (price > 0),
    currency TEXT NOT NULL,
    price_unit TEXT NOT NULL CHECK (price_unit IN ('night', 'month')),
    furnished INTEGER NOT NULL,
    pets INTEGER NOT NULL,
    available_from TEXT,            -- long lets: earliest move-in date (ISO)
    rating REAL NOT NULL
);
-- short stays: booked nights [check_in, check_out); a listing is free when no booking overlaps
CREATE TABLE bookings (
    listing_id INTEGER NOT NULL REFERENCES listings(id),
    check_in TEXT NOT NULL,
    check_out TEXT NOT NULL
);
"""

# Searches filter on place, tenure and bedrooms and rank by rating: each index walks one such
# slice already in rank order (rowid last = the id tie-break), with price in the index so a
# budget is checked before the row is read. A search stops after `limit` hits instead of sorting
# thousands of rows (p95 16 ms -> well under 1 ms on 100k listings, see tests/bench/bench_agent.py).
INDEXES = """
CREATE INDEX ix_rank_city_beds ON listings(city, tenure, bedrooms, rating DESC, price);
CREATE INDEX ix_rank_city ON listings(city, tenure, rating DESC, price, bedrooms);
CREATE INDEX ix_rank_area_beds ON listings(city, area, tenure, bedrooms, rating DESC, price);
CREATE INDEX ix_rank_area ON listings(city, area, tenure, rating DESC, price, bedrooms);
CREATE INDEX ix_rank_tenure ON listings(tenure, rating DESC, price, bedrooms);
CREATE INDEX ix_bookings_listing ON bookings(listing_id, check_in, check_out);
"""

_CITY_WEIGHTS = {"London": 1.6, "Paris": 1.4, "Berlin": 1.2, "Madrid": 1.1, "Barcelona": 1.1}
_BEDROOMS = ((0, 12), (1, 35), (2, 30), (3, 14), (4, 7), (5, 2))
_BEDROOM_FACTOR = {0: 0.75, 1: 1.0, 2: 1.35, 3: 1.7, 4: 2.1, 5: 2.5}
_ADJECTIVES = ("Bright", "Cosy", "Quiet", "Modern", "Renovated", "Spacious", "Charming", "Sunny", "Classic", "Airy")
_KINDS = ("flat", "apartment", "loft", "duplex", "townhouse")


class ListingsDbError(ValueError):
    """The listings database is missing, unreadable or not one of ours (message names the file)."""


@dataclass(frozen=True)
class SeedConfig:
    listings: int = DEFAULT_LISTINGS
    seed: int = DEFAULT_SEED
    calendar_start: dt.date = DEFAULT_CALENDAR_START
    short_share: float = 0.45  # fraction of listings that are nightly short stays


def _rows(cfg: SeedConfig) -> Iterator[tuple[tuple, list[tuple]]]:
    """(listing row, its bookings) for every listing, in id order."""
    rng = random.Random(cfg.seed)
    cities = list(CITIES)
    weights = [_CITY_WEIGHTS.get(c.name, 1.0) for c in cities]
    beds, bed_weights = zip(*_BEDROOMS)
    start = cfg.calendar_start
    for listing_id in range(1, cfg.listings + 1):
        city = rng.choices(cities, weights)[0]
        area, premium = rng.choice(city.areas)
        bedrooms = rng.choices(beds, bed_weights)[0]
        short = rng.random() < cfg.short_share
        noise = rng.lognormvariate(0.0, 0.22)
        factor = premium * _BEDROOM_FACTOR[bedrooms] * noise
        kind = "studio" if bedrooms == 0 else f"{bedrooms}-bedroom {rng.choice(_KINDS)}"
        title = f"{rng.choice(_ADJECTIVES)} {kind} in {area}"
        rating = round(rng.uniform(3.0, 5.0), 2)
        bookings: list[tuple] = []
        if short:
            price, unit, furnished = max(20, round(city.night * factor)), "night", 1
            pets = int(rng.random() < 0.25)
            available_from = None
            cursor = rng.randint(0, 20)
            for _ in range(rng.randint(0, 8)):
                nights = rng.randint(2, 10)
                if cursor + nights > CALENDAR_DAYS:
                    break
                check_in = start + dt.timedelta(days=cursor)
                bookings.append((listing_id, check_in.isoformat(),
                                 (check_in + dt.timedelta(days=nights)).isoformat()))
                cursor += nights + rng.randint(1, 40)
        else:
            price, unit = max(300, round(city.month * factor / 10) * 10), "month"
            furnished = int(rng.random() < 0.55)
            pets = int(rng.random() < 0.35)
            available_from = (start + dt.timedelta(days=rng.randint(0, 180))).isoformat()
        yield ((listing_id, title, city.name, area, "short" if short else "long", bedrooms, price,
                city.currency, unit, furnished, pets, available_from, rating), bookings)


def seed_database(path: str | Path, cfg: SeedConfig = SeedConfig(),
                  progress: Callable[[int, int], None] | None = None, chunk: int = 10_000) -> Path:
    """Write a fresh listings database at `path` (replacing any file there) atomically.

    The database is built in a temporary file next to `path` and renamed into place,
    so a reader (or a second process seeding the same default) never sees half a file.
    """
    if cfg.listings < 1:
        raise ValueError(f"listings: expected a positive count, got {cfg.listings}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        con = sqlite3.connect(tmp)
        try:
            con.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + SCHEMA)
            with con:
                con.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("schema_version", SCHEMA_VERSION), ("seed", str(cfg.seed)),
                    ("listings", str(cfg.listings)), ("calendar_start", cfg.calendar_start.isoformat()),
                    ("calendar_days", str(CALENDAR_DAYS)),
                ])
                rows = _rows(cfg)
                done = 0
                while done < cfg.listings:
                    batch = [next(rows) for _ in range(min(chunk, cfg.listings - done))]
                    con.executemany("INSERT INTO listings VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                    [listing for listing, _ in batch])
                    con.executemany("INSERT INTO bookings VALUES (?,?,?)",
                                    [b for _, bookings in batch for b in bookings])
                    done += len(batch)
                    if progress:
                        progress(done, cfg.listings)
                con.executescript(INDEXES)
            con.execute("ANALYZE")
            con.commit()
        finally:
            con.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stormbench"


def default_db_path() -> Path:
    return cache_dir() / f"listings-seed{DEFAULT_SEED}-n{DEFAULT_LISTINGS}-v{SCHEMA_VERSION}.sqlite3"


def ensure_default_db() -> Path:
    """The small default database, built once per machine (well under 2 s) and then reused."""
    path = default_db_path()
    if not path.exists():
        try:
            seed_database(path)
        except OSError:  # read-only home: fall back to the temp dir
            path = Path(tempfile.gettempdir()) / "stormbench" / path.name
            if not path.exists():
                seed_database(path)
    return path


def open_readonly(path: str | Path) -> sqlite3.Connection:
    """A read-only connection, after checking that the file is a listings database."""
    path = Path(path)
    if not path.is_file():
        raise ListingsDbError(f"{path}: no such listings database; create it with "
                              f"`stormbench seed-db --db {path}`")
    try:
        con = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ListingsDbError(f"{path}: not a stormbench listings database ({exc}); "
                              f"recreate it with `stormbench seed-db --db {path}`") from exc
    if row is None or row[0] != SCHEMA_VERSION:
        con.close()
        raise ListingsDbError(f"{path}: listings schema version {row[0] if row else 'missing'!s}, "
                              f"expected {SCHEMA_VERSION}; recreate it with `stormbench seed-db --db {path}`")
    return con
