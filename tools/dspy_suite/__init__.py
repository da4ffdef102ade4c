"""Run DSPy's own tests on EryxInterpreter or offline Deno: see plugin.py and scripts/dspy_tests.sh."""
