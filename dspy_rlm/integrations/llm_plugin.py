"""The `llm` CLI plugin (placeholder: being built)."""
