"""What a message says about a property search, read with rules (no model, no network).

Place, bedrooms, budget and its unit ("under 80 a night", "1200/month"), dates
("3-10 Dec"), move-in ("from 1 January"), pets, furnished, tenure cues and
follow-up refinements ("cheaper", "with 3 bedrooms"). Dates are read first and
their characters blanked, then bedrooms, then money, so one number is never
read twice. `signal` is how strongly the message looks like a property search;
the router uses it.
"""
from __future__ import annotations

import datetime as dt
import math
import difflib
import functools
import re
from dataclasses import dataclass, field

from system.agent.text import normalize

from .dates import BadDate, find_dates, find_nights
from .geography import CITIES

_NUM_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "single": 1, "double": 2,
              "um": 1, "dois": 2, "tres": 3, "uno": 1, "dos": 2, "un": 1, "deux": 2, "trois": 3,
              "ein": 1, "zwei": 2, "drei": 3}
_NUM = r"(\d|" + "|".join(_NUM_WORDS) + r")"
_BED_WORD = (r"(?:bed(?:room)?s?|bdrms?|bdr|bds?|br|b/r|quartos?|habitacion(?:es)?|dormitorios?|"
             r"chambres?|zimmer|rooms?)\b")
_MIN_BEDS = re.compile(rf"\b(?:at least|min(?:imum)?|minimum of)\s+{_NUM}\s*-?\s*{_BED_WORD}"
                       rf"|\b{_NUM}\s*(?:\+|or more)\s*-?\s*{_BED_WORD}")
_BEDS = re.compile(rf"\b{_NUM}\s*-?\s*{_BED_WORD}")
_T_NOTATION = re.compile(r"\bt([0-5])\b")
_STUDIO = re.compile(r"\b(studio|studios|estudio|kitchenette|bedsit)\b")

_AMOUNT = r"(?P<amt>\d{1,3}(?:[.,\s]\d{3})+|\d+(?:[.,]\d+)?)\s*(?P<k>k\b)?"
_CUR = r"(?:€|£|\$|eur\b|euros?\b|gbp\b|pounds?\b|quid\b|usd\b|dollars?\b)"
_NIGHT = (r"(?:(?:a|per|each|every|/|por|par|pro)\s*(?:night|nite|nt|noche|noite|nuit|nacht)\b|nightly\b|pn\b|p/n\b)")
_MONTH = (r"(?:(?:a|per|each|every|/|por|par|pro|al|im)\s*(?:month|mo|mth|mes|mois|monat)\b|monthly\b|pcm\b|pm\b|"
          r"p/m\b|mensal\b|mensual\b)")
_MAX_WORDS = (r"(?:under|below|less than|max(?:imum)?|up to|upto|at most|no more than|not more than|budget(?: of| is)?|"
              r"<=?|until|cap(?:ped)? at|within|ate|hasta|menos de|moins de|jusqu'a|bis|unter|around|about|~)")
_MIN_WORDS = r"(?:over|above|more than|at least|min(?:imum)?|from|starting at|>=?)"
_MONEY = re.compile(
    rf"(?:(?P<maxw>{_MAX_WORDS})|(?P<minw>{_MIN_WORDS}))?\s*(?P<cur1>{_CUR})?\s*{_AMOUNT}\s*(?P<cur2>{_CUR})?"
    rf"\s*(?P<unit>{_NIGHT}|{_MONTH})?")
_BETWEEN = re.compile(rf"\b(?:between\s+)?(?P<cur1>{_CUR})?\s*(\d+(?:[.,]\d+)?)\s*(k\b)?\s*(?:-|and|to)\s*"
                      rf"(?P<cur2>{_CUR})?\s*(\d+(?:[.,]\d+)?)\s*(k\b)?\s*(?P<cur3>{_CUR})?\s*(?P<unit>{_NIGHT}|{_MONTH})?")

