"""Credentials: a user needs its secret to get a token (`POST /auth/token {"user", "secret"}`).

The server's admin API creates users and shows each secret once (`POST /admin/users`), so
whoever runs a fleet provisions its users before the clients start, in a few calls, and hands
each client its own secret. Conversation ids are not guessable either (`conversation_id`): a
conversation belongs to the first user to open it, so a predictable id could be taken first.
"""
from __future__ import annotations

import random
import secrets

import aiohttp

CHUNK = 1000  # users per admin call (the server's limit)


async def provision(http: aiohttp.ClientSession, http_url: str, admin_key: str, users: list[str]) -> dict[str, str]:
    """Create `users` on the server (or give them new secrets): user -> secret."""
    issued: dict[str, str] = {}
    for start in range(0, len(users), CHUNK):
        async with http.post(f"{http_url.rstrip('/')}/admin/users", json={"users": users[start:start + CHUNK]},
                             headers={"X-Admin-Key": admin_key}) as r:
            if r.status != 200:
                raise ProvisionError(f"{http_url}/admin/users answered HTTP {r.status}: {await r.text()}")
            issued.update((await r.json())["users"])
    return issued


async def provision_once(http_url: str, admin_key: str, users: list[str], timeout: float = 30.0) -> dict[str, str]:
    """`provision` in a session of its own."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        return await provision(http, http_url, admin_key, users)


class ProvisionError(RuntimeError):
    """The server refused to create users (wrong admin key, or not a stormbench server)."""


def conversation_id(client_id: str, rng: random.Random | None = None) -> str:
    """A conversation id for a client: its id (so records stay readable) and 64 random bits, from
    `secrets`, or from `rng` where a run must repeat from its seed (the bench's emulation: only
    who knows the seed can guess them, and the server gives a conversation to its first user)."""
    bits = rng.getrandbits(64) if rng is not None else secrets.randbits(64)
    return f"{client_id}-{bits:016x}"
