"""The simulated model: a `dspy.LM` that writes real RLM code for offline runs (its figures are simulated, never a model's)."""
