"""The SimPy model: the same client policy objects as the real client, at fleet scale, in simulated time.

`sim.engine.simulate` is the engine (README "Engines"); `sim.world` assembles a run, `sim.client`
drives each policy, `sim.server` models the accept path, tokens and fan-out, `sim.faults` every
fault kind, `sim.calibration` the measured parameters, `sim.closed_form` the textbook answers its
tests compare against. Commands: `validate_cli`, `sweep_cli`, `calibrate_cli`; `sim.replicate`
runs seeds in parallel.
"""
