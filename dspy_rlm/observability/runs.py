"""MLflow runs that end the way the process did, and tracking set up off a command's critical path.

- `tracked_run`: a run that ends FINISHED, FAILED, or KILLED on Ctrl-C (MLflow's own says FAILED),
  with the runs opened under it; `kill_open_runs` does the same from any thread as a process ends.
- `drop_placeholder_models`: DSPy autologging's empty `dspy` models, which stay Pending forever.
- `BackgroundTracking`: MLflow's import and the store prepared on a thread.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator

from dspy_rlm.observability.tracking import DEFAULT_TRACKING_URI, setup_tracking, use_experiment


class BackgroundTracking:
    """`setup_tracking` in two halves, so a command shows its first step without waiting for MLflow.

    On a thread, started at once: `import mlflow` (about 3 s) and the store (a fresh sqlite store
    creates and migrates its tables, several seconds). `ready()`, in the caller's thread, waits for
    that (usually done by then) and turns on autologging, which must happen in the thread that
    configures DSPy."""

    def __init__(self, tracking_uri: str | None, experiment: str = "dspy-rlm"):
        self.tracking_uri = tracking_uri or DEFAULT_TRACKING_URI
        self.experiment = experiment
        self.experiment_id: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._prepare, name="dspy-rlm-tracking", daemon=True)
        self._thread.start()

    def _prepare(self) -> None:
        try:
            import mlflow

            mlflow.set_tracking_uri(self.tracking_uri)
            self.experiment_id = use_experiment(self.experiment)
            import mlflow.dspy  # noqa: F401  (imported here too, off the caller's path)
        except BaseException as error:  # handed to the caller by ready()
            self._error = error

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def ready(self) -> str:
        """Wait for the store, turn on autologging here; return the experiment id."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return setup_tracking(self.tracking_uri, self.experiment)  # cheap now: imports and store are warm


# -- runs that end the way the process did -----------------------------------------

_OPEN_RUNS: list[str] = []  # ids of the runs `tracked_run` opened and has not ended, outermost first
_OPEN_LOCK = threading.Lock()
_KILLED_RUNS: list[str] = []  # the runs ended KILLED by Ctrl-C so far, for the one line the CLI prints


@contextlib.contextmanager
def tracked_run(run_name: str, *, nested: bool | None = None, tags: dict[str, str] | None = None) -> Iterator[Any]:
    """`mlflow.start_run` whose run ends FINISHED, FAILED on an error, or KILLED on Ctrl-C, together
    with the runs started under it that are still open (MLflow's own context manager says FAILED).
    `nested=None` nests it under the active run, if any."""
    import mlflow

    nested = mlflow.active_run() is not None if nested is None else nested
    run = mlflow.start_run(run_name=run_name, nested=nested, tags=tags)
    run_id = run.info.run_id
    with _OPEN_LOCK:
        _OPEN_RUNS.append(run_id)
    status = "FINISHED"
    try:
        yield run
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        with _OPEN_LOCK:
            if run_id in _OPEN_RUNS:
                _OPEN_RUNS.remove(run_id)
        _end_run(run_id, status)


@contextlib.contextmanager
def job_run(tracking: BackgroundTracking | None, run_name: str, params: dict[str, Any], kind: str,
            console: Any, dicts: dict[str, Any] | None = None) -> Iterator[Callable[[dict[str, float]], None]]:
    """The MLflow run of one command-line job (the demo, `ask`); yields its `log_metrics`.

    It waits for the store `tracking` prepares (saying so on `console`, a rich Console, when a
    new store is still being made), logs `params`, the model kind as a tag and `dicts` as JSON
    artifacts, and afterwards prints where the run is and how to open the dashboard. Without
    tracking it yields a `log_metrics` that does nothing."""
    if tracking is None:
        yield lambda metrics: None
        return
    import mlflow

    if tracking.done:
        tracking.ready()
    else:
        with console.status("preparing the MLflow store (a new store takes a few seconds, once)"):
            tracking.ready()
    with tracked_run(run_name, tags={"dspy_rlm.model_kind": kind}) as run:
        mlflow.log_params(params)
        for name, value in (dicts or {}).items():
            mlflow.log_dict(value, name)
        yield mlflow.log_metrics
    uri = tracking.tracking_uri
    console.print(f"MLflow run {run.info.run_id} in {uri} (open the dashboard with: dspy-rlm ui --tracking-uri {uri})")


def _end_run(run_id: str, status: str) -> None:
    import mlflow
    from mlflow.tracking import fluent

    stack = fluent._active_run_stack.get()
    while any(r.info.run_id == run_id for r in stack) and mlflow.active_run() is not None:
        mlflow.end_run(status)  # the runs above it on this thread's stack first, then the run itself
    if status == "KILLED":
        _kill_descendants(run_id)
        with _OPEN_LOCK:
            _KILLED_RUNS.append(run_id)


def kill_open_runs() -> list[str]:
    """Mark every run `tracked_run` has open as KILLED, with its running descendants; return the ids of
    the runs Ctrl-C ended (these, and those `tracked_run` already ended KILLED), outermost first.
    Safe from any thread (it uses the client, not the active-run stack): the Ctrl-C path of the CLI
    calls it when the main thread cannot unwind in time."""
    from mlflow import MlflowClient

    with _OPEN_LOCK:
        open_runs = list(reversed(_OPEN_RUNS))
        _OPEN_RUNS.clear()
    for run_id in open_runs:
        with contextlib.suppress(Exception):  # the process is ending: mark what can be marked
            _kill_descendants(run_id)
            MlflowClient().set_terminated(run_id, "KILLED")
    with _OPEN_LOCK:
        killed = list(dict.fromkeys(open_runs[::-1] + _KILLED_RUNS[::-1]))
        _KILLED_RUNS.clear()
    return killed


def _kill_descendants(run_id: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment_id = client.get_run(run_id).info.experiment_id
    children = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    for child in children:
        _kill_descendants(child.info.run_id)
        if child.info.status == "RUNNING":
            client.set_terminated(child.info.run_id, "KILLED")


def drop_placeholder_models(run_id: str) -> int:
    """Delete the empty PENDING `dspy` models DSPy autologging leaves for every compile call of `run_id`
    (they never get artifacts, and would stay Pending in the UI); return how many."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment_id = client.get_run(run_id).info.experiment_id
    models = mlflow.search_logged_models(experiment_ids=[experiment_id], output_format="list",
                                         filter_string=f"source_run_id = '{run_id}'")
    dropped = 0
    for model in models:
        if str(model.status).endswith("PENDING") and model.name == "dspy":
            client.delete_logged_model(model.model_id)
            dropped += 1
    return dropped
