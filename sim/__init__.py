"""The SimPy model: the same client policy objects as the real client, at fleet scale, in simulated time.

`sim.engine.simulate` is the engine (README "Engines"); `sim.world` assembles a run, `sim.client`
drives each policy, `sim.server` drives the server's own sans-IO core with the accept path's costs,
`sim.faults` handles every fault kind, `sim.calibration` holds the measured parameters,
`sim.closed_form` the textbook answers its tests compare against; `sim.replicate` runs seeds in
parallel. The commands that use the model (`validate`, `sweep`, `calibrate`) live in `commands/`:
this package never imports the emulation (`harness.emulate`, `harness.proxy`).
"""
