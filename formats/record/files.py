"""The names and columns of a run record's files (README "Run records"): one place for all readers and writers."""
from __future__ import annotations

SCENARIO = "scenario.json"
META = "meta.json"
EVENTS = "events.jsonl"
SENT = "sent.csv"
RECEIVED = "received.csv"  # the server's log of user messages received (the other direction)
FAULTS = "faults.json"
SCRAPES = "scrapes.jsonl"
CONNECTIONS = "connections.csv"
TIMESERIES = "timeseries.csv"
LEDGER = "ledger.csv"
LEDGER_SUMMARY = "ledger_summary.json"
GATES = "gates.json"
PROMETHEUS_GATES = "prometheus_gates.json"  # the gates.json shape, judged from a Prometheus that scraped the run
SUMMARY = "summary.json"
JUNIT = "junit.xml"
ENGINE_ERROR = "engine-error.txt"  # the traceback of an engine that stopped, next to its partial record

# What a finalized and judged record holds: a lenient reader notes each one that is missing.
FINISHED = (SUMMARY, GATES, CONNECTIONS, TIMESERIES, LEDGER, LEDGER_SUMMARY, FAULTS, META, SCENARIO)

# meta.json key: why the run did not finish (interrupted, or its engine stopped); absent when it did.
META_INCOMPLETE = "incomplete"

SENT_COLUMNS = ("conversation", "msg_id", "seq", "t")
RECEIVED_COLUMNS = ("conversation", "msg_id", "t", "answered")
CONNECTION_COLUMNS = ("client", "conn", "opened_s", "closed_s", "duration_s", "close_code", "closed_by",
                      "http_status", "censored")
# connections.csv's optional last column: the clients a row stands for (a weighted model agent's
# connection is one row of weight w, not w copies); absent means 1, as in every emulation record
WEIGHT = "weight"
# timeseries.csv: these columns, then one `closes_<code>` column per close code seen.
TIMESERIES_COLUMNS = ("t", "attempts", "reconnects", "opens", "closes", "active", "http_403",
                      "manual_refreshes", "displayed", "duplicates")
LEDGER_COLUMNS = ("kind", "client", "conversation", "msg_id", "seq", "t")
LEDGER_SUMMARY_KEYS = ("sent", "displayed", "lost", "duplicates", "reordered")
# ledger_summary.json's object for the other direction (a sampled model: no received.csv to judge)
LEDGER_USER = "user_messages"