_SHORT_CUES = re.compile(
    r"\b(short[- ]?(?:stay|term|let|rental)s?|short|nightly|per night|a night|/night|holidays?|vacation|vacances|"
    r"vacaciones|ferias|weekend|airbnb|nights|trip|getaway|city break|few days|for a week|one week|two weeks|"
    r"for \d+ (?:days|nights|weeks)|tourist|visiting|visit|conference|business trip|hotel|b&b|noites|noches|nuits)\b")
_LONG_CUES = re.compile(
    r"\b(long[- ]?(?:let|term|stay|rental)s?|long|monthly|per month|a month|pcm|lease|contract|relocat\w*|"
    r"moving to|move in|move-in|moving in|to live|for a year|\d+ months|\d+-month|year-long|permanent|"
    r"unfurnished|tenancy|flatshare|flat share|arrendamento|alquiler de larga|location longue|miete|mieten)\b")

_PETS_NO = re.compile(r"\b(no|without|sem|sin|sans|keine?)\s+(pets?|dogs?|cats?|animals?)\b")
_PETS = re.compile(r"\b(pets?|pet[- ]friendly|dogs?|cats?|puppy|kitten|animals?|mascotas?|animaux|haustiere?|"
                   r"animais|cachorro|perro|chien|hund)\b")
_UNFURNISHED = re.compile(r"\b(unfurnished|not furnished|sem mobilia|sin amueblar|non meuble|unmoebliert)\b")
_FURNISHED = re.compile(r"\b(furnished|mobilado|mobiliado|amueblado|meuble|moebliert|mobliert)\b")

_CHEAPER = re.compile(r"\b(cheaper|less expensive|lower (?:price|budget)|more affordable|too (?:expensive|pricey|much)|"
                      r"anything cheaper|budget friendly|mais barato|mas barato|moins cher|billiger|gunstiger)\b")
_BIGGER = re.compile(r"\b(bigger|larger|more space|more bedrooms|more rooms|mais espaco|mas grande|plus grand|grosser)\b")

# how strongly a word says "property search": strong words alone route, weak ones need company
_STRONG = re.compile(
    r"\b(apartments?|apts?|flats?|houses?|studios?|lofts?|duplex|villas?|condos?|penthouses?|rent|rental|rentals|"
    r"renting|to let|for let|lease|listings?|propert(?:y|ies)|accommodation|accomodation|acommodation|"
    r"bedrooms?|bedroom|beds|bdrms?|real estate|landlord|sublet|airbnb|apartamentos?|piso|pisos|alquiler|"
    r"alquilar|arrendar|arrendamento|aluguel|alugar|quartos?|alojamento|alojamiento|appartements?|logement|louer|"
    r"wohnung|wohnungen|miete|mieten|unterkunft|long let|short stay|short let|home to rent|place to (?:stay|live|rent)|"
    r"somewhere to (?:stay|live|sleep)|where (?:can|could) i stay)\b")
# typed in a hurry: "apartmnt", "appartment", "acommodation" are close to one of these
_FUZZY_NOUNS = ("apartment", "apartments", "accommodation", "bedroom", "bedrooms", "rental", "property", "listing",
                "listings", "studio", "house")
_WEAK = re.compile(r"\b(room|rooms|home|homes|stay|staying|live|living|move|moving|place|nights?|month|monthly|"
                   r"nightly|furnished|pets?|budget|casa|maison|haus|zimmer|chambre)\b")
_NOT_PROPERTY = re.compile(
    r"\b(flat (?:tyre|tire|out|white|rate|fee|screen|earth|battery|pack)|room for (?:improvement|error|doubt)|"
    r"(?:car|bike|scooter|van|boat|ski|tux|tuxedo|costume|equipment) (?:rental|hire|rent)|"
    r"rent(?:ing|al)? (?:a |an )?(?:car|bike|scooter|van|boat|movie|film|skis?)|"
    r"hotel room service|chat ?room|living room (?:ideas|decor)|bedroom (?:ideas|decor|furniture)|"
    r"stay (?:safe|tuned|calm|healthy|positive)|live (?:music|stream|score|chat))\b")


