"""Integer columns stay integers when a run record's tables are read back.

pandas reads a column with an empty cell as float (`1006.0`), so close codes, HTTP statuses
and counts become floats that print and compare badly; every reader (gates, reports, a
user's notebook) loads them through `read_table` as nullable `Int64` instead: `<NA>` where
empty, `1006` where not.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from formats.record import files

# by file: the columns that hold whole numbers (timeseries.csv: every column but `t`, the
# `closes_<code>` ones included)
INTEGER_COLUMNS = {
    files.CONNECTIONS: frozenset({"close_code", "http_status", "censored", files.WEIGHT}),
    files.LEDGER: frozenset({"seq"}),
    files.SENT: frozenset({"seq"}),
}


def integer_columns(name: str, columns) -> list[str]:
    if name == files.TIMESERIES:
        return [c for c in columns if c != "t"]
    return [c for c in columns if c in INTEGER_COLUMNS.get(name, ())]


def keep_integers(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Turn the file's integer columns into `Int64` where every value is whole (a column a
    damaged or hand-edited file filled with fractions stays as it is, for the reader to judge)."""
    for col in integer_columns(name, df.columns):
        values = pd.to_numeric(df[col], errors="coerce")
        known = values.dropna()
        if len(known) == df[col].notna().sum() and (known % 1 == 0).all():
            df[col] = values.astype("Int64")
    return df


def read_table(path: str | Path, **kwargs) -> pd.DataFrame:
    """`pd.read_csv` of a run-record table with its integer columns as `Int64`."""
    path = Path(path)
    return keep_integers(pd.read_csv(path, **kwargs), path.name)
