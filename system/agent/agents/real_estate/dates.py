"""Dates as people type them: "3-10 Dec", "Dec 3 to 10", "from 1 January", "2026-12-03".

Works on normalised text (see `system.agent.text`). A date without a year is the
next one on or after `today`, so "3-10 Dec" typed in November means this December.
`find_dates` returns the span it consumed so the budget parser does not read
"10" of "3-10 Dec" as a price.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_MONTHS = {
    1: ("january", "jan", "janeiro", "enero", "janvier", "januar"),
    2: ("february", "feb", "fevereiro", "febrero", "fevrier", "februar"),
    3: ("march", "mar", "marco", "marzo", "mars", "marz"),
    4: ("april", "apr", "abril", "avril"),
    5: ("may", "maio", "mayo", "mai"),
    6: ("june", "jun", "junho", "junio", "juin", "juni"),
    7: ("july", "jul", "julho", "julio", "juillet", "juli"),
    8: ("august", "aug", "agosto", "aout"),
    9: ("september", "sept", "sep", "setembro", "septiembre", "septembre"),
    10: ("october", "oct", "outubro", "octubre", "octobre", "oktober", "okt"),
    11: ("november", "nov", "novembro", "noviembre", "novembre"),
    12: ("december", "dec", "dezembro", "diciembre", "decembre", "dezember", "dez"),
}
MONTH_OF = {name: n for n, names in _MONTHS.items() for name in names}
_MON = "(" + "|".join(sorted(MONTH_OF, key=len, reverse=True)) + r")\.?"
_DAY = r"(\d{1,2})(?:st|nd|rd|th|o|er)?"
_YEAR = r"(?:,?\s*(\d{4}))?"
_TO = r"\s*(?:-|to|until|till|through|thru|a|al|au|bis|ate)\s*"
_TO_OR_AND = r"\s*(?:-|to|until|till|through|thru|and|a|al|au|bis|ate)\s*"  # "between 5 and 9 March"

# (pattern, kind); groups are read by name in _match_to_dates
_PATTERNS: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(rf"\b(\d{{4}})-(\d{{2}})-(\d{{2}}){_TO}(\d{{4}})-(\d{{2}})-(\d{{2}})\b"), "iso_range"),
    (re.compile(rf"\b{_DAY}\s*{_MON}{_YEAR}{_TO}{_DAY}\s*{_MON}{_YEAR}"), "dm_dm"),
    (re.compile(rf"\b{_MON}\s*{_DAY}{_YEAR}{_TO}{_MON}\s*{_DAY}{_YEAR}"), "md_md"),
    (re.compile(rf"\b(?:from\s+|between\s+)?{_DAY}{_TO_OR_AND}{_DAY}\s*(?:of\s+)?{_MON}{_YEAR}"), "dd_m"),
    (re.compile(rf"\b{_MON}\s*{_DAY}{_TO}{_DAY}{_YEAR}\b"), "m_dd"),
    (re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b"), "iso"),
    (re.compile(rf"\b{_DAY}\s*(?:of\s+)?{_MON}{_YEAR}"), "dm"),
    (re.compile(rf"\b{_MON}\s*{_DAY}\b(?!\s*(?:-?\s*bed|br\b|bd\b|rooms?\b|people|persons?|guests?|k\b))"
                rf"{_YEAR}"), "md"),
    (re.compile(rf"\b(?:from|in|starting|start of|beginning of|early|move in|moving in)\s+{_MON}{_YEAR}\b"), "m"),
)
_NIGHTS = re.compile(r"\bfor\s+(\d{1,2}|a|one|two|three|four|five|six|seven|ten|fourteen)\s+(nights?|days?|weeks?)\b")
_NUMBER_WORDS = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "ten": 10,
                 "fourteen": 14}


@dataclass(frozen=True)
class DateMention:
    start: dt.date
    end: dt.date | None  # None for a single date ("from 1 January")
    span: tuple[int, int]


class BadDate(ValueError):
    """A date-looking phrase that names no real day ("31 Feb")."""


def _resolve(day: int, month: int, year: str | None, today: dt.date) -> dt.date:
    if year:
        return dt.date(int(year), month, day)
    candidate = dt.date(today.year, month, day) if _valid(today.year, month, day) else None
    if candidate is None or candidate < today:
        candidate = dt.date(today.year + 1, month, day)
    return candidate


def _valid(year: int, month: int, day: int) -> bool:
    try:
        dt.date(year, month, day)
        return True
    except ValueError:
        return False


def _match_to_dates(kind: str, g: tuple, today: dt.date) -> tuple[dt.date, dt.date | None]:
    if kind == "iso_range":
        return dt.date(int(g[0]), int(g[1]), int(g[2])), dt.date(int(g[3]), int(g[4]), int(g[5]))
    if kind == "iso":
        return dt.date(int(g[0]), int(g[1]), int(g[2])), None
    if kind == "dm_dm":
        start = _resolve(int(g[0]), MONTH_OF[g[1]], g[2], today)
        return start, _resolve(int(g[3]), MONTH_OF[g[4]], g[5] or (g[2] if g[2] else None), start)
    if kind == "md_md":
        start = _resolve(int(g[1]), MONTH_OF[g[0]], g[2], today)
        return start, _resolve(int(g[4]), MONTH_OF[g[3]], g[5], start)
    if kind == "dd_m":
        month = MONTH_OF[g[2]]
        end = _resolve(int(g[1]), month, g[3], today)
        start = dt.date(end.year, month, int(g[0]))
        if start > end:  # "28-3 Jan": the start is in the previous month
            start = dt.date(end.year - (month == 1), 12 if month == 1 else month - 1, int(g[0]))
        if start < today and not g[3]:
            start, end = (dt.date(start.year + 1, start.month, start.day), dt.date(end.year + 1, end.month, end.day))
        return start, end
    if kind == "m_dd":
        month = MONTH_OF[g[0]]
        start = _resolve(int(g[1]), month, g[3], today)
        return start, dt.date(start.year, month, int(g[2]))
    if kind == "dm":
        return _resolve(int(g[0]), MONTH_OF[g[1]], g[2], today), None
    if kind == "md":
        return _resolve(int(g[1]), MONTH_OF[g[0]], g[2], today), None
    if kind == "m":
        return _resolve(1, MONTH_OF[g[0]], g[1], today), None
    raise AssertionError(kind)


def find_nights(text: str) -> int | None:
    """The length of a stay: "for 3 nights", "for a week", "for two weeks" (in nights)."""
    m = _NIGHTS.search(text)
    if not m:
        return None
    n = _NUMBER_WORDS.get(m.group(1)) or int(m.group(1))
    return n * 7 if m.group(2).startswith("week") else n or None


def find_dates(text: str, today: dt.date) -> DateMention | None:
    """The first date or date range in normalised `text`; raises BadDate for an impossible one."""
    for pattern, kind in _PATTERNS:
        m = pattern.search(text)
        if not m:
            continue
        try:
            start, end = _match_to_dates(kind, m.groups(), today)
        except ValueError as exc:
            raise BadDate(f"'{m.group(0).strip()}' is not a date I know ({exc})") from None
        if end is None:
            nights = find_nights(text)
            if nights:
                try:
                    end = start + dt.timedelta(days=nights)
                except OverflowError:
                    raise BadDate(f"'{m.group(0).strip()}' for {nights} nights ends after the last date "
                                  f"I know ({dt.date.max})") from None
        if end is not None and end <= start:
            raise BadDate(f"'{m.group(0).strip()}' ends before it starts")
        return DateMention(start, end, m.span())
    return None
