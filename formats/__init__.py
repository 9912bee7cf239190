"""The shared formats: what a scenario says, what a run record holds, what a gate asks, and the
registry of fault kinds. Both engines (`harness`, the emulation; `sim`, the model) read and write
them and neither owns them, so a change here is a change of the contract between the two."""
