"""The sans-IO admission policy: driven by explicit times, no sockets, no clock."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from system.server.admission import AdmissionConfig, AdmissionPolicy


def test_unlimited_admits_everything():
    policy = AdmissionPolicy(AdmissionConfig())
    assert all(policy.admit(0.0).accepted for _ in range(1000))
    assert policy.active == 1000


def test_connection_cap_sheds_with_1013_until_a_release():
    policy = AdmissionPolicy(AdmissionConfig(max_connections=2))
    assert policy.admit(0).accepted and policy.admit(0).accepted
    shed = policy.admit(0)
    assert (shed.accepted, shed.code) == (False, 1013)
    assert "limit 2" in shed.reason
    policy.release(1)
    assert policy.admit(1).accepted
    assert (policy.active, policy.rejected) == (2, 1)


def test_handshake_rate_is_a_token_bucket():
    policy = AdmissionPolicy(AdmissionConfig(handshake_rate=10, burst=3))
    assert [policy.admit(0.0).accepted for _ in range(4)] == [True, True, True, False]
    assert not policy.admit(0.05).accepted  # half a token refilled
    assert policy.admit(0.1).accepted  # one token refilled
    assert not policy.admit(0.1).accepted
    # a long idle period refills only up to the burst depth
    assert [policy.admit(100.0).accepted for _ in range(4)] == [True, True, True, False]


def test_default_burst_is_one_second_of_rate():
    policy = AdmissionPolicy(AdmissionConfig(handshake_rate=5))
    assert sum(policy.admit(0).accepted for _ in range(10)) == 5


def test_time_going_backwards_does_not_mint_tokens():
    policy = AdmissionPolicy(AdmissionConfig(handshake_rate=1, burst=1))
    assert policy.admit(10.0).accepted
    assert not policy.admit(5.0).accepted
    assert not policy.admit(10.5).accepted
    assert policy.admit(11.0).accepted


def test_release_without_admit_is_an_error():
    with pytest.raises(RuntimeError):
        AdmissionPolicy(AdmissionConfig()).release(0)


@pytest.mark.parametrize("kwargs, field", [
    ({"max_connections": -1}, "max_connections"),
    ({"handshake_rate": 0}, "handshake_rate"),
    ({"handshake_rate": 1, "burst": 0}, "burst"),
])
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        AdmissionConfig(**kwargs)


@settings(max_examples=200, deadline=None)
@given(
    cap=st.integers(1, 20),
    rate=st.floats(0.5, 50),
    burst=st.integers(1, 10),
    steps=st.lists(st.tuples(st.floats(0, 0.5), st.booleans()), min_size=1, max_size=200),
)
def test_never_exceeds_cap_or_bucket(cap, rate, burst, steps):
    policy = AdmissionPolicy(AdmissionConfig(max_connections=cap, handshake_rate=rate, burst=burst))
    now, accepted = 0.0, 0
    for gap, release in steps:
        now += gap
        if release and policy.active:
            policy.release(now)
        elif policy.admit(now).accepted:
            accepted += 1
        assert 0 <= policy.active <= cap
        assert accepted <= burst + rate * now + 1e-9
