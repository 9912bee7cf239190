import pytest
from hypothesis import given, strategies as st

from system.units import format_duration, parse_duration, parse_rate


@pytest.mark.parametrize(
    "text,seconds",
    [("250ms", 0.25), ("30s", 30), ("15m", 900), ("15min", 900), ("2h", 7200), ("1d", 86400),
     ("1h30m", 5400), ("90", 90), (12, 12.0), (" 1.5s ", 1.5)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "fast", "15x", "-3s", -1, True, "1h30"])
def test_parse_duration_rejects_with_example(bad):
    with pytest.raises(ValueError, match="expected"):
        parse_duration(bad)


def test_parse_rate():
    assert parse_rate("2000/s") == 2000
    assert parse_rate("120/m") == 2
    assert parse_rate(5) == 5
    with pytest.raises(ValueError, match="2000/s"):
        parse_rate("lots")


@given(st.integers(min_value=0, max_value=10**6))
def test_format_then_parse_is_close(seconds):
    # the short form rounds to the minute above an hour; never off by more than that
    assert abs(parse_duration(format_duration(seconds).replace("ms", "ms")) - seconds) <= 60
