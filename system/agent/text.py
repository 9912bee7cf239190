"""Message normalisation shared by the router and the agents.

People type "Príncipe Real", "principe real" and "PRINCIPE REAL"; dashes come as
"-", "–" or "—". Matching is done on one canonical form: accents stripped,
lower case, dashes unified, whitespace collapsed.
"""
from __future__ import annotations

import re
import unicodedata

_DASHES = str.maketrans({"–": "-", "—": "-", "‒": "-", "−": "-", "’": "'", "‘": "'"})
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_DASHES))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", stripped.lower()).strip()


def words(normalized: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", normalized)
