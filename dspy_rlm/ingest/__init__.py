"""Files and folders as RLM inputs: read, converted to text, cached, indexed (no DSPy here)."""
