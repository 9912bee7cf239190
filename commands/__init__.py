"""The `stormbench` commands: the layer on top, which nothing else imports.

A command that needs both engines (`run`, `validate`, `calibrate`, `main-job`) or an engine and a
report lives here, so `harness/` (the real-system side) and `sim/` (the model) never import each
other. `commands.cli` is the dispatcher.
"""
