"""A table read a chunk at a time into compact columns: what lets the readers of a fleet's
connections.csv (tens of millions of rows) count over it without holding it as Python objects.

Each chunk's text column of client ids becomes integer codes (`ClientCodes`), each id kept once;
each number column keeps a narrow dtype that holds its values exactly (`nullable_integers`);
the chunks' columns are joined one column at a time (`Columns`), so the table is never in memory
twice.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


class ClientCodes:
    """Client ids to integer codes, the same code for an id in every chunk (the first id seen is 0); a
    missing id is -1, a categorical's missing value."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}

    def __call__(self, ids: pd.Series) -> np.ndarray:
        local, uniques = pd.factorize(ids)
        codes = self._codes
        known = np.fromiter((codes.setdefault(u, len(codes)) for u in uniques), np.int32, len(uniques))
        return np.where(local < 0, np.int32(-1), known[local]) if len(known) else np.full(len(local), -1, np.int32)

    def ids(self) -> list[str]:
        """The ids seen, by code."""
        return list(self._codes)

    def categorical(self, codes: np.ndarray) -> pd.Categorical:
        """The column of these codes: each row a small integer, each id once among the categories."""
        return pd.Categorical.from_codes(codes, categories=pd.Index(self.ids(), dtype=object))


def nullable_integers(values: pd.Series) -> pd.Series:
    """Whole numbers, gaps or not, as nullable `Int32` (as `formats.record.tables.keep_integers`
    reads them, in half the bytes); anything else (a fraction, a code beyond 32 bits) as it is."""
    known = values.dropna()
    if not (known % 1 == 0).all() or (len(known) and known.abs().max() >= 2 ** 31):
        return values
    return values.astype("Int32")


class Columns:
    """A table's columns gathered a chunk at a time, joined column by column."""

    def __init__(self) -> None:
        self._pieces: dict[str, list] = {}

    def add(self, name: str, piece: pd.Series | np.ndarray) -> None:
        self._pieces.setdefault(name, []).append(piece)

    def join(self, name: str) -> pd.Series | np.ndarray:
        """One column, its pieces let go as it is built; pieces of different dtypes join as the
        common one (a nullable integer with a float: float, gaps as NaN); no piece (a table absent
        or damaged, read leniently, has no chunk): empty."""
        pieces = self._pieces.pop(name, None)
        if not pieces:
            return np.empty(0)
        if all(isinstance(p, np.ndarray) for p in pieces):
            return np.concatenate(pieces)
        dtypes = {p.dtype for p in pieces}
        if len(dtypes) > 1 and any(isinstance(d, pd.api.extensions.ExtensionDtype) for d in dtypes):
            pieces = [p.astype(float) for p in pieces]
        return pd.concat(pieces, ignore_index=True)
