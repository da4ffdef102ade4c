"""A compiled RLM program as an MLflow pyfunc model (models from code, no pickle)."""
