"""The embedded fault proxy: Toxiproxy 2.12's HTTP API and toxics, in asyncio.

`stormbench proxy` speaks upstream Toxiproxy's API exactly (see `api`), so the
harness can be pointed at a real Toxiproxy instead; the data plane (`link`) is
asyncio protocols with bounded buffers. Beyond upstream: toxics in the config
file, `--seed` for reproducible toxicity and jitter draws, byte counters that
move while connections are open, and WebSocket-aware toxics (`ws_close`,
`ws_drop_pings`, `ws_hold`, documented in `ws_toxics`). `process.start_proxy`
runs it as a subprocess on free ports.
"""
