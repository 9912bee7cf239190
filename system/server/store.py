"""The server's SQLite database (WAL): the delivery log, conversation owners, refresh-token
families, forced-expiry generations and the signing secret.

Everything a restarted server needs lives here, so a server restarted on the same file keeps
accepting the tokens and refresh families it issued and continues every conversation's seq.
All calls come from the event loop thread; each is a short statement, committed at once.
"""
from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from system.server.delivery import LoggedMessage, kept_after, logged, replay
from system.server.tokens import RefreshRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL UNIQUE,
    t REAL NOT NULL, frame TEXT NOT NULL, PRIMARY KEY (conversation_id, seq));
CREATE TABLE IF NOT EXISTS refresh_families (
    family TEXT PRIMARY KEY, user TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    digest TEXT PRIMARY KEY, family TEXT NOT NULL, expires_at REAL NOT NULL,
    used INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS user_generations (user TEXT PRIMARY KEY, gen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS conversations (conversation_id TEXT PRIMARY KEY, owner TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner);
CREATE TABLE IF NOT EXISTS users (user TEXT PRIMARY KEY, digest TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS user_messages (
    conversation_id TEXT NOT NULL, id TEXT NOT NULL, t REAL NOT NULL, answered INTEGER NOT NULL,
    text TEXT, v TEXT);
CREATE INDEX IF NOT EXISTS user_messages_by_id ON user_messages (conversation_id, id);
CREATE TABLE IF NOT EXISTS rate_buckets (
    limiter TEXT NOT NULL, key TEXT NOT NULL, tokens REAL NOT NULL, last REAL NOT NULL,
    full_at REAL NOT NULL, PRIMARY KEY (limiter, key));
"""
#: columns added to a table after its first release: (table, column, declaration), added to an older file
_ADDED_COLUMNS = (("user_messages", "text", "TEXT"), ("user_messages", "v", "TEXT"))


@dataclass(frozen=True)
class Receipt:
    """One receipt of a user message: what the agent needs to answer it (`text`, `v`) and the row
    (`rowid`) its answer marks."""

    rowid: int
    conversation_id: str
    id: str
    text: str
    v: str


class Store:
    """`history_limit`: messages (and user-message receipts) kept per conversation
    (`system.server.delivery.kept_after`); `conversations_per_user`: conversations one user may open.
    The two bound the rows one user can make the server keep (None: unbounded)."""

    def __init__(self, path: Path, *, history_limit: int | None = None,
                 conversations_per_user: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        for table, column, declaration in _ADDED_COLUMNS:
            if column not in {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        self._last_seq: dict[str, int] = {}
        self._generations: dict[str | None, int] = {}  # None: the global one; this process is the only writer
        self._owners: dict[str, str] = {}  # read through: a reconnect costs no write transaction
        self._owned: dict[str, int] = {}  # conversations per user, read through
        self.history_limit = history_limit
        self.conversations_per_user = conversations_per_user
        self._revoked: set[str] = set()  # refresh families known revoked (revocation is final)

    def close(self) -> None:
        self.db.close()

    # settings -------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", (key, value))

    def secret(self) -> str:
        """The persisted signing secret, created on first use."""
        value = self.setting("jwt_secret")
        if value is None:
            value = secrets.token_urlsafe(48)
            self.db.execute("INSERT OR IGNORE INTO settings(key, value) VALUES ('jwt_secret', ?)", (value,))
            value = self.setting("jwt_secret")
        return value

    # forced expiry generations ------------------------------------------
    def global_generation(self) -> int:
        if None not in self._generations:
            self._generations[None] = int(self.setting("global_generation") or 0)
        return self._generations[None]

    def generations(self, user: str) -> tuple[int, int]:
        """(global, the user's): what an access token minted now carries (`system.server.tokens`)."""
        return self.global_generation(), self.user_generation(user)

    def bump_global_generation(self) -> int:
        gen = self.global_generation() + 1
        self.set_setting("global_generation", str(gen))
        self._generations[None] = gen
        return gen

    def user_generation(self, user: str) -> int:
        if user not in self._generations:
            row = self.db.execute("SELECT gen FROM user_generations WHERE user=?", (user,)).fetchone()
            self._generations[user] = row[0] if row else 0
        return self._generations[user]

    def bump_user_generation(self, user: str) -> int:
        self.db.execute(
            "INSERT INTO user_generations(user, gen) VALUES (?, 1) "
            "ON CONFLICT(user) DO UPDATE SET gen = gen + 1", (user,))
        self._generations.pop(user, None)
        return self.user_generation(user)

    # refresh tokens ---------------------------------------------------------
    def add_refresh(self, digest: str, family: str, user: str, expires_at: float) -> None:
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO refresh_families(family, user) VALUES (?, ?)", (family, user))
            self.db.execute(
                "INSERT INTO refresh_tokens(digest, family, expires_at) VALUES (?, ?, ?)",
                (digest, family, expires_at))

    def refresh_record(self, digest: str) -> RefreshRecord | None:
        row = self.db.execute(
            "SELECT t.family, f.user, t.expires_at, t.used, f.revoked FROM refresh_tokens t "
            "JOIN refresh_families f USING (family) WHERE t.digest=?", (digest,)).fetchone()
        return RefreshRecord(row[0], row[1], row[2], bool(row[3]), bool(row[4])) if row else None

    def mark_refresh_used(self, digest: str) -> bool:
        """True when this call spent the token (False: it was already spent)."""
        cur = self.db.execute("UPDATE refresh_tokens SET used=1 WHERE digest=? AND used=0", (digest,))
        return cur.rowcount == 1

    def revoke_family(self, family: str) -> None:
        self.db.execute("UPDATE refresh_families SET revoked=1 WHERE family=?", (family,))
        self._revoked.add(family)

    def family_revoked(self, family: str) -> bool:
        """Read through a cache of revoked families: a handshake costs no query once known."""
        if family not in self._revoked:
            row = self.db.execute("SELECT revoked FROM refresh_families WHERE family=?", (family,)).fetchone()
            if row is None or not row[0]:
                return False
            self._revoked.add(family)
        return True

    def prune_refresh(self, now: float) -> int:
        """Delete refresh tokens expired before `now`, and the families left without any: every
        access token of such a family was issued with one of those refresh tokens and expired
        before it (access tokens live shorter), so a revoked one need not be remembered either."""
        with self.db:
            gone = self.db.execute("DELETE FROM refresh_tokens WHERE expires_at <= ?", (now,)).rowcount
            self.db.execute("DELETE FROM refresh_families WHERE family NOT IN (SELECT family FROM refresh_tokens)")
        self._revoked.clear()
        return gone

    def refresh_rows(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM refresh_tokens").fetchone()[0]

    # users ------------------------------------------------------------------
    def set_users(self, digests: dict[str, str]) -> None:
        """Create the users, or replace their secrets' digests."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO users(user, digest) VALUES (?, ?)", digests.items())

    def user_digest(self, user: str) -> str | None:
        row = self.db.execute("SELECT digest FROM users WHERE user=?", (user,)).fetchone()
        return row[0] if row else None

    # conversation ownership ----------------------------------------------
    def owner(self, conversation_id: str) -> str | None:
        if conversation_id not in self._owners:
            row = self.db.execute("SELECT owner FROM conversations WHERE conversation_id=?",
                                  (conversation_id,)).fetchone()
            if row is None:
                return None
            self._owners[conversation_id] = row[0]
        return self._owners[conversation_id]

    def owned(self, user: str) -> int:
        """How many conversations `user` has opened."""
        if user not in self._owned:
            self._owned[user] = self.db.execute("SELECT COUNT(*) FROM conversations WHERE owner=?",
                                                (user,)).fetchone()[0]
        return self._owned[user]

    def claim(self, conversation_id: str, user: str) -> str | None:
        """The conversation's owner: `user` when this call opened it first, else whoever did; None
        when it is new and `user` has already opened `conversations_per_user` (nothing is written)."""
        owner = self.owner(conversation_id)
        if owner is None:
            if self.conversations_per_user is not None and self.owned(user) >= self.conversations_per_user:
                return None
            self.db.execute("INSERT INTO conversations(conversation_id, owner) VALUES (?, ?)", (conversation_id, user))
            owner = self._owners[conversation_id] = user
            self._owned[user] = self.owned(user) + 1
        return owner

    # user messages (the other direction of the ledger) ----------------------
    def receive(self, conversation_id: str, message_id: str, t: float, text: str, version: str) -> Receipt:
        """Log the receipt of a user message, unanswered (committed before this returns: it survives
        a crash, and a server started on this file answers it: `unanswered`)."""
        cur = self.db.execute(
            "INSERT INTO user_messages(conversation_id, id, t, answered, text, v) VALUES (?, ?, ?, 0, ?, ?)",
            (conversation_id, message_id, t, text, version))
        return Receipt(cur.lastrowid, conversation_id, message_id, text, version)

    def answered(self, conversation_id: str, message_id: str) -> bool:
        """Whether some receipt of this message id has been answered (a resend of it is not)."""
        return self.db.execute(
            "SELECT 1 FROM user_messages WHERE conversation_id=? AND id=? AND answered=1 LIMIT 1",
            (conversation_id, message_id)).fetchone() is not None

    def answer(self, receipt: Receipt, replies: Iterable[tuple[str, float, dict]]) -> list[LoggedMessage]:
        """Log the replies `(message_id, t, body)` to `receipt` and mark it answered, in one
        transaction: a crash leaves the message either answered or still to be answered, never
        half of it, nor answered twice."""
        try:
            with self.db:
                out = [self.append(receipt.conversation_id, message_id, t, body) for message_id, t, body in replies]
                self.db.execute("UPDATE user_messages SET answered=1 WHERE rowid=?", (receipt.rowid,))
                if self.history_limit is not None:  # the last answered receipts; an unanswered one is owed
                    self.db.execute(
                        "DELETE FROM user_messages WHERE rowid IN (SELECT rowid FROM user_messages WHERE"
                        " conversation_id=? AND answered=1 ORDER BY rowid DESC LIMIT -1 OFFSET ?)",
                        (receipt.conversation_id, self.history_limit))
        except BaseException:
            self._last_seq.pop(receipt.conversation_id, None)  # read again: a rolled-back seq is given again
            raise
        return out

    def unanswered(self, limit: int) -> list[Receipt]:
        """Up to `limit` messages received and never answered, oldest first (each by its first
        receipt): what a server that crashed between `ack` and answer still owes."""
        rows = self.db.execute(
            "SELECT u.rowid, u.conversation_id, u.id, u.text, u.v FROM user_messages u JOIN ("
            " SELECT MIN(rowid) AS first FROM user_messages WHERE text IS NOT NULL GROUP BY conversation_id, id"
            " HAVING MAX(answered) = 0 ORDER BY first LIMIT ?) ON u.rowid = first ORDER BY u.rowid", (limit,))
        return [Receipt(*row) for row in rows]

    def user_messages(self) -> list[tuple[str, str, float, bool]]:
        """Every receipt: (conversation_id, id, t, answered), in the order received."""
        rows = self.db.execute("SELECT conversation_id, id, t, answered FROM user_messages ORDER BY rowid")
        return [(c, i, t, bool(a)) for c, i, t, a in rows]

    # rate limits ------------------------------------------------------------
    def save_buckets(self, limiter: str, rows: list[tuple[str, float, float, float]], now: float) -> None:
        """Store `(key, tokens, last, full_at)` buckets and delete those full by `now`."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO rate_buckets(limiter, key, tokens, last, full_at) VALUES (?, ?, ?, ?, ?)",
                [(limiter, *row) for row in rows])
            self.db.execute("DELETE FROM rate_buckets WHERE limiter=? AND full_at <= ?", (limiter, now))

    def buckets(self, limiter: str, now: float) -> list[tuple[str, float, float]]:
        """The stored buckets of `limiter` not full by `now`: (key, tokens, last)."""
        return [tuple(row) for row in self.db.execute(
            "SELECT key, tokens, last FROM rate_buckets WHERE limiter=? AND full_at > ? ORDER BY last",
            (limiter, now))]

    # delivery log ---------------------------------------------------------
    def last_seq(self, conversation_id: str) -> int:
        if conversation_id not in self._last_seq:
            row = self.db.execute(
                "SELECT MAX(seq) FROM messages WHERE conversation_id=?", (conversation_id,)).fetchone()
            self._last_seq[conversation_id] = row[0] or 0
        return self._last_seq[conversation_id]

    def append(self, conversation_id: str, message_id: str, t: float, body: dict) -> LoggedMessage:
        """Give the next seq of the conversation and log the frame (in the caller's transaction,
        if any); the frame gets its seq here."""
        m = logged(conversation_id, self.last_seq(conversation_id), message_id, t, body)
        self.db.execute(
            "INSERT INTO messages(conversation_id, seq, id, t, frame) VALUES (?, ?, ?, ?, ?)",
            (conversation_id, m.seq, message_id, t, json.dumps(m.frame, separators=(",", ":"))))
        self._last_seq[conversation_id] = m.seq
        if self.history_limit is not None and (pruned := kept_after(m.seq, self.history_limit)):
            self.db.execute("DELETE FROM messages WHERE conversation_id=? AND seq<=?", (conversation_id, pruned))
        return m

    def messages_after(self, conversation_id: str, last_seq: int, limit: int = -1) -> list[LoggedMessage]:
        """The logged messages with seq > last_seq, in order; at most `limit` (-1: all)."""
        rows = self.db.execute(
            "SELECT conversation_id, seq, id, t, frame FROM messages "
            "WHERE conversation_id=? AND seq>? ORDER BY seq LIMIT ?", (conversation_id, last_seq, limit)).fetchall()
        return replay((LoggedMessage(c, s, i, t, json.loads(f)) for c, s, i, t, f in rows), last_seq)

    def delivery_log(self, since_seq: dict[str, int] | None = None) -> list[LoggedMessage]:
        """Every logged message (without frames), skipping seq <= since_seq[conversation]."""
        since_seq = since_seq or {}
        rows = self.db.execute(
            "SELECT conversation_id, seq, id, t FROM messages ORDER BY t, conversation_id, seq").fetchall()
        return [LoggedMessage(c, s, i, t, {}) for c, s, i, t in rows if s > since_seq.get(c, 0)]
