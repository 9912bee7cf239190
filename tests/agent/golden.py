"""Golden sessions: checked-in multi-turn transcripts the agent must reproduce exactly.

Each file in tests/golden/agent/sessions/ holds the user's turns and, for each, the
assistant_message bodies the agent answered when the file was last reviewed.
`python -m tests.agent.golden --update` rewrites the answers from the current code
(review the diff before committing); the tests only ever read them.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden" / "agent"
SESSIONS_DIR = GOLDEN_DIR / "sessions"
FRAMES_DIR = GOLDEN_DIR / "frames"
GOLDEN_TODAY = dt.date(2026, 11, 26)
GOLDEN_LISTINGS = 5000
GOLDEN_SEED = 7
SENT_FIELDS = ("agent", "text", "actions")  # what the server sends of a body (it strips `meta`)


def load_sessions() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(SESSIONS_DIR.glob("*.json"))]


def sent_part(body: dict) -> dict:
    return {k: body[k] for k in SENT_FIELDS if k in body}


def replay(supervisor, session: dict) -> list[list[dict]]:
    """The bodies the supervisor answers to each of the session's turns, as the server would send them."""
    conversation = f"golden-{session['name']}"
    return [[sent_part(b) for b in supervisor.respond(conversation, turn["user"], session["version"])]
            for turn in session["turns"]]


def _update() -> None:
    from system.agent.agents.real_estate.listings import SeedConfig, seed_database
    from system.agent.supervisor import Supervisor

    with tempfile.TemporaryDirectory() as tmp:
        db = seed_database(Path(tmp) / "golden.sqlite3", SeedConfig(listings=GOLDEN_LISTINGS, seed=GOLDEN_SEED))
        for path in sorted(SESSIONS_DIR.glob("*.json")):
            session = json.loads(path.read_text())
            answers = replay(Supervisor(db, today=GOLDEN_TODAY), session)
            for turn, replies in zip(session["turns"], answers):
                turn["replies"] = replies
            path.write_text(json.dumps(session, indent=2, ensure_ascii=False) + "\n")
            print(f"updated {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite the answers in every golden session file")
    if parser.parse_args().update:
        _update()
