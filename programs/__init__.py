"""Task families, metric datasets and example programs built on `dspy_rlm.RLM` (installed as `dspy_rlm.programs`)."""
