"""Observability: MLflow spans of a call, MLflow runs for programs and optimizers, and the live display."""
