"""Run records: the directory format both engines write and every reader shares (README "Run records").

Engines write raw material with `RecordWriter`; `finalize(run_dir)` derives the
tables and `summary.json`; `RunRecord(run_dir)` reads any of it back.
"""
from formats.record.finalize import finalize, summarize
from formats.record.ledger import LedgerSummary
from formats.record.run import RunRecord
from formats.record.storms import Storm, StormRule, detect_storms
from formats.record.survival import Survival, kaplan_meier
from formats.record.writer import RecordWriter

__all__ = ["LedgerSummary", "RecordWriter", "RunRecord", "Storm", "StormRule", "Survival", "detect_storms",
           "finalize", "kaplan_meier", "summarize"]
