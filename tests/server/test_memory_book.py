"""The model's token book (`MemoryBook`) keeps a family's latest two refresh tokens in a compact form;
the rules over it still refuse as the server's do: a spent token presented again revokes its family
(and every access token of it), however many families and rotations the book holds meanwhile."""
from __future__ import annotations

import itertools

import pytest

from system.server.tokens import AuthError, MemoryBook, TokenRules


def rules() -> TokenRules:
    serial = itertools.count(1).__next__
    return TokenRules(MemoryBook(), access_ttl=900.0, refresh_ttl=7 * 86400.0, new_secret=lambda: f"s{serial()}",
                      new_id=lambda: f"i{serial()}", digest=None)


def refused(r: TokenRules, token: str, now: float) -> str:
    with pytest.raises(AuthError) as exc:
        r.refresh(token, now)
    return exc.value.result


def test_a_spent_token_presented_again_revokes_its_family_among_many():
    r = rules()
    others = [r.issue(f"u{k}", 0.0) for k in range(50)]  # other logins' families, rotated below
    mine = r.issue("me", 0.0)
    spent = mine.refresh_token
    latest = r.refresh(spent, 600.0)
    for t in range(1, 40):
        others = [r.refresh(g.refresh_token, 600.0 + t) for g in others]
    assert refused(r, spent, 86400.0) == "reused"  # a day later, well within the refresh TTL
    assert refused(r, latest.refresh_token, 86401.0) == "revoked"
    with pytest.raises(AuthError, match="revoked"):
        r.check(latest.claims, 700.0)
    assert r.refresh(others[0].refresh_token, 86402.0).family == others[0].family  # the others keep theirs


def test_a_family_keeps_its_latest_two_tokens_and_forgets_older_ones():
    r = rules()
    grants = [r.issue("me", 0.0)]
    for t in range(1, 5):
        grants.append(r.refresh(grants[-1].refresh_token, 100.0 * t))
    assert refused(r, grants[-3].refresh_token, 1000.0) == "invalid"  # forgotten: unknown, not a reuse
    assert refused(r, grants[-2].refresh_token, 1000.0) == "reused"   # the one before the latest: spent
    assert refused(r, grants[-1].refresh_token, 1001.0) == "revoked"


def test_a_kept_token_keeps_its_own_expiry():
    serial = itertools.count(1).__next__
    r = TokenRules(MemoryBook(), access_ttl=900.0, refresh_ttl=1000.0, new_secret=lambda: f"s{serial()}",
                   new_id=lambda: f"i{serial()}", digest=None)
    first = r.issue("me", 0.0)
    second = r.refresh(first.refresh_token, 500.0)  # expires at 1500; `first`'s expired at 1000
    assert r.book.refresh_record(first.refresh_token).expires_at == 1000.0
    assert r.book.refresh_record(second.refresh_token).expires_at == 1500.0
    assert refused(r, second.refresh_token, 1500.0) == "expired"
