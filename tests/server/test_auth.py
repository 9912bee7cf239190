"""Tokens against a real SQLite store, with an injected clock where expiry matters."""
from __future__ import annotations

import time

import jwt
import pytest

from system.server.auth import ALGORITHM, AUDIENCE, AuthError, TokenService
from system.server.store import Store


class Clock:
    """Starts at the real time: PyJWT checks `exp` against the real clock, `xp` uses this one."""

    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "auth.db")
    yield s
    s.close()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def tokens(store, clock):
    return TokenService(store, secret=None, access_ttl=3.75, refresh_ttl=60, clock=clock)


def login(tokens: TokenService, user: str) -> dict:
    """A token pair for `user`, created with a secret first (a secret is needed to log in)."""
    return tokens.issue(user, tokens.create_users([user])[user])


def test_issue_needs_the_users_secret(tokens):
    secret = tokens.create_users(["alice"])["alice"]
    for user, given in (("alice", "wrong"), ("bob", secret), ("alice", "")):
        with pytest.raises(AuthError) as err:
            tokens.issue(user, given)
        assert err.value.code == "bad_credentials"
    assert tokens.verify(tokens.issue("alice", secret)["access_token"]).user == "alice"
    assert tokens.store.user_digest("alice") != secret  # only a digest is stored


def test_issue_then_verify(tokens, clock):
    pair = login(tokens, "alice")
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == 3.75
    claims = tokens.verify(pair["access_token"])
    assert claims.user == "alice"
    assert claims.expires_at == pytest.approx(clock.now + 3.75)


def test_sub_second_expiry_is_exact(tokens, clock):
    """At a compressed TTL, whole-second `exp` would be up to 1 s off; `xp` keeps it exact."""
    pair = login(tokens, "alice")
    clock.now += 3.7
    tokens.verify(pair["access_token"])
    clock.now += 0.06
    with pytest.raises(AuthError) as err:
        tokens.verify(pair["access_token"])
    assert err.value.code == "auth_expired"


def test_jwt_exp_itself_is_enforced(tokens, store):
    real = TokenService(store, secret=tokens.secret, access_ttl=1, refresh_ttl=60)
    forged = jwt.encode({"sub": "a", "aud": AUDIENCE, "iat": 1, "exp": 2, "xp": 9e12, "gg": 0, "ug": 0, "fam": "f"},
                        tokens.secret, algorithm=ALGORITHM)
    with pytest.raises(AuthError) as err:
        real.verify(forged)
    assert err.value.code == "auth_expired"


@pytest.mark.parametrize("mutate", [
    lambda c, s: jwt.encode(c, None, algorithm="none"),
    lambda c, s: jwt.encode(c, s, algorithm="HS512"),
    lambda c, s: jwt.encode({**c, "aud": "someone-else"}, s, algorithm=ALGORITHM),
    lambda c, s: jwt.encode({k: v for k, v in c.items() if k != "sub"}, s, algorithm=ALGORITHM),
    lambda c, s: jwt.encode({k: v for k, v in c.items() if k != "iat"}, s, algorithm=ALGORITHM),
    lambda c, s: jwt.encode(c, "another-secret-that-is-long-enough-for-hs256", algorithm=ALGORITHM),
    lambda c, s: "not.a.jwt",
    lambda c, s: "",
], ids=["alg-none", "hs512", "aud", "no-sub", "no-iat", "wrong-secret", "garbage", "empty"])
def test_forged_or_malformed_tokens_are_invalid(tokens, mutate):
    good = jwt.decode(login(tokens, "alice")["access_token"], options={"verify_signature": False})
    with pytest.raises(AuthError) as err:
        tokens.verify(mutate(good, tokens.secret))
    assert err.value.code == "auth_invalid"


def test_refresh_rotates_and_reuse_revokes_the_family(tokens):
    first = login(tokens, "alice")
    second = tokens.refresh(first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert tokens.verify(second["access_token"]).user == "alice"
    with pytest.raises(AuthError) as err:
        tokens.refresh(first["refresh_token"])  # reuse of a spent token
    assert err.value.result == "reused"
    with pytest.raises(AuthError) as err:
        tokens.refresh(second["refresh_token"])  # the family is gone, even its newest member
    assert err.value.result == "revoked"


def test_other_families_survive_a_reuse(tokens):
    a, b = login(tokens, "alice"), login(tokens, "alice")
    tokens.refresh(a["refresh_token"])
    with pytest.raises(AuthError):
        tokens.refresh(a["refresh_token"])
    assert tokens.refresh(b["refresh_token"])["access_token"]


def test_refresh_token_expires(tokens, clock):
    pair = login(tokens, "alice")
    clock.now += 61
    with pytest.raises(AuthError) as err:
        tokens.refresh(pair["refresh_token"])
    assert (err.value.code, err.value.result) == ("auth_expired", "expired")


def test_unknown_refresh_token(tokens):
    with pytest.raises(AuthError) as err:
        tokens.refresh("never-issued")
    assert err.value.result == "invalid"


def test_forced_expiry_of_one_user_then_everyone(tokens):
    alice, bob = login(tokens, "alice"), login(tokens, "bob")
    tokens.expire("alice")
    with pytest.raises(AuthError, match="expired by the server"):
        tokens.verify(alice["access_token"])
    tokens.verify(bob["access_token"])
    fresh = tokens.refresh(alice["refresh_token"])  # refresh tokens survive a forced expiry
    tokens.verify(fresh["access_token"])
    tokens.expire(None)
    for pair in (bob, fresh):
        with pytest.raises(AuthError):
            tokens.verify(pair["access_token"])
    tokens.verify(login(tokens, "bob")["access_token"])


def test_secret_and_families_survive_a_restart(tmp_path, clock):
    first = Store(tmp_path / "restart.db")
    pair = login(TokenService(first, secret=None, access_ttl=60, refresh_ttl=60, clock=clock), "alice")
    first.close()
    second = Store(tmp_path / "restart.db")
    again = TokenService(second, secret=None, access_ttl=60, refresh_ttl=60, clock=clock)
    assert again.verify(pair["access_token"]).user == "alice"
    assert again.refresh(pair["refresh_token"])["access_token"]
    second.close()


def test_refresh_tokens_are_stored_only_as_digests(tokens, store):
    pair = login(tokens, "alice")
    dump = "\n".join(store.db.iterdump())
    assert pair["refresh_token"] not in dump
