"""`stormbench seed-db`: generate the listings database for the real-estate agent."""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

from system.errors import UsageError

from .agents.real_estate.listings import DEFAULT_CALENDAR_START, DEFAULT_SEED, SeedConfig, seed_database

HELP = "generate the listings database for the real-estate agent"
MAX_LISTINGS = 5_000_000


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listings", type=int, default=100_000, metavar="N",
                        help="number of listings to generate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="random seed; the same seed and count give the same database (default: %(default)s)")
    parser.add_argument("--db", type=Path, default=Path("listings.sqlite3"), metavar="PATH",
                        help="where to write the SQLite file; an existing file is replaced (default: %(default)s)")
    parser.add_argument("--calendar-start", default=DEFAULT_CALENDAR_START.isoformat(), metavar="DATE",
                        help="first day of the availability calendars and move-in dates, ISO (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.listings <= MAX_LISTINGS:
        raise UsageError(f"--listings: expected 1..{MAX_LISTINGS:,}, got {args.listings}")
    try:
        start = dt.date.fromisoformat(args.calendar_start)
    except ValueError:
        raise UsageError(f"--calendar-start: expected an ISO date such as 2026-11-01, got {args.calendar_start!r}")
    if args.db.is_dir():
        raise UsageError(f"--db {args.db}: is a directory; expected a file path such as {args.db / 'listings.sqlite3'}")
    began = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if not args.quiet:
            print(f"\rseed-db: {done:,}/{total:,} listings", end="", file=sys.stderr, flush=True)

    try:
        seed_database(args.db, SeedConfig(listings=args.listings, seed=args.seed, calendar_start=start), progress)
    except OSError as exc:
        raise UsageError(f"--db {args.db}: cannot write ({exc.strerror or exc})")
    if not args.quiet:
        print(file=sys.stderr)
    print(f"wrote {args.listings:,} listings (seed {args.seed}) to {args.db} in {time.perf_counter() - began:.1f}s")
    return 0
