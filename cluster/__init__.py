"""Many runs on Dask distributed: `cluster.executor` is the one place that talks to a scheduler.

Neither engine owns it and it imports neither: `sim` (replications, sweeps, validation) and
`harness` (the emulation's distributed client fleet) both hand it work.
"""
