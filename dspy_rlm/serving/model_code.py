"""The code MLflow stores with a served RLM program ("models from code"; see `dspy_rlm.serving.pyfunc`)."""

import mlflow

from dspy_rlm.serving.pyfunc import RLMModel

mlflow.models.set_model(RLMModel())
