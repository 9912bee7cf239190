"""The supervisor and its agents: deterministic routing and answers, no LLM, no network."""