@dataclass
class Understanding:
    city: str | None = None
    area: str | None = None
    tenure: str | None = None          # short | long, when the message says so
    bedrooms: int | None = None
    min_bedrooms: int | None = None
    max_price: int | None = None
    min_price: int | None = None
    price_unit: str | None = None      # night | month, when the message says so
    check_in: dt.date | None = None
    check_out: dt.date | None = None
    start_date: dt.date | None = None  # a single date: a move-in (long) or a check-in without an end
    nights: int | None = None          # "for 3 nights" with no date
    pets: bool | None = None
    furnished: bool | None = None
    cheaper: bool = False
    bigger: bool = False
    problems: list[str] = field(default_factory=list)  # what looked meaningful but could not be read
    signal: float = 0.0                # 0..1: how much this reads as a property search

    @property
    def has_criteria(self) -> bool:
        return any(v is not None for v in (self.city, self.area, self.tenure, self.bedrooms, self.min_bedrooms,
                                           self.max_price, self.min_price, self.check_in, self.start_date,
                                           self.nights, self.pets, self.furnished)) or self.cheaper or self.bigger


def _places() -> list[tuple[str, str, str | None]]:
    """(normalised phrase, city, area or None), longest first so "parque das nacoes" beats shorter names."""
    out = []
    for city in CITIES:
        for name in (city.name, *city.aliases):
            out.append((normalize(name), city.name, None))
        for area, _ in city.areas:
            out.append((normalize(area), city.name, area))
    return sorted(out, key=lambda p: -len(p[0]))


_PLACES = _places()
_PLACE_RE = [(re.compile(rf"\b{re.escape(phrase)}\b"), city, area) for phrase, city, area in _PLACES]
_FUZZY_VOCAB = {phrase: (city, area) for phrase, city, area in _PLACES if " " not in phrase and len(phrase) >= 5}
_FUZZY_PLACES = tuple(_FUZZY_VOCAB)


#: the largest amount read from a message: any budget above it is as good as none (and still
#: fits the listings database's integers)
MAX_AMOUNT = 10**9


def _number(token: str) -> int:
    return _NUM_WORDS[token] if token in _NUM_WORDS else int(token)


def _amount(digits: str, k: str | None) -> int | None:
    text = digits.replace(" ", "")
    if re.fullmatch(r"\d{1,3}([.,]\d{3})+", text):
        value = float(re.sub(r"[.,]", "", text))
    else:
        value = float(text.replace(",", "."))
    if k:
        value *= 1000
    if not value > 0 or math.isnan(value):
        return None
    return int(round(min(value, MAX_AMOUNT)))  # "under 10^40" is no limit, not an overflow


def _blank(text: str, span: tuple[int, int]) -> str:
    return text[:span[0]] + " " * (span[1] - span[0]) + text[span[1]:]


@functools.lru_cache(maxsize=8192)  # words repeat ("cheaper", "bedrooms"); difflib is the costly part
def _close(word: str, vocabulary: tuple[str, ...], cutoff: float) -> str | None:
    close = difflib.get_close_matches(word, vocabulary, n=1, cutoff=cutoff)
    return close[0] if close else None


def find_place(text: str) -> tuple[str | None, str | None]:
    for pattern, city, area in _PLACE_RE:
        if pattern.search(text):
            return city, area
    for word in re.findall(r"[a-z]{5,}", text):  # typos: "lisbn", "barcelna", "amsterdm"
        close = _close(word, _FUZZY_PLACES, 0.84)
        if close:
            return _FUZZY_VOCAB[close]
    return None, None


