"""dspy-rlm inside other tools (the `llm` CLI's plugin)."""
