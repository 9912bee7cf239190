"""The reference chat client: a sans-IO reconnect policy (`policy`) and its asyncio driver (`driver`)."""