def understand(text: str, today: dt.date) -> Understanding:
    norm = normalize(text)
    u = Understanding()
    u.city, u.area = find_place(norm)
    rest = norm
    try:
        mention = find_dates(rest, today)
    except BadDate as exc:
        u.problems.append(str(exc))
        mention = None
    if mention:
        if mention.end is not None:
            u.check_in, u.check_out = mention.start, mention.end
        else:
            u.start_date = mention.start
        rest = _blank(rest, mention.span)
    elif (nights := find_nights(rest)) is not None:
        u.nights = nights  # a length without a start: the answer to "until when?"

    m = _MIN_BEDS.search(rest)
    if m:
        u.min_bedrooms = _number(next(g for g in m.groups() if g))
        rest = _blank(rest, m.span())
    else:
        m = _BEDS.search(rest) or _T_NOTATION.search(rest)
        if m:
            u.bedrooms = _number(m.group(1))
            rest = _blank(rest, m.span())
        elif _STUDIO.search(rest):
            u.bedrooms = 0
    _read_money(rest, u)

    short, long_ = bool(_SHORT_CUES.search(norm)), bool(_LONG_CUES.search(norm))
    said_tenure = short or long_
    if u.price_unit == "night" or u.check_in:
        short = True
    if u.price_unit == "month":
        long_ = True
    if short != long_:
        u.tenure = "short" if short else "long"
    if not _PETS_NO.search(norm) and _PETS.search(norm):
        u.pets = True
    if _UNFURNISHED.search(norm):
        u.furnished = False
    elif _FURNISHED.search(norm):
        u.furnished = True
    u.cheaper = bool(_CHEAPER.search(norm))
    u.bigger = bool(_BIGGER.search(norm))
    u.signal = _signal(norm, u, said_tenure)
    return u


def _read_money(rest: str, u: Understanding) -> None:
    between = _BETWEEN.search(rest)
    if between and (between.group("cur1") or between.group("cur2") or between.group("cur3") or between.group("unit")):
        lo, hi = _amount(between.group(2), between.group(3)), _amount(between.group(5), between.group(6))
        if lo and hi and lo < hi:
            u.min_price, u.max_price = lo, hi
            u.price_unit = _unit(between.group("unit"))
            return
    for m in _MONEY.finditer(rest):
        amount = _amount(m.group("amt"), m.group("k"))
        unit = _unit(m.group("unit"))
        money_like = m.group("cur1") or m.group("cur2") or unit or m.group("maxw") or m.group("minw")
        if not amount or not money_like or (m.group("minw") == "from" and not (m.group("cur1") or m.group("cur2") or unit)):
            continue
        if amount < 10 and not (m.group("cur1") or m.group("cur2") or m.group("k")):
            continue  # "under 5 minutes from the beach" is not a budget
        if m.group("minw"):
            u.min_price = amount
        else:
            u.max_price = amount
        u.price_unit = unit or u.price_unit
        if u.max_price is not None:
            return


def _unit(text: str | None) -> str | None:
    if not text:
        return None
    return "night" if re.fullmatch(_NIGHT, text.strip()) else "month"


def _signal(norm: str, u: Understanding, said_tenure: bool) -> float:
    score = 0.0
    if _STRONG.search(norm) or any(_close(w, _FUZZY_NOUNS, 0.8) for w in re.findall(r"[a-z]{5,}", norm)):
        score += 0.6
    score += 0.15 * min(2, len(_WEAK.findall(norm)))
    if u.bedrooms is not None or u.min_bedrooms is not None:
        score += 0.4
    if u.city:
        score += 0.2 if u.area is None else 0.35
    if u.max_price is not None or u.min_price is not None:
        score += 0.3 if u.price_unit else 0.15
    if u.check_in or u.start_date:
        score += 0.15
    if said_tenure:
        score += 0.15
    if u.cheaper or u.bigger:
        score += 0.1
    if _NOT_PROPERTY.search(norm):
        score -= 0.7
    return max(0.0, min(1.0, score))
