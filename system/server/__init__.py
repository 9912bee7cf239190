"""The chat server under test: WebSocket chat, HTTP auth/health/metrics/admin, legacy and fixed."""
