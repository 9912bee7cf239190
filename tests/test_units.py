import pytest
from hypothesis import given, strategies as st

from system.units import format_duration, format_instant, parse_duration, parse_rate


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


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59.4, "59s"), (129, "2m09s"), (3600, "1h00m00s"),
                                           (21659, "6h00m59s"), (86399.6, "24h00m00s")])
def test_an_instant_is_written_to_the_second(seconds, text):
    """A gate's worst second after a restart is at 6h00m59s, not at 6h (format_duration's hour form)."""
    assert format_instant(seconds) == text


@given(st.integers(0, 10 * 86400))
def test_an_instant_reads_back_as_itself(seconds):
    assert parse_duration(format_instant(seconds)) == seconds
