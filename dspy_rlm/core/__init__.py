"""The DSPy module layer: `RLM`, one call's run, its signatures, transcript, limits and `EryxInterpreter`. It knows nothing of eryx beyond the sandbox protocol."""
