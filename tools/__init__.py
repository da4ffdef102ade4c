"""Development tools of dspy-rlm (not installed with the package)."""
