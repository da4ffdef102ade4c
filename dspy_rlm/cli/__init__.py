"""The `dspy-rlm` command: demo, soak, bench and the rest. The only part of `dspy_rlm` that imports `dspy_rlm.programs` and `dspy_rlm.optimizers`."""
