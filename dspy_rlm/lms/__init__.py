"""Language models: by name, scripted (for tests) and simulated (for offline runs), with the simulated model's OpenAI-compatible server."""
