"""One module (or package) per agent; each defines `AGENT = AgentSpec(...)` (see system.agent.registry)."""
