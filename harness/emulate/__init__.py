"""The emulation engine: a real server, real proxies and a fleet of real clients on loopback.

`harness.emulate.engine.emulate(scenario, out_dir)` is the entry point (README "Engines").
The parts, one job each: `procs` starts and always stops the server and proxy
subprocesses; `timescale` converts between scenario and wall seconds; `plan` draws
the fault schedule and per-client randomness from the seed (pure, no IO); `faults`
applies a plan step through the Toxiproxy API and the server's admin API; `fleet`
runs client drivers in worker processes; `scrape`, `selfcheck` and `live` observe.
"""
