"""Fixtures for the agent suite: one seeded listings database per session, a pinned today."""
from __future__ import annotations

import datetime as dt

import pytest

from system.agent.agents.real_estate.listings import SeedConfig, seed_database
from system.agent.supervisor import Supervisor

from .golden import GOLDEN_LISTINGS, GOLDEN_SEED, GOLDEN_TODAY


@pytest.fixture(scope="session")
def listings_db(tmp_path_factory):
    """The golden sessions' database: 5,000 listings, seed 7 (the same as the built-in default)."""
    return seed_database(tmp_path_factory.mktemp("listings") / "listings.sqlite3",
                         SeedConfig(listings=GOLDEN_LISTINGS, seed=GOLDEN_SEED))


@pytest.fixture
def supervisor(listings_db):
    return Supervisor(listings_db, today=GOLDEN_TODAY)


@pytest.fixture
def today() -> dt.date:
    return GOLDEN_TODAY
