"""`TokenRules.refresh_chain` (a calm client's refreshes in one call, the model's batch) against the
same refreshes one by one: the same last grant, book, ids and count, and the same refusals after."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings, strategies as st

from system.server.tokens import AuthError, MemoryBook, TokenRules


def rules(refresh_ttl: float = 86400.0) -> TokenRules:
    serial = itertools.count(1).__next__
    return TokenRules(MemoryBook(), access_ttl=900.0, refresh_ttl=refresh_ttl, new_secret=lambda: f"s{serial()}",
                      new_id=lambda: f"i{serial()}", digest=None)


def book_state(r: TokenRules) -> dict:
    return {**vars(r.book), "issued": r.issued, "next": r.new_id()}


@settings(max_examples=80, deadline=None)
@given(gaps=st.lists(st.floats(1.0, 1000.0), min_size=1, max_size=30), others=st.integers(0, 3))
def test_a_chain_leaves_what_its_refreshes_leave(gaps, others):
    one, chain = rules(), rules()
    times = list(itertools.accumulate([10.0, *gaps]))[1:]
    for r in (one, chain):
        for k in range(others):  # other families, for ids and a shared book
            r.issue(f"u{k}", 0.0)
        start = r.issue("me", 5.0).refresh_token
    grant, token = None, start
    for t in times:
        grant = one.refresh(token, t)
        token = grant.refresh_token
    assert chain.refresh_chain(start, times) == grant
    assert book_state(chain) == book_state(one)
    assert chain.issued == others + 1 + len(times)


def test_after_a_chain_the_book_refuses_as_after_its_refreshes():
    """The last refresh token rotates once; the one before it is a reuse (the family is revoked, so
    the last one is then refused too); older ones are unknown."""
    outcomes = []
    for batched in (False, True):
        r = rules()
        start = r.issue("me", 0.0).refresh_token
        times = [450.0 * k for k in range(1, 8)]
        if batched:
            last = r.refresh_chain(start, times)
        else:
            token = start
            for t in times:
                last = r.refresh(token, t)
                token = last.refresh_token
        before_last = f"s{int(last.refresh_token[1:]) - 2}"  # each rotation takes an id and a secret
        got = []
        for presented in (start, "s8", before_last, last.refresh_token):
            try:
                got.append(r.refresh(presented, 4000.0).claims.expires_at)
            except AuthError as err:
                got.append(err.result)
        outcomes.append(got)
    assert outcomes[0] == outcomes[1] == ["invalid", "invalid", "reused", "revoked"]


def test_a_gap_longer_than_the_refresh_ttl_is_refused_as_one_by_one():
    r = rules(refresh_ttl=600.0)
    start = r.issue("me", 0.0).refresh_token
    with pytest.raises(AuthError) as err:
        r.refresh_chain(start, [300.0, 600.0, 1300.0, 1500.0])
    assert err.value.result == "expired"
