"""`dspy-rlm ui`: the MLflow dashboard on a store, in one command that also works offline.

Offline, `mlflow ui` never answers unless `LITELLM_LOCAL_MODEL_COST_MAP=True` is set: at start-up
it imports LiteLLM, whose background download of the model price list deadlocks the import lock
when there is no network. This command sets it (and runs MLflow's own server, nothing more).
"""

from __future__ import annotations

import os
import subprocess
import sys

from dspy_rlm import settings


def ui_command(tracking_uri: str = settings.TRACKING_URI, *, port: int = 5000,
               host: str = "127.0.0.1") -> tuple[list[str], dict[str, str]]:
    """The command line and environment that serve the MLflow UI on `tracking_uri`."""
    argv = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri,
            "--host", host, "--port", str(port)]
    environment = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return argv, environment


def run_ui(tracking_uri: str = settings.TRACKING_URI, *, port: int = 5000, host: str = "127.0.0.1") -> int:
    """Serve the UI until Ctrl-C; return MLflow's exit status."""
    argv, environment = ui_command(tracking_uri or settings.TRACKING_URI, port=port, host=host)
    print(f"MLflow UI for {tracking_uri} at http://{host}:{port} (Ctrl-C to stop)", file=sys.stderr)
    return subprocess.call(argv, env=environment)
